using System.Text;
using Snowflock.Launcher;
using Snowflock.Launcher.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed class OutputRouterTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sftest-unit-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("out.%r", 3, "out.3")]
    [InlineData("out.%r", 12, "out.12")]
    [InlineData("out", 3, "out")]
    [InlineData("%r/%r.log", 0, "0/0.log")]
    public void Expand_replaces_every_percent_r_with_the_rank(string pattern, int rank, string expected)
    {
        Assert.Equal(expected, OutputRouter.Expand(pattern, rank));
    }

    [Fact]
    public async Task An_unwritable_pattern_fails_before_any_rank_starts()
    {
        var options = new OutputOptions { StdoutPattern = "/proc/nonexistent/x.%r" };
        var e = await Assert.ThrowsAsync<OutputPatternException>(() => OutputRouter.OpenAsync(options, 2, Stream.Null, Stream.Null));
        Assert.Contains("-outfile-pattern", e.Message);
        Assert.Contains("/proc/nonexistent/x.0", e.Message);
    }

    [Fact]
    public async Task An_unwritable_errfile_pattern_names_its_option()
    {
        var options = new OutputOptions { StdoutPattern = Path.Combine(_dir, "o.%r"), StderrPattern = Path.Combine(_dir, "missing", "e.%r") };
        var e = await Assert.ThrowsAsync<OutputPatternException>(() => OutputRouter.OpenAsync(options, 1, Stream.Null, Stream.Null));
        Assert.Contains("-errfile-pattern", e.Message);
    }

    [Fact]
    public async Task Without_patterns_output_goes_to_sfruns_own_streams()
    {
        var stdout = new MemoryStream();
        var stderr = new MemoryStream();
        await using (var router = await OutputRouter.OpenAsync(new OutputOptions(), 2, stdout, stderr))
        {
            await router.StdoutOf(0).WriteAsync("o0\n"u8.ToArray(), default);
            await router.StdoutOf(1).WriteAsync("o1\n"u8.ToArray(), default);
            await router.StderrOf(1).WriteAsync("e1\n"u8.ToArray(), default);
            Assert.Same(router.StdoutOf(0), router.StdoutOf(1));
            Assert.NotSame(router.StdoutOf(0), router.StderrOf(0));
        }
        Assert.Equal("o0\no1\n", Encoding.UTF8.GetString(stdout.ToArray()));
        Assert.Equal("e1\n", Encoding.UTF8.GetString(stderr.ToArray()));
        // sfrun's own streams are not the router's to close.
        Assert.True(stdout.CanWrite);
    }

    [Fact]
    public async Task Patterns_give_each_rank_its_own_file()
    {
        var options = new OutputOptions { StdoutPattern = Path.Combine(_dir, "out.%r"), StderrPattern = Path.Combine(_dir, "err.%r") };
        await using (var router = await OutputRouter.OpenAsync(options, 2, Stream.Null, Stream.Null))
        {
            // Every file exists as soon as the router is open, before any output.
            Assert.True(File.Exists(Path.Combine(_dir, "out.1")));
            await router.StdoutOf(0).WriteAsync("zero\n"u8.ToArray(), default);
            await router.StdoutOf(1).WriteAsync("one\n"u8.ToArray(), default);
            await router.StderrOf(1).WriteAsync("oops\n"u8.ToArray(), default);
        }
        Assert.Equal("zero\n", File.ReadAllText(Path.Combine(_dir, "out.0")));
        Assert.Equal("one\n", File.ReadAllText(Path.Combine(_dir, "out.1")));
        Assert.Equal("", File.ReadAllText(Path.Combine(_dir, "err.0")));
        Assert.Equal("oops\n", File.ReadAllText(Path.Combine(_dir, "err.1")));
    }

    [Fact]
    public async Task Ranks_whose_pattern_expands_alike_share_one_file()
    {
        var options = new OutputOptions { StdoutPattern = Path.Combine(_dir, "all.log") };
        await using (var router = await OutputRouter.OpenAsync(options, 3, Stream.Null, Stream.Null))
        {
            Assert.Same(router.StdoutOf(0), router.StdoutOf(2));
            await router.StdoutOf(0).WriteAsync("a\n"u8.ToArray(), default);
            await router.StdoutOf(2).WriteAsync("b\n"u8.ToArray(), default);
        }
        Assert.Equal("a\nb\n", File.ReadAllText(Path.Combine(_dir, "all.log")));
    }

    [Fact]
    public async Task A_pattern_file_is_truncated_not_appended()
    {
        var path = Path.Combine(_dir, "out.0");
        File.WriteAllText(path, "old content that is longer\n");
        await using (var router = await OutputRouter.OpenAsync(new OutputOptions { StdoutPattern = Path.Combine(_dir, "out.%r") }, 1, Stream.Null, Stream.Null))
            await router.StdoutOf(0).WriteAsync("new\n"u8.ToArray(), default);
        Assert.Equal("new\n", File.ReadAllText(path));
    }

    // ---- OutputSink ----

    [Fact]
    public async Task Sink_writes_chunks_in_order_and_flushes_on_dispose()
    {
        var target = new MemoryStream();
        var sink = new OutputSink(target, ownsStream: false);
        for (var i = 0; i < 1000; i++)
            await sink.WriteAsync(Encoding.ASCII.GetBytes($"{i}\n"), default);
        await sink.DisposeAsync();
        Assert.Equal(string.Concat(Enumerable.Range(0, 1000).Select(i => $"{i}\n")), Encoding.ASCII.GetString(target.ToArray()));
        Assert.True(target.CanWrite);
    }

    [Fact]
    public async Task Sink_that_owns_its_stream_closes_it()
    {
        var target = new MemoryStream();
        var sink = new OutputSink(target, ownsStream: true);
        await sink.WriteAsync("x"u8.ToArray(), default);
        await sink.DisposeAsync();
        Assert.False(target.CanWrite);
    }

    [Fact]
    public async Task A_broken_destination_is_noted_and_output_dropped_without_throwing()
    {
        var target = new BrokenPipeStream();
        var sink = new OutputSink(target, ownsStream: false);
        await sink.WriteAsync("lost\n"u8.ToArray(), default);
        await sink.WriteAsync(new byte[100_000], default);
        await sink.DisposeAsync();
        Assert.True(sink.Broken);
    }

    /// <summary>Stands for stdout piped into a reader that went away (EPIPE).</summary>
    private sealed class BrokenPipeStream : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => throw new IOException("Broken pipe");
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new IOException("Broken pipe");
    }
}
