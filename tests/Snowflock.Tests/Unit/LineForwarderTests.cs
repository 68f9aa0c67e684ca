using System.IO.Pipelines;
using System.Text;
using Snowflock.Launcher.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>Rank output re-assembled into lines: tagged, never interleaved mid-line, byte-exact.</summary>
[Trait("Area", "unit")]
public sealed class LineForwarderTests : IDisposable
{
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(10));
    private CancellationToken Ct => _timeout.Token;

    public void Dispose() => _timeout.Dispose();

    private static readonly byte[] Tag3 = LineForwarder.TagFor(3);

    /// <summary>Feeds <paramref name="pieces"/> one write (and flush) at a time through a pipe, as a
    /// rank's unbuffered stdout arrives, and returns what the sink wrote.</summary>
    private async Task<byte[]> ForwardAsync(byte[]? tag, params byte[][] pieces)
    {
        var target = new MemoryStream();
        var sink = new OutputSink(target, ownsStream: false);
        var pipe = new Pipe();
        var forwarding = LineForwarder.ForwardAsync(pipe.Reader.AsStream(), sink, tag, Ct);
        foreach (var piece in pieces)
        {
            await pipe.Writer.WriteAsync(piece, Ct);
            await pipe.Writer.FlushAsync(Ct);
        }
        await pipe.Writer.CompleteAsync();
        await forwarding.WaitAsync(Ct);
        await sink.DisposeAsync();
        Assert.False(sink.Broken);
        return target.ToArray();
    }

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public void Tag_is_the_rank_in_brackets_and_a_space()
    {
        Assert.Equal("[3] "u8.ToArray(), LineForwarder.TagFor(3));
        Assert.Equal("[12] "u8.ToArray(), LineForwarder.TagFor(12));
    }

    [Fact]
    public async Task Lines_split_across_writes_come_out_whole_and_tagged()
    {
        var output = await ForwardAsync(Tag3, B("hel"), B("lo\nwor"), B("ld"), B("\n"), B("\n"), B("a\nb\nc\n"));
        Assert.Equal("[3] hello\n[3] world\n[3] \n[3] a\n[3] b\n[3] c\n", Encoding.UTF8.GetString(output));
    }

    [Fact]
    public async Task Without_a_tag_bytes_pass_unchanged()
    {
        var output = await ForwardAsync(null, B("hel"), B("lo\nwor"), B("ld\n"));
        Assert.Equal("hello\nworld\n", Encoding.UTF8.GetString(output));
    }

    [Fact]
    public async Task A_partial_last_line_is_emitted_at_end_of_stream_without_a_newline()
    {
        var output = await ForwardAsync(Tag3, B("one\ntw"), B("o"));
        Assert.Equal("[3] one\n[3] two", Encoding.UTF8.GetString(output));
    }

    [Fact]
    public async Task An_empty_stream_writes_nothing()
    {
        Assert.Empty(await ForwardAsync(Tag3));
    }

    [Fact]
    public async Task Binary_bytes_pass_through_exactly()
    {
        var all = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        Assert.Equal(all, await ForwardAsync(null, all[..100], all[100..]));

        // With a tag, every byte still arrives; a tag follows each newline.
        var input = new byte[] { 0x00, 0xff, 0xc3, (byte)'\n', 0xe2, 0x82, 0x00, 0x80, (byte)'\n', 0xfe };
        var expected = Tag3.Concat(input[..4]).Concat(Tag3).Concat(input[4..9]).Concat(Tag3).Concat(input[9..]).ToArray();
        Assert.Equal(expected, await ForwardAsync(Tag3, input[..2], input[2..7], input[7..]));
    }

    [Fact]
    public async Task Random_binary_data_in_random_pieces_round_trips()
    {
        var random = new Random(99);
        var data = new byte[300_000];
        random.NextBytes(data);
        var pieces = new List<byte[]>();
        for (var at = 0; at < data.Length;)
        {
            var n = Math.Min(data.Length - at, 1 + random.Next(5000));
            pieces.Add(data[at..(at + n)]);
            at += n;
        }
        Assert.Equal(data, await ForwardAsync(null, [.. pieces]));

        // Tagged, removing each tag at line starts gives the input back.
        var tagged = await ForwardAsync(Tag3, [.. pieces]);
        var lines = data.Count(b => b == (byte)'\n') + (data[^1] == (byte)'\n' ? 0 : 1);
        Assert.Equal(data.Length + lines * Tag3.Length, tagged.Length);
        var untagged = new List<byte>(data.Length);
        var atStart = true;
        for (var i = 0; i < tagged.Length;)
        {
            if (atStart)
            {
                Assert.Equal(Tag3, tagged[i..(i + Tag3.Length)]);
                i += Tag3.Length;
            }
            atStart = tagged[i] == (byte)'\n';
            untagged.Add(tagged[i++]);
        }
        Assert.Equal(data, untagged);
    }

    [Fact]
    public async Task A_one_MiB_line_without_newline_comes_out_intact()
    {
        var line = new byte[1 << 20];
        new Random(1).NextBytes(line);
        for (var i = 0; i < line.Length; i++)
            if (line[i] == (byte)'\n')
                line[i] = (byte)'x';
        var pieces = Enumerable.Range(0, 64).Select(k => line[(k * 16384)..((k + 1) * 16384)]).ToArray();
        Assert.Equal(Tag3.Concat(line), await ForwardAsync(Tag3, pieces));
    }

    [Fact]
    public async Task A_line_longer_than_MaxHeldLine_is_passed_on_in_pieces_tagged_once()
    {
        var line = Enumerable.Repeat((byte)'y', LineForwarder.MaxHeldLine + 100_000).ToArray();
        var output = await ForwardAsync(Tag3, line, B("\nnext\n"));
        Assert.Equal(Tag3.Concat(line).Concat(B("\n")).Concat(Tag3).Concat(B("next\n")).ToArray(), output);
    }

    [Fact]
    public async Task A_MemoryStream_source_works_too()
    {
        var target = new MemoryStream();
        var sink = new OutputSink(target, ownsStream: false);
        await LineForwarder.ForwardAsync(new MemoryStream(B("a\nb")), sink, LineForwarder.TagFor(0), Ct);
        await sink.DisposeAsync();
        Assert.Equal("[0] a\n[0] b", Encoding.UTF8.GetString(target.ToArray()));
    }

    [Fact]
    public async Task Ranks_sharing_a_sink_never_interleave_mid_line()
    {
        var target = new MemoryStream();
        var sink = new OutputSink(target, ownsStream: false);
        const int ranks = 4, linesPerRank = 500;
        var pipes = Enumerable.Range(0, ranks).Select(_ => new Pipe()).ToArray();
        var forwarders = pipes.Select((p, r) => LineForwarder.ForwardAsync(p.Reader.AsStream(), sink, LineForwarder.TagFor(r), Ct)).ToArray();
        var writers = pipes.Select((p, r) => Task.Run(async () =>
        {
            for (var i = 0; i < linesPerRank; i++)
            {
                // Each line in three writes, as printf pieces of an unbuffered rank arrive.
                foreach (var piece in new[] { $"rank {r} ", $"line {i} ", "end\n" })
                {
                    await p.Writer.WriteAsync(B(piece), Ct);
                    await p.Writer.FlushAsync(Ct);
                }
            }
            await p.Writer.CompleteAsync();
        })).ToArray();
        await Task.WhenAll(writers).WaitAsync(Ct);
        await Task.WhenAll(forwarders).WaitAsync(Ct);
        await sink.DisposeAsync();

        var lines = Encoding.UTF8.GetString(target.ToArray()).Split('\n');
        Assert.Equal("", lines[^1]);
        Assert.Equal(ranks * linesPerRank, lines.Length - 1);
        var next = new int[ranks];
        foreach (var line in lines[..^1])
        {
            var r = line[1] - '0';
            Assert.Equal($"[{r}] rank {r} line {next[r]} end", line);
            next[r]++;
        }
        Assert.All(next, n => Assert.Equal(linesPerRank, n));
    }

    [Fact]
    public async Task Cancellation_ends_forwarding_quietly()
    {
        var target = new MemoryStream();
        var sink = new OutputSink(target, ownsStream: false);
        var pipe = new Pipe();
        using var stop = new CancellationTokenSource();
        var forwarding = LineForwarder.ForwardAsync(pipe.Reader.AsStream(), sink, Tag3, stop.Token);
        await pipe.Writer.WriteAsync(B("done\nhalf"), Ct);
        await pipe.Writer.FlushAsync(Ct);
        await stop.CancelAsync();
        await forwarding.WaitAsync(Ct);
        await sink.DisposeAsync();
        // Whatever was read before the cancellation went out as whole lines; the half line did not.
        Assert.Contains(Encoding.UTF8.GetString(target.ToArray()), new[] { "", "[3] done\n" });
    }
}
