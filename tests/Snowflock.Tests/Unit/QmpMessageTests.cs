using System.Text;
using System.Text.Json;
using Snowflock.Engine.Engines.Qemu.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>QMP lines as the real QEMU sends them (<see cref="QmpTranscript"/>), read by the one
/// parser; then random and mutated lines, which may only ever give a <see cref="QmpProtocolException"/>.</summary>
[Trait("Area", "unit")]
public sealed class QmpMessageTests
{
    private static QmpMessage Parse(string line) => QmpMessage.Parse(Encoding.UTF8.GetBytes(line));

    [Fact]
    public void Every_line_of_the_recorded_session_parses()
    {
        var kinds = QmpTranscript.FromQemu.Select(l => QmpMessage.Parse(l).GetType().Name).ToList();
        Assert.Equal(2, kinds.Count(k => k == nameof(QmpGreeting)));
        Assert.Equal(2, kinds.Count(k => k == nameof(QmpError)));
        Assert.Contains(nameof(QmpEvent), kinds);
        Assert.True(kinds.Count(k => k == nameof(QmpReturn)) >= 20);
    }

    [Fact]
    public void The_greeting_carries_QEMUs_version_and_capabilities()
    {
        var greeting = Assert.IsType<QmpGreeting>(QmpMessage.Parse(QmpTranscript.FromQemu[0]));
        Assert.Equal(new Version(7, 2, 22), greeting.Version);
        Assert.StartsWith("Debian", greeting.Package);
        Assert.Equal(["oob"], greeting.Capabilities);
    }

    [Fact]
    public void Returns_keep_their_id_and_value()
    {
        var status = QmpTranscript.FromQemu.Select(l => QmpMessage.Parse(l)).OfType<QmpReturn>().First(r => r.Id == "1");
        Assert.Equal("prelaunch", status.Value.GetProperty("status").GetString());
        Assert.False(status.Value.GetProperty("running").GetBoolean());

        var capabilities = Assert.IsType<QmpReturn>(Parse("{\"return\": {}}"));
        Assert.Null(capabilities.Id);
        Assert.Equal(JsonValueKind.Object, capabilities.Value.ValueKind);

        var named = Assert.IsType<QmpReturn>(Parse("{\"return\": {}, \"id\": \"last\"}"));
        Assert.Equal("\"last\"", named.Id);
    }

    [Fact]
    public void Errors_carry_QMPs_class_and_description()
    {
        var errors = QmpTranscript.FromQemu.Select(l => QmpMessage.Parse(l)).OfType<QmpError>().ToList();
        Assert.Equal(("5", "CommandNotFound", "The command no-such-command has not been found"),
            (errors[0].Id, errors[0].Class, errors[0].Description));
        Assert.Equal(("6", "GenericError", "Parameter 'uri' is missing"), (errors[1].Id, errors[1].Class, errors[1].Description));
    }

    [Fact]
    public void Events_carry_name_data_and_timestamp()
    {
        var events = QmpTranscript.FromQemu.Select(l => QmpMessage.Parse(l)).OfType<QmpEvent>().ToList();
        Assert.Contains(events, e => e.Name == "STOP");
        Assert.Contains(events, e => e.Name == "RESUME" && e.Data.ValueKind == JsonValueKind.Undefined);
        var migration = events.Where(e => e.Name == "MIGRATION").Select(e => e.Data.GetProperty("status").GetString()).ToList();
        Assert.Equal(["setup", "active", "completed"], migration.Take(3));
        var shutdown = events.First(e => e.Name == "SHUTDOWN");
        Assert.Equal("host-qmp-quit", shutdown.Data.GetProperty("reason").GetString());

        var stop = Assert.IsType<QmpEvent>(Parse("{\"timestamp\": {\"seconds\": 1795643012, \"microseconds\": 869382}, \"event\": \"STOP\"}"));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1795643012).AddTicks(8693820), stop.Timestamp);
    }

    [Theory]
    [InlineData("")]
    [InlineData("[]")]
    [InlineData("{}")]
    [InlineData("{\"return\": {}")]
    [InlineData("{\"error\": {\"class\": \"GenericError\"}}")]
    [InlineData("{\"error\": \"oops\"}")]
    [InlineData("{\"event\": 7, \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}")]
    [InlineData("{\"event\": \"STOP\"}")]
    [InlineData("{\"event\": \"STOP\", \"timestamp\": {\"seconds\": -1, \"microseconds\": 2}}")]
    [InlineData("{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 1e400}}")]
    [InlineData("{\"QMP\": {}}")]
    [InlineData("{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2}}}}")]
    [InlineData("{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}}, \"capabilities\": [1]}}")]
    [InlineData("\"return\"")]
    public void Lines_that_are_not_QMP_are_protocol_errors(string line)
    {
        var e = Assert.Throws<QmpProtocolException>(() => Parse(line));
        Assert.StartsWith("QMP: ", e.Message);
    }

    [Fact]
    public void Deep_nesting_is_a_protocol_error_not_a_stack_overflow()
    {
        var deep = "{\"return\": " + new string('[', 10_000) + new string(']', 10_000) + "}";
        Assert.Throws<QmpProtocolException>(() => Parse(deep));
    }

    private const int Cases = 20_000;
    private static readonly byte[] Inserted = [.. "{}[]\":,0 -\\x"u8];

    [Fact]
    public void Random_bytes_only_ever_give_protocol_errors()
    {
        var random = new Random(4242);
        byte[] interesting = [.. "{}[]\":,0123456789.-e truefalsenull\\"u8, 0x00, 0x80, 0xc3, 0xff];
        for (var i = 0; i < Cases; i++)
        {
            var line = new byte[random.Next(0, 120)];
            random.NextBytes(line);
            for (var j = 0; j < line.Length; j++)
                if (random.Next(2) == 0)
                    line[j] = interesting[random.Next(interesting.Length)];
            Check(line);
        }
    }

    [Fact]
    public void Mutated_transcript_lines_only_ever_give_protocol_errors()
    {
        var random = new Random(7202);
        var seeds = QmpTranscript.FromQemu;
        int parsed = 0, refused = 0;
        for (var i = 0; i < Cases; i++)
        {
            var line = new List<byte>(seeds[random.Next(seeds.Count)]);
            for (var m = 1 + random.Next(4); m > 0; m--)
            {
                var at = line.Count == 0 ? 0 : random.Next(line.Count);
                switch (random.Next(4))
                {
                    case 0 when line.Count > 0:
                        line.RemoveAt(at);
                        break;
                    case 1:
                        line.Insert(at, Inserted[random.Next(Inserted.Length)]);
                        break;
                    case 2 when line.Count > 0:
                        line[at] ^= (byte)(1 << random.Next(8));
                        break;
                    default:
                        line.RemoveRange(at, line.Count - at);
                        break;
                }
            }
            if (Check([.. line]))
                parsed++;
            else
                refused++;
        }
        // Some mutations keep the line valid QMP (a changed digit), most do not.
        Assert.True(parsed > 0 && refused > 0, $"parsed {parsed}, refused {refused}");
    }

    private static bool Check(byte[] line)
    {
        try
        {
            QmpMessage.Parse(line);
            return true;
        }
        catch (QmpProtocolException)
        {
            return false;
        }
        catch (Exception e)
        {
            Assert.Fail($"{e.GetType().Name} ({e.Message}) for {Convert.ToHexString(line)}");
            return false;
        }
    }
}
