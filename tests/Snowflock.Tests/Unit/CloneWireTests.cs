using Snowflock.Launcher.Internal.Clones;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>The clone agent's line protocol (native/sf/protocol.h): what libsf sends parses to the
/// request it means, anything else is refused with a reason, and random or mutated lines never
/// make the parser fail in another way.</summary>
[Trait("Area", "unit")]
public sealed class CloneWireTests
{
    [Fact]
    public void The_lines_libsf_sends_parse_to_their_requests()
    {
        Assert.Equal(new CloneRequest.Hello(1), CloneWire.Parse("hello version=1"));
        Assert.Equal(new CloneRequest.Ticket(8), CloneWire.Parse("ticket n=8"));
        Assert.Equal(new CloneRequest.Done(3), CloneWire.Parse("done ticket=3"));
        var cloned = Assert.IsType<CloneRequest.Cloned>(CloneWire.Parse("cloned ticket=2 pids=100,101,4194304"));
        Assert.Equal(2, cloned.TicketId);
        Assert.Equal([100, 101, 4194304], cloned.Pids);
    }

    [Theory]
    [InlineData("", "empty line")]
    [InlineData("ticket", "'n' must be")]
    [InlineData("ticket n=0", "'n' must be")]
    [InlineData("ticket n=-3", "'n' must be")]
    [InlineData("ticket n=+3", "'n' must be")]
    [InlineData("ticket n=99999999999", "'n' must be")]
    [InlineData("ticket n=2 n=3", "bad field")]
    [InlineData("ticket n=2 extra=1", "takes 1 field")]
    [InlineData("ticket  n=2", "bad field")]
    [InlineData("fork n=2", "unknown request")]
    [InlineData("cloned ticket=1", "'pids' is missing")]
    [InlineData("cloned ticket=1 pids=", "'pids' is missing")]
    [InlineData("cloned ticket=1 pids=12,,13", "bad pid")]
    [InlineData("cloned ticket=1 pids=1", "bad pid")]
    [InlineData("cloned ticket=1 pids=12,12", "listed twice")]
    [InlineData("done ticket=x", "'ticket' must be")]
    [InlineData("hello version=1\r", "'version' must be")]
    public void Malformed_lines_are_refused_with_a_reason(string line, string reason)
    {
        var e = Assert.Throws<FormatException>(() => CloneWire.Parse(line));
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void Replies_are_single_lines()
    {
        Assert.Equal("ok\n", CloneWire.Ok());
        Assert.Equal("ok ticket=7\n", CloneWire.Ok("ticket", 7));
        Assert.Equal("error E2BIG too many clones\n", CloneWire.Error("E2BIG", "too many\nclones"));
    }

    [Fact]
    public void Random_and_mutated_lines_never_break_the_parser()
    {
        var random = new Random(20261125);
        string[] seeds = ["hello version=1", "ticket n=8", "cloned ticket=2 pids=100,101,102", "done ticket=2"];
        const string Alphabet = "abcdehiklnoprstv=, 0123456789-\t\0\u00e9";
        var parsed = 0;
        for (var i = 0; i < 20_000; i++)
        {
            var chars = seeds[random.Next(seeds.Length)].ToCharArray().ToList();
            for (var m = random.Next(1, 4); m > 0; m--)
            {
                var at = random.Next(chars.Count + 1);
                switch (random.Next(3))
                {
                    case 0 when chars.Count > 0 && at < chars.Count: chars.RemoveAt(at); break;
                    case 1: chars.Insert(at, Alphabet[random.Next(Alphabet.Length)]); break;
                    default: if (at < chars.Count) chars[at] = Alphabet[random.Next(Alphabet.Length)]; break;
                }
            }
            if (random.Next(50) == 0)
                chars.AddRange(Enumerable.Repeat('9', CloneWire.MaxLine));
            try
            {
                Assert.NotNull(CloneWire.Parse(new string([.. chars])));
                parsed++;
            }
            catch (FormatException)
            {
            }
        }
        Assert.InRange(parsed, 1, 19_999);
    }
}
