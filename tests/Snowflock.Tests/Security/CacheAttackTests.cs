using Snowflock.Engine.Internal;
using Snowflock.Tests.Integration.Support;
using Snowflock.Tests.Security.Support;

namespace Snowflock.Tests.Security;

/// <summary>
/// Issue 13, items 9 and 11: the cache (copies of the user's programs in guest images, template RAM
/// files) and the qemu run folder are the user's alone; a full or unwritable cache is one line that
/// names the folder, never a hang or a .NET resource key.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Area", "security")]
[Collection(SerialCollection.Name)]
public sealed class CacheAttackTests(SecondUser attacker) : IClassFixture<SecondUser>
{
    private static IEnumerable<string> Tree(string root) =>
        new[] { root }.Concat(Directory.EnumerateFileSystemEntries(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }));

    private static void AssertPrivate(string root)
    {
        foreach (var path in Tree(root))
        {
            var info = new FileInfo(path);
            if (info.LinkTarget is not null)
                continue;
            Assert.True(((int)File.GetUnixFileMode(path) & 0x3F) == 0, $"{path} is {Convert.ToString((int)File.GetUnixFileMode(path), 8)}");
        }
    }

    [Fact]
    public async Task A_cache_made_open_by_an_older_sfrun_is_closed_and_new_entries_are_private()
    {
        var home = Directory.CreateTempSubdirectory("sftest-xdg-").FullName;
        File.SetUnixFileMode(home, (UnixFileMode)0x1ED);
        try
        {
            var cache = Path.Combine(home, "snowflock");
            Directory.CreateDirectory(Path.Combine(cache, "warm-profiles"));
            File.SetUnixFileMode(cache, (UnixFileMode)0x1ED);
            await File.WriteAllTextAsync(Path.Combine(cache, "old.txt"), "from an older sfrun");
            File.SetUnixFileMode(Path.Combine(cache, "old.txt"), (UnixFileMode)0x1A4);
            for (var i = 0; i < 2; i++) // the first records a warm profile, the second reads it
            {
                var r = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "2", Repo.Example("hello")], env: new Dictionary<string, string> { ["XDG_CACHE_HOME"] = home });
                Assert.True(r.ExitCode == 0, r.Err);
            }
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(cache, "warm-profiles")));
            AssertPrivate(cache);
            // And the other user, trying every path, opens none of them.
            var paths = string.Join(",", Tree(cache).Select(p => $"'{p}'"));
            var peek = await attacker.PythonAsync($$"""
                import os
                opened = 0
                for p in [{{paths}}]:
                    try:
                        os.close(os.open(p, os.O_RDONLY)); opened += 1
                    except OSError:
                        pass
                print(f"opened {opened}")
                """);
            Assert.Contains("opened 0", peek.Out);
        }
        finally
        {
            SafeTree.Delete(home);
        }
    }

    [Fact]
    public async Task Qemu_cache_and_run_folder_are_private()
    {
        var cache = Path.Combine(Environment.GetEnvironmentVariable("HOME")!, ".cache", "snowflock");
        if (Directory.Exists(cache))
            File.SetUnixFileMode(cache, (UnixFileMode)0x1ED); // as older sfruns left it
        var perUser = PrivateDirectory.PerUser;
        await using var job = CommandRun.Start(Repo.Sfrun, ["--engine", "qemu", "-np", "1", Repo.Example("hello")]);
        var modes = new HashSet<string>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(300);
        var run = job.WaitAsync(TimeSpan.FromSeconds(300));
        while (!run.IsCompleted && DateTime.UtcNow < deadline)
        {
            foreach (var dir in Directory.GetDirectories(perUser, "qemu-*"))
                try
                {
                    foreach (var p in Tree(dir))
                        modes.Add($"{p} {Convert.ToString((int)File.GetUnixFileMode(p) & 0x1FF, 8)}");
                }
                catch (IOException)
                {
                    // Gone as the job ended.
                }
            await Task.Delay(20);
        }
        var result = await run;
        Assert.True(result.ExitCode == 0, result.Err);
        Assert.Contains(modes, m => m.Contains("/qemu-", StringComparison.Ordinal));
        Assert.DoesNotContain(modes, m => Path.GetFileName(m.Split(' ')[0]).StartsWith("qemu-", StringComparison.Ordinal) && !m.EndsWith(" 700", StringComparison.Ordinal));
        Assert.True(Directory.Exists(cache));
        AssertPrivate(cache);
    }

    private static async Task<string> MountAsync(string options)
    {
        var dir = Directory.CreateTempSubdirectory("sftest-tmpfs-").FullName;
        var r = await CommandRun.RunAsync("/bin/mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]);
        Assert.True(r.ExitCode == 0, r.Err);
        return dir;
    }

    private static async Task UnmountAsync(string dir)
    {
        await CommandRun.RunAsync("/bin/umount", [dir]);
        Directory.Delete(dir);
    }

    [Fact]
    public async Task A_full_cache_disk_is_one_line_naming_the_folder_not_a_hang()
    {
        var dir = await MountAsync("size=2m");
        try
        {
            var r = await CommandRun.RunAsync(Repo.Sfrun, ["--engine", "qemu", "-np", "1", Repo.Example("hello")],
                env: new Dictionary<string, string> { ["XDG_CACHE_HOME"] = dir }, bound: TimeSpan.FromSeconds(120));
            Assert.NotEqual(0, r.ExitCode);
            var line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains($"{dir}/snowflock is full", line);
            Assert.Contains("XDG_CACHE_HOME", line);
            Assert.DoesNotContain("internal error", line);
        }
        finally
        {
            await UnmountAsync(dir);
        }
    }

    [Fact]
    public async Task An_unwritable_cache_is_one_line_naming_the_folder_not_a_resource_key()
    {
        var dir = await MountAsync("size=1m,ro");
        try
        {
            var r = await CommandRun.RunAsync(Repo.Sfrun, ["--engine", "qemu", "-np", "1", Repo.Example("hello")],
                env: new Dictionary<string, string> { ["XDG_CACHE_HOME"] = dir }, bound: TimeSpan.FromSeconds(120));
            Assert.NotEqual(0, r.ExitCode);
            var line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains($"{dir}/snowflock", line);
            Assert.Contains("XDG_CACHE_HOME", line);
            Assert.DoesNotContain("internal error", line);
            Assert.DoesNotContain("IO_", line);
            // A process job, for which the cache is only an optimisation, still runs.
            var process = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "2", Repo.Example("hello")],
                env: new Dictionary<string, string> { ["XDG_CACHE_HOME"] = dir });
            Assert.True(process.ExitCode == 0, process.Err);
        }
        finally
        {
            await UnmountAsync(dir);
        }
    }
}
