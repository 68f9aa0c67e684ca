using Snowflock.Engine.Engines.Process.Internal;
using Snowflock.Engine.Internal;
using Snowflock.Tests.Integration.Support;
using Snowflock.Tests.Security.Support;

namespace Snowflock.Tests.Security;

/// <summary>
/// Issue 13, item 6: with no usable HOME the cache must not follow the working folder, and a warm
/// profile planted by another user (in a world-writable folder, or naming its library) must not
/// make root's warm master load anything.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Area", "security")]
public sealed class HomeAttackTests(SecondUser attacker) : IClassFixture<SecondUser>, IDisposable
{
    private readonly string _shared = MakeShared();

    /// <summary>A world-writable sticky folder, as /tmp: where root may well start a job.</summary>
    private static string MakeShared()
    {
        var dir = Directory.CreateTempSubdirectory("sftest-shared-").FullName;
        File.SetUnixFileMode(dir, (UnixFileMode)0x3FF /* 01777 */);
        return dir;
    }

    public void Dispose() => SafeTree.Delete(_shared);

    private string Marker => Path.Combine(_shared, "ran-as");

    /// <summary>The attacker's library: its constructor leaves a file saying which uid ran it.</summary>
    private async Task<string> EvilLibraryAsync()
    {
        var dir = Path.Combine(_shared, "atk");
        var source = $$"""
            #include <stdio.h>
            #include <unistd.h>
            __attribute__((constructor)) static void boom(void)
            {
                FILE *f = fopen("{{Marker}}", "a");
                if (f) { fprintf(f, "%d\n", (int)getuid()); fclose(f); }
            }
            """;
        var r = await attacker.RunAsync("/bin/sh", ["-c", $"mkdir -p {dir} && cat > {dir}/evil.c && gcc -shared -fPIC -o {dir}/evil.so {dir}/evil.c"],
            stdin: System.Text.Encoding.UTF8.GetBytes(source));
        Assert.True(r.ExitCode == 0, r.Err);
        return Path.Combine(dir, "evil.so");
    }

    /// <summary>The attacker writes a profile for root's program under <paramref name="cache"/>
    /// (the name is computable by anyone: a hash of the program's path, size and mtime).</summary>
    private async Task PlantProfileAsync(string cache, string library)
    {
        var name = Path.GetFileName(WarmProfile.PathFor(Repo.Example("hello")));
        var dir = Path.Combine(cache, "snowflock", "warm-profiles");
        var r = await attacker.RunAsync("/bin/sh", ["-c", $"mkdir -p {dir} && echo {library} > {dir}/{name}"]);
        Assert.True(r.ExitCode == 0, r.Err);
    }

    private async Task<CommandResult> HelloAsync(IDictionary<string, string> env, string? wrap = null)
    {
        var args = new List<string> { "-np", "2", Repo.Example("hello") };
        var r = wrap is null
            ? await CommandRun.RunAsync(Repo.Sfrun, args, env: env, workingDirectory: _shared)
            : await CommandRun.RunAsync("/bin/sh", ["-c", wrap + " " + Repo.Sfrun + " " + string.Join(' ', args)], env: env, workingDirectory: _shared);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(["hello from rank 0 of 2", "hello from rank 1 of 2"], r.OutLines.Order(StringComparer.Ordinal));
        return r;
    }

    [Fact]
    public async Task A_relative_HOME_does_not_put_the_cache_in_the_working_folder_nor_preload_a_planted_profile()
    {
        var evil = await EvilLibraryAsync();
        await PlantProfileAsync(Path.Combine(_shared, ".cache"), evil);
        await HelloAsync(new Dictionary<string, string> { ["HOME"] = ".", ["XDG_CACHE_HOME"] = "" });
        Assert.False(File.Exists(Marker), "the planted library ran as uid " + (File.Exists(Marker) ? File.ReadAllText(Marker) : ""));
        Assert.False(Directory.Exists(Path.Combine(_shared, ".cache", "snowflock", "topology-" + Environment.MachineName + ".xml")));
    }

    [Fact]
    public async Task No_HOME_and_no_passwd_entry_uses_a_private_per_user_cache_not_the_working_folder()
    {
        var evil = await EvilLibraryAsync();
        await PlantProfileAsync(Path.Combine(_shared, ".cache"), evil);
        var fake = Directory.CreateTempSubdirectory("sftest-nopasswd-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(fake, "passwd"), "");
            await File.WriteAllTextAsync(Path.Combine(fake, "nsswitch.conf"), "passwd: files\ngroup: files\n");
            // A mount namespace of its own hides root's passwd entry from sfrun only.
            var wrap = $"unshare -m sh -c 'mount --bind {fake}/passwd /etc/passwd && mount --bind {fake}/nsswitch.conf /etc/nsswitch.conf && exec env -u HOME -u XDG_CACHE_HOME \"$0\" \"$@\"'";
            await HelloAsync(new Dictionary<string, string>(), wrap);
            Assert.False(File.Exists(Marker));
            Assert.Equal(["atk"], Directory.GetDirectories(_shared).Select(Path.GetFileName).Where(n => n != ".cache"));
            Assert.False(File.Exists(Path.Combine(_shared, ".cache", "snowflock", $"topology-{Environment.MachineName}.xml")));
            Assert.False(Directory.Exists("/.cache/snowflock"));
            var cache = Path.Combine(PrivateDirectory.PerUser, "cache");
            Assert.True(Directory.Exists(cache));
            Assert.Equal((UnixFileMode)0x1C0, File.GetUnixFileMode(cache));
        }
        finally
        {
            SafeTree.Delete(fake);
        }
    }

    [Fact]
    public async Task A_profile_naming_a_library_another_user_can_write_is_not_preloaded()
    {
        var evil = await EvilLibraryAsync();
        var cache = Directory.CreateTempSubdirectory("sftest-cache-").FullName;
        try
        {
            // Root's own profile (say an older one) lists the attacker's library, and a root-owned
            // copy that everyone may write.
            var writable = Path.Combine(_shared, "writable.so");
            File.Copy(evil, writable);
            File.SetUnixFileMode(writable, (UnixFileMode)0x1FF);
            var profile = Path.Combine(cache, "snowflock", "warm-profiles", Path.GetFileName(WarmProfile.PathFor(Repo.Example("hello"))));
            Directory.CreateDirectory(Path.GetDirectoryName(profile)!);
            await File.WriteAllTextAsync(profile, $"{evil}\n{writable}\n");
            var r = await HelloAsync(new Dictionary<string, string> { ["XDG_CACHE_HOME"] = cache });
            Assert.False(File.Exists(Marker), "the library ran as uid " + (File.Exists(Marker) ? File.ReadAllText(Marker) : ""));
        }
        finally
        {
            SafeTree.Delete(cache);
        }
    }
}
