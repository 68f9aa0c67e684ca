using System.Text;
using Snowflock.Mpi.Pmi;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>Random and mutated lines: the parser faces whatever a broken or hostile peer sends, so
/// it must never throw and must always say either what the command is or why it is not one.</summary>
[Trait("Area", "unit")]
public sealed class PmiWireFuzzTests
{
    private const int Cases = 20_000;

    /// <summary>Bytes the grammar cares about, so random lines reach past the first check often.</summary>
    private static readonly byte[] Interesting =
        [.. "cmd= =\t\r\n"u8, 0x00, 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xff];

    [Fact]
    public void Random_bytes_never_make_Parse_throw()
    {
        var random = new Random(20240611);
        var oks = 0;
        for (var i = 0; i < Cases; i++)
        {
            var length = random.Next(8) == 0 ? random.Next(PmiWire.MaxLineBytes - 16, PmiWire.MaxLineBytes + 16) : random.Next(0, 96);
            var line = new byte[length];
            random.NextBytes(line);
            // Half of the lines start like a command, so the key=value loop is exercised too.
            if (random.Next(2) == 0 && length >= 4)
                "cmd="u8.CopyTo(line);
            for (var j = 0; j < length; j++)
                if (random.Next(3) == 0)
                    line[j] = Interesting[random.Next(Interesting.Length)];
            if (Check(line))
                oks++;
        }
        Assert.InRange(oks, 1, Cases - 1);
    }

    [Fact]
    public void Mutated_transcript_lines_never_make_Parse_throw()
    {
        var random = new Random(712);
        var seeds = MpichTranscript.Requests.Concat(MpichTranscript.Replies).Select(Encoding.UTF8.GetBytes).ToArray();
        var oks = 0;
        for (var i = 0; i < Cases; i++)
        {
            var line = new List<byte>(seeds[random.Next(seeds.Length)]);
            var mutations = 1 + random.Next(4);
            for (var m = 0; m < mutations; m++)
                Mutate(line, random);
            if (Check([.. line]))
                oks++;
        }
        // Some mutations leave a valid command (a flipped bit inside a value), most do not.
        Assert.InRange(oks, 1, Cases - 1);
    }

    private static void Mutate(List<byte> line, Random random)
    {
        switch (random.Next(5))
        {
            case 0 when line.Count > 0:
                var at = random.Next(line.Count);
                line[at] ^= (byte)(1 << random.Next(8));
                break;
            case 1:
                line.Insert(random.Next(line.Count + 1), random.Next(2) == 0 ? Interesting[random.Next(Interesting.Length)] : (byte)random.Next(256));
                break;
            case 2 when line.Count > 0:
                line.RemoveAt(random.Next(line.Count));
                break;
            case 3 when line.Count > 0:
                // Delete or duplicate a run, as a torn read would.
                var start = random.Next(line.Count);
                var count = random.Next(1, Math.Min(16, line.Count - start) + 1);
                if (random.Next(2) == 0)
                    line.RemoveRange(start, count);
                else
                    line.InsertRange(start, line.GetRange(start, count));
                break;
            default:
                line.Add(Interesting[random.Next(Interesting.Length)]);
                break;
        }
    }

    /// <summary>Parses one line and checks the result is well-formed; true when it is a command.</summary>
    private static bool Check(byte[] line)
    {
        PmiParseResult result;
        try
        {
            result = PmiWire.Parse(line);
        }
        catch (Exception e)
        {
            Assert.Fail($"Parse threw {e.GetType().Name} for {Convert.ToHexString(line)}: {e.Message}");
            throw;
        }
        if (!result.Ok)
        {
            Assert.Null(result.Command);
            Assert.False(string.IsNullOrEmpty(result.Error), $"no error text for {Convert.ToHexString(line)}");
            return false;
        }
        Assert.Null(result.Error);
        var c = result.Command!;
        Assert.False(string.IsNullOrEmpty(c.Name), $"empty name for {Convert.ToHexString(line)}");
        Assert.True(line.Length <= PmiWire.MaxLineBytes);
        foreach (var (key, value) in c.Arguments)
        {
            Assert.False(string.IsNullOrEmpty(key));
            Assert.True(key.IndexOfAny([' ', '\t', '=']) < 0, $"key \"{key}\" from {Convert.ToHexString(line)}");
            Assert.True(value.All(ch => ch >= 0x20 && ch != 0x7f || ch == '\t'), $"control character in value from {Convert.ToHexString(line)}");
            if (key != "value")
                Assert.True(value.IndexOfAny([' ', '\t']) < 0, $"blank in value of {key} from {Convert.ToHexString(line)}");
        }
        if (c["key"] is { } k)
            Assert.True(k.Length <= PmiWire.MaxKeyLength);
        if (c["value"] is { } v)
            Assert.True(v.Length <= PmiWire.MaxValueLength);
        return true;
    }
}
