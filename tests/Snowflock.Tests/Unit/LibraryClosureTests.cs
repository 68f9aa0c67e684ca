using System.Text.RegularExpressions;
using Snowflock.Engine.Guest;
using Snowflock.Engine.Guest.Internal;
using Snowflock.Tests.Integration.Support;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>The closure of real programs compared with what the host's loader (ldd) resolves for
/// them, and the RUNPATH, script and symlink rules on programs compiled here.</summary>
[Trait("Area", "unit")]
public sealed partial class LibraryClosureTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sftest-closure-" + Guid.NewGuid().ToString("N"));

    public LibraryClosureTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [GeneratedRegex(@"=> (?<path>/\S+)|^\s*(?<path>/\S+) \(")]
    private static partial Regex LddPath();

    private static async Task<List<string>> Ldd(string program)
    {
        var r = await CommandRun.RunAsync("ldd", [program]);
        Assert.True(r.ExitCode == 0, r.Err);
        return r.OutLines.Select(l => LddPath().Match(l)).Where(m => m.Success).Select(m => m.Groups["path"].Value).ToList();
    }

    [Fact]
    public async Task The_MPICH_example_gets_every_library_ldd_finds_and_the_loader()
    {
        var cpi = Repo.Example("cpi");
        var layout = new ImageLayout();
        var closure = LibraryClosure.ForHost(layout);
        closure.Add(cpi);

        Assert.Empty(closure.Missing);
        Assert.IsType<HostFileEntry>(layout[cpi]);
        foreach (var path in await Ldd(cpi))
            Assert.True(layout.Contains(path), $"{path} (from ldd) is not in the image");
        foreach (var name in new[] { "libmpich.so.12", "libucp.so.0", "libc.so.6" })
            Assert.Contains(closure.Files, f => Path.GetFileName(f).StartsWith(name, StringComparison.Ordinal));
        Assert.True(layout.Contains("/lib64/ld-linux-x86-64.so.2"));
        // The soname is a symlink in the image, as on the host, and its target is there too.
        var soname = Assert.IsType<SymlinkEntry>(layout["/usr/lib/x86_64-linux-gnu/libmpich.so.12"]);
        Assert.IsType<HostFileEntry>(layout[Path.Combine("/usr/lib/x86_64-linux-gnu", soname.Target)]);
    }

    [Fact]
    public async Task RUNPATH_with_ORIGIN_is_followed()
    {
        await File.WriteAllTextAsync(Path.Combine(_dir, "lib.c"), "int f(void) { return 4; }\n");
        await File.WriteAllTextAsync(Path.Combine(_dir, "main.c"), "int f(void);\nint main(void) { return f(); }\n");
        Directory.CreateDirectory(Path.Combine(_dir, "lib"));
        await Cc("-shared", "-fPIC", "-o", Path.Combine(_dir, "lib", "libsftestf.so"), Path.Combine(_dir, "lib.c"));
        await Cc("-o", Path.Combine(_dir, "main"), Path.Combine(_dir, "main.c"), "-L" + Path.Combine(_dir, "lib"), "-lsftestf",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib");

        var layout = new ImageLayout();
        var closure = LibraryClosure.ForHost(layout);
        closure.Add(Path.Combine(_dir, "main"));
        Assert.Empty(closure.Missing);
        Assert.True(layout.Contains(Path.Combine(_dir, "lib", "libsftestf.so")));
    }

    [Fact]
    public async Task A_missing_library_is_reported_with_who_needs_it()
    {
        await File.WriteAllTextAsync(Path.Combine(_dir, "lib.c"), "int f(void) { return 4; }\n");
        await File.WriteAllTextAsync(Path.Combine(_dir, "main.c"), "int f(void);\nint main(void) { return f(); }\n");
        await Cc("-shared", "-fPIC", "-o", Path.Combine(_dir, "libsftestgone.so"), Path.Combine(_dir, "lib.c"));
        await Cc("-o", Path.Combine(_dir, "main"), Path.Combine(_dir, "main.c"), "-L" + _dir, "-lsftestgone");
        File.Delete(Path.Combine(_dir, "libsftestgone.so"));

        var closure = LibraryClosure.ForHost(new ImageLayout());
        closure.Add(Path.Combine(_dir, "main"));
        Assert.Equal([(Path.Combine(_dir, "main"), "libsftestgone.so")], closure.Missing);
    }

    [Fact]
    public async Task A_script_brings_its_interpreter_and_env_programs_their_target()
    {
        var script = Path.Combine(_dir, "job.sh");
        await File.WriteAllTextAsync(script, "#!/bin/sh\necho hi\n");
        var envScript = Path.Combine(_dir, "job.py");
        await File.WriteAllTextAsync(envScript, "#!/usr/bin/env python3\nprint('hi')\n");
        var layout = new ImageLayout();
        var closure = LibraryClosure.ForHost(layout);
        closure.Add(script);
        closure.Add(envScript);

        Assert.True(layout.Contains("/bin/sh"));
        var realShell = (await CommandRun.RunAsync("readlink", ["-f", "/bin/sh"])).Out.Trim();
        Assert.Contains(realShell, closure.Files);
        Assert.True(layout.Contains("/usr/bin/env"));
        Assert.Contains(closure.Files, f => Path.GetFileName(f).StartsWith("python3", StringComparison.Ordinal));
        Assert.Contains(closure.Files, f => Path.GetFileName(f).StartsWith("libc.so", StringComparison.Ordinal));
    }

    [Fact]
    public void A_merged_usr_host_keeps_its_top_level_links()
    {
        var layout = new ImageLayout();
        layout.TryAdd(new SymlinkEntry("/lib", "usr/lib"));
        layout.TryAdd(new ContentEntry("/lib/modules/x.ko", 0x1A4, []));
        Assert.Equal("/usr/lib/modules/x.ko", layout.Canonical("/lib/modules/x.ko"));
        Assert.IsType<ContentEntry>(layout["/usr/lib/modules/x.ko"]);
        Assert.False(layout.TryAdd(new ContentEntry("/usr/lib/modules/x.ko", 0x1A4, [1])));
        var paths = layout.Entries.Select(e => e.Path).ToList();
        Assert.Equal(["/lib", "/usr", "/usr/lib", "/usr/lib/modules", "/usr/lib/modules/x.ko"], paths);
    }

    [Fact]
    public void A_missing_program_is_a_clear_error()
    {
        var e = Assert.Throws<GuestImageException>(() => LibraryClosure.ForHost(new ImageLayout()).Add(Path.Combine(_dir, "nope")));
        Assert.Contains("no such file", e.Message);
    }

    private static async Task Cc(params string[] args)
    {
        var r = await CommandRun.RunAsync("cc", args, bound: TimeSpan.FromSeconds(60));
        Assert.True(r.ExitCode == 0, r.Err);
    }
}
