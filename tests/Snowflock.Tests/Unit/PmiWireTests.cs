using System.Text;
using Snowflock.Mpi.Pmi;
using Xunit;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed class PmiWireTests
{
    private static PmiParseResult Parse(string line) => PmiWire.Parse(Encoding.UTF8.GetBytes(line));

    private static PmiCommand ParseOk(string line)
    {
        var result = Parse(line);
        Assert.True(result.Ok, $"expected \"{line}\" to parse, got: {result.Error}");
        Assert.Null(result.Error);
        return result.Command!;
    }

    private static string ParseError(string line) => ParseError(Encoding.UTF8.GetBytes(line));

    private static string ParseError(byte[] line)
    {
        var result = PmiWire.Parse(line);
        Assert.False(result.Ok, $"expected a parse error for \"{Encoding.UTF8.GetString(line)}\"");
        Assert.Null(result.Command);
        Assert.False(string.IsNullOrWhiteSpace(result.Error));
        return result.Error!;
    }

    private static void AssertArgs(PmiCommand command, params (string Key, string Value)[] expected)
    {
        Assert.Equal(expected.Length, command.Arguments.Count);
        foreach (var (key, value) in expected)
            Assert.Equal(value, command[key]);
    }

    // ---- the real MPICH transcript ----

    public static TheoryData<int, string> TranscriptRequests()
    {
        var data = new TheoryData<int, string>();
        var requests = MpichTranscript.Requests;
        for (var i = 0; i < requests.Count; i++)
            data.Add(i, requests[i]);
        return data;
    }

    [Theory]
    [MemberData(nameof(TranscriptRequests))]
    public void Every_request_of_the_MPICH_transcript_parses(int index, string line)
    {
        var c = ParseOk(line);
        Assert.False(string.IsNullOrEmpty(c.Name), $"request {index} has no name");
        Assert.DoesNotContain(' ', c.Name);
    }

    [Fact]
    public void Transcript_requests_parse_to_the_expected_commands()
    {
        const string kvs = MpichTranscript.KvsName;
        var expected = new (string Name, (string, string)[] Args)[]
        {
            ("init", [("pmi_version", "1"), ("pmi_subversion", "1")]),
            ("get_maxes", []),
            ("get_appnum", []),
            ("get_my_kvsname", []),
            ("get", [("kvsname", kvs), ("key", "PMI_process_mapping")]),
            ("barrier_in", []),
            ("put", [("kvsname", kvs), ("key", "-bcast-1-0"), ("value", "2F6465762F73686D2F6D706963685F736861725F\u2026")]),
            ("barrier_in", []),
            ("put", [("kvsname", kvs), ("key", "-allgather-shm-1-0"), ("value", "20CD5A95920AC276D42000637577CC2B3200F8D7\u2026")]),
            ("barrier_in", []),
            ("get", [("kvsname", kvs), ("key", "-allgather-shm-1-0")]),
            ("barrier_in", []),
            ("finalize", []),
        };
        var requests = MpichTranscript.Requests;
        Assert.Equal(expected.Length, requests.Count);
        for (var i = 0; i < expected.Length; i++)
        {
            var c = ParseOk(requests[i]);
            Assert.Equal(expected[i].Name, c.Name);
            AssertArgs(c, expected[i].Args);
        }
    }

    [Fact]
    public void Transcript_replies_parse_and_Format_reproduces_them_byte_for_byte()
    {
        foreach (var reply in MpichTranscript.Replies)
        {
            var c = ParseOk(reply);
            // Format wants value last; hydra writes it last too, so the argument order is preserved.
            var args = ArgumentsInLineOrder(reply, c);
            var formatted = Encoding.UTF8.GetString(PmiWire.Format(c.Name, args));
            Assert.Equal(reply + "\n", formatted);
        }
    }

    private static (string, string)[] ArgumentsInLineOrder(string line, PmiCommand c) =>
        c.Arguments.OrderBy(a => a.Key == "value" ? int.MaxValue : line.IndexOf(" " + a.Key + "=", StringComparison.Ordinal))
            .Select(a => (a.Key, a.Value)).ToArray();

    // ---- line shape ----

    [Fact]
    public void Value_takes_the_rest_of_the_line_including_spaces()
    {
        var c = ParseOk("cmd=put kvsname=k key=a value=hello  world key2=x");
        Assert.Equal("put", c.Name);
        AssertArgs(c, ("kvsname", "k"), ("key", "a"), ("value", "hello  world key2=x"));
    }

    [Fact]
    public void Value_trailing_padding_is_trimmed_as_Open_MPI_pads()
    {
        var c = ParseOk("cmd=put kvsname=k key=a value=abc   \t  ");
        Assert.Equal("abc", c["value"]);
    }

    [Fact]
    public void Empty_value_is_allowed()
    {
        var c = ParseOk("cmd=put kvsname=k key=a value=");
        Assert.Equal("", c["value"]);
    }

    [Fact]
    public void Trailing_carriage_return_is_tolerated()
    {
        var c = ParseOk("cmd=get kvsname=k key=a\r");
        Assert.Equal("get", c.Name);
        AssertArgs(c, ("kvsname", "k"), ("key", "a"));
        Assert.Equal("v", ParseOk("cmd=put kvsname=k key=a value=v\r")["value"]);
        Assert.Equal("init", ParseOk("cmd=init\r").Name);
    }

    [Fact]
    public void Extra_spaces_and_tabs_between_pairs_are_tolerated()
    {
        var c = ParseOk("  cmd=get \t kvsname=k   key=a  ");
        Assert.Equal("get", c.Name);
        AssertArgs(c, ("kvsname", "k"), ("key", "a"));
    }

    [Fact]
    public void Value_of_other_keys_may_contain_equals_signs()
    {
        var c = ParseOk("cmd=abort exitcode=7 error_msg=a=b");
        Assert.Equal("a=b", c["error_msg"]);
        Assert.True(c.TryGetInt("exitcode", out var code));
        Assert.Equal(7, code);
    }

    [Fact]
    public void TryGetInt_reads_signed_numbers_and_refuses_the_rest()
    {
        var c = ParseOk("cmd=initack pmiid=-3 a=x b=1.5");
        Assert.True(c.TryGetInt("pmiid", out var id));
        Assert.Equal(-3, id);
        Assert.False(c.TryGetInt("a", out _));
        Assert.False(c.TryGetInt("b", out _));
        Assert.False(c.TryGetInt("missing", out _));
        Assert.Null(c["missing"]);
    }

    // ---- errors ----

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("foo=bar")]
    [InlineData("command=init")]
    [InlineData("CMD=init")]
    [InlineData("key=a cmd=get")]
    [InlineData("hello world")]
    public void A_line_without_cmd_first_is_an_error(string line)
    {
        Assert.Contains("cmd=", ParseError(line));
    }

    [Fact]
    public void Multi_line_spawn_commands_are_refused()
    {
        var error = ParseError("mcmd=spawn");
        Assert.Contains("mcmd", error);
    }

    [Theory]
    [InlineData("cmd=")]
    [InlineData("cmd= key=a")]
    [InlineData("cmd=\tkey=a")]
    public void Empty_command_name_is_an_error(string line)
    {
        Assert.Contains("empty", ParseError(line));
    }

    [Theory]
    [InlineData("cmd=get key=a key=b")]
    [InlineData("cmd=get key=a key=a")]
    [InlineData("cmd=put key=a key=b value=c")]
    public void Duplicate_key_is_an_error(string line)
    {
        Assert.Contains("twice", ParseError(line));
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0x01)]
    [InlineData(0x0a)]
    [InlineData(0x0d)]
    [InlineData(0x1b)]
    [InlineData(0x1f)]
    [InlineData(0x7f)]
    public void Control_bytes_are_an_error(int b)
    {
        var line = Encoding.ASCII.GetBytes("cmd=get key=ab");
        line[^2] = (byte)b;
        Assert.Contains("control", ParseError(line));
        // Inside a value too, where it would otherwise be stored and served to other ranks.
        var put = Encoding.ASCII.GetBytes("cmd=put kvsname=k key=a value=xy");
        put[^2] = (byte)b;
        Assert.Contains("control", ParseError(put));
    }

    [Fact]
    public void A_tab_is_not_a_control_byte()
    {
        Assert.Equal("a\tb", ParseOk("cmd=put kvsname=k key=a value=a\tb")["value"]);
    }

    [Theory]
    [InlineData(new byte[] { 0xff })]
    [InlineData(new byte[] { 0xc3 })]
    [InlineData(new byte[] { 0xe2, 0x80 })]
    [InlineData(new byte[] { 0xc0, 0xaf })]
    [InlineData(new byte[] { 0xed, 0xa0, 0x80 })]
    [InlineData(new byte[] { 0x80 })]
    public void Invalid_UTF8_is_an_error(byte[] bad)
    {
        var line = Encoding.ASCII.GetBytes("cmd=put kvsname=k key=a value=x").Concat(bad).ToArray();
        Assert.Contains("UTF-8", ParseError(line));
    }

    [Fact]
    public void Valid_multibyte_UTF8_is_kept()
    {
        var c = ParseOk("cmd=put kvsname=k key=a value=gr\u00fc\u00dfe \u2026 \U0001F600");
        Assert.Equal("gr\u00fc\u00dfe \u2026 \U0001F600", c["value"]);
    }

    [Fact]
    public void A_line_over_MaxLineBytes_is_an_error_and_one_at_the_limit_is_not()
    {
        const string head = "cmd=x pad=";
        var atLimit = head + new string('a', PmiWire.MaxLineBytes - head.Length);
        Assert.Equal(PmiWire.MaxLineBytes, Encoding.UTF8.GetByteCount(atLimit));
        Assert.Equal(PmiWire.MaxLineBytes - head.Length, ParseOk(atLimit)["pad"]!.Length);

        var error = ParseError(atLimit + "a");
        Assert.Contains(PmiWire.MaxLineBytes.ToString(), error);
        ParseError(new byte[1 << 20]);
    }

    [Fact]
    public void Key_over_64_characters_is_an_error()
    {
        var ok = new string('k', PmiWire.MaxKeyLength);
        Assert.Equal(ok, ParseOk($"cmd=get kvsname=k key={ok}")["key"]);
        var error = ParseError($"cmd=get kvsname=k key={ok}k");
        Assert.Contains("key", error);
        Assert.Contains(PmiWire.MaxKeyLength.ToString(), error);
    }

    [Fact]
    public void Value_over_1024_characters_is_an_error()
    {
        var ok = new string('v', PmiWire.MaxValueLength);
        Assert.Equal(ok, ParseOk($"cmd=put kvsname=k key=a value={ok}")["value"]);
        var error = ParseError($"cmd=put kvsname=k key=a value={ok}v");
        Assert.Contains("value", error);
        Assert.Contains(PmiWire.MaxValueLength.ToString(), error);
    }

    [Fact]
    public void Value_padding_does_not_count_against_the_limit()
    {
        var ok = new string('v', PmiWire.MaxValueLength);
        Assert.Equal(ok, ParseOk($"cmd=put kvsname=k key=a value={ok}" + new string(' ', 100))["value"]);
    }

    [Theory]
    [InlineData("cmd=get key")]
    [InlineData("cmd=get kvsname=k key")]
    [InlineData("cmd=get =v")]
    [InlineData("cmd=get kvsname=k =v")]
    [InlineData("cmd=get a b=c")]
    public void A_word_that_is_not_key_equals_value_is_an_error(string line)
    {
        Assert.Contains("key=value", ParseError(line));
    }

    [Fact]
    public void Parse_does_not_throw_on_an_empty_span()
    {
        Assert.False(PmiWire.Parse(ReadOnlySpan<byte>.Empty).Ok);
    }

    // ---- Format ----

    [Fact]
    public void Format_writes_one_line_with_value_last()
    {
        var bytes = PmiWire.Format("get_result", ("value", "v w"), ("rc", "0"), ("msg", "success"));
        Assert.Equal("cmd=get_result rc=0 msg=success value=v w\n", Encoding.UTF8.GetString(bytes));
        Assert.Equal("cmd=barrier_out\n", Encoding.UTF8.GetString(PmiWire.Format("barrier_out")));
    }

    public static TheoryData<string, (string, string)[]> RoundTrips() => new()
    {
        { "barrier_out", [] },
        { "set", [("size", "4")] },
        { "get_result", [("rc", "0"), ("msg", "success"), ("value", "(vector,(0,1,2))")] },
        { "get_result", [("rc", "0"), ("msg", "success"), ("value", "spaces  inside and key=value inside")] },
        { "put", [("value", "first in the list"), ("kvsname", "kvs_1_0"), ("key", "-bcast-1-0")] },
        { "put", [("kvsname", "k"), ("key", "u"), ("value", "\u00fc\u2026\U0001F600")] },
        { "put", [("kvsname", "k"), ("key", "e"), ("value", "")] },
        { "maxes", [("kvsname_max", "256"), ("keylen_max", "64"), ("vallen_max", "1024")] },
    };

    [Theory]
    [MemberData(nameof(RoundTrips))]
    public void Format_round_trips_through_Parse(string name, (string, string)[] args)
    {
        var bytes = PmiWire.Format(name, args);
        Assert.Equal((byte)'\n', bytes[^1]);
        Assert.Equal(1, bytes.Count(b => b == (byte)'\n'));
        var c = ParseOk(Encoding.UTF8.GetString(bytes, 0, bytes.Length - 1));
        Assert.Equal(name, c.Name);
        Assert.Equal(args.Length, c.Arguments.Count);
        foreach (var (key, value) in args)
            Assert.Equal(value, c[key]);
    }
}
