using System.Text;
using Snowflock.Engine.Guest.Internal;
using Snowflock.Tests.Integration.Support;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>Archives written by <see cref="CpioWriter"/>, read back by GNU cpio (what the newc
/// format is defined by in practice, besides the kernel itself).</summary>
[Trait("Area", "unit")]
public sealed class CpioWriterTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sftest-cpio-" + Guid.NewGuid().ToString("N"));

    public CpioWriterTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private async Task<string> WriteSample()
    {
        var host = Path.Combine(_dir, "host.bin");
        var bytes = new byte[70_001];
        new Random(1).NextBytes(bytes);
        await File.WriteAllBytesAsync(host, bytes);
        var archive = Path.Combine(_dir, "a.cpio");
        await using (var output = File.Create(archive))
        {
            var cpio = new CpioWriter(output);
            await cpio.AddDirectoryAsync("/bin", 0x1ED, default);
            await cpio.AddDirectoryAsync("/tmp", 0x3FF, default);
            await cpio.AddFileAsync("/bin/hello", 0x1ED, Encoding.UTF8.GetBytes("#!/bin/sh\necho hi\n"), default);
            await cpio.AddFileAsync("/empty", 0x1A4, ReadOnlyMemory<byte>.Empty, default);
            await cpio.AddHostFileAsync("/bin/data", 0x1A4, host, default);
            await cpio.AddSymlinkAsync("/bin/sh", "hello", default);
            await cpio.AddSymlinkAsync("/abs", "/bin/data", default);
            await cpio.FinishAsync(default);
        }
        return archive;
    }

    [Fact]
    public async Task Cpio_lists_every_entry_with_its_type_and_mode()
    {
        var archive = await WriteSample();
        var r = await CommandRun.RunAsync("sh", ["-c", $"cpio -t -v --quiet < '{archive}'"]);
        Assert.True(r.ExitCode == 0, r.Err);
        var lines = r.OutLines.Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
        Assert.Equal(["bin", "tmp", "bin/hello", "empty", "bin/data", "bin/sh", "abs"], lines.Select(l => l[8]));
        Assert.Equal(["drwxr-xr-x", "drwxrwxrwt", "-rwxr-xr-x", "-rw-r--r--", "-rw-r--r--", "lrwxrwxrwx", "lrwxrwxrwx"], lines.Select(l => l[0]));
        Assert.Equal("hello", lines[5][^1]);
        Assert.Equal(0, new FileInfo(archive).Length % 512);
    }

    [Fact]
    public async Task Cpio_extracts_the_same_bytes_and_links()
    {
        var archive = await WriteSample();
        var into = Path.Combine(_dir, "out");
        Directory.CreateDirectory(into);
        var r = await CommandRun.RunAsync("sh", ["-c", $"cpio -i -d --quiet --no-absolute-filenames < '{archive}'"], workingDirectory: into);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(_dir, "host.bin")), await File.ReadAllBytesAsync(Path.Combine(into, "bin", "data")));
        Assert.Equal("#!/bin/sh\necho hi\n", await File.ReadAllTextAsync(Path.Combine(into, "bin", "hello")));
        Assert.Equal(0, new FileInfo(Path.Combine(into, "empty")).Length);
        Assert.Equal("hello", new FileInfo(Path.Combine(into, "bin", "sh")).LinkTarget);
        Assert.Equal("/bin/data", new FileInfo(Path.Combine(into, "abs")).LinkTarget);
    }

    [Fact]
    public async Task Equal_inputs_give_equal_bytes()
    {
        var first = await File.ReadAllBytesAsync(await WriteSample());
        var second = await File.ReadAllBytesAsync(await WriteSample());
        Assert.Equal(first, second);
    }
}
