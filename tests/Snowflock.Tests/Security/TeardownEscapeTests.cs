using Snowflock.Engine.Internal;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Security;

/// <summary>
/// A job must leave nothing behind (issue 13, items 8 and 12): not a fork chain — each child
/// forks its successor and exits, so it has left its parent, its session and any scan of /proc
/// before the scan's kill lands — whether the job ends, its ranks start cold, or sfrun is
/// SIGKILLed; and not the shared-memory segments MPICH and UCX create in /dev/shm inside MPI_Init,
/// when sfrun is SIGKILLed before the ranks unlink them. The job's cgroup and its guard
/// (native/warm/guard.c) are what make it so; the fork-chain tests need a writable cgroup2 (root
/// on a kernel with cgroup.kill) and say so when the machine has none.
/// </summary>
[Trait("Area", "security")]
[Trait("Engine", "process")]
public sealed class TeardownEscapeTests
{
    private static readonly string[] SegmentPrefixes = ["mpich_shar_tmp", "ucx_shm_posix_"];

    /// <summary>Where this sfrun's jobs get their cgroups, or null (with why) where they cannot.</summary>
    private static string? JobCgroups(out string why)
    {
        why = "";
        var own = JobGuard.OwnCgroupDirectory(File.ReadAllLines("/proc/self/mountinfo"), File.ReadAllLines("/proc/self/cgroup"));
        if (own is null)
        {
            why = "no cgroup2 mount shows this process's cgroup";
            return null;
        }
        if (!File.Exists(Path.Combine(own, "cgroup.procs")) || !Environment.IsPrivilegedProcess)
        {
            why = $"{own} is no cgroup2 directory, or this process is not root";
            return null;
        }
        return Path.Combine(own, "snowflock");
    }

    private static void AssertNoCgroupLeft(string? parent, int sfrunPid)
    {
        if (parent is null || !Directory.Exists(parent))
            return;
        var left = Directory.EnumerateDirectories(parent, $"{sfrunPid}-*").ToList();
        Assert.Empty(left);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_fork_chain_is_killed_with_the_job(bool warm)
    {
        var cgroups = JobCgroups(out var why);
        // CI on these machines has cgroup2 (kernel 6.x) and runs as root: there it must hold.
        Assert.True(cgroups is not null, $"this test needs a writable cgroup2: {why}");
        var tag = Leaks.NewTag();
        string[] mode = warm ? [] : ["--no-warm"];
        await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), .. mode, "-np", "2", Repo.TestProgram("fork_chain"), "exit"]);
        await run.WriteStdinAsync([]);
        var r = await run.WaitAsync(CommandRun.DefaultBound);
        Assert.Equal(0, r.ExitCode);
        await Leaks.AssertNoneAsync(tag);
        AssertNoCgroupLeft(cgroups, run.Pid);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_fork_chain_dies_when_sfrun_is_SIGKILLed(bool warm)
    {
        var cgroups = JobCgroups(out var why);
        // CI on these machines has cgroup2 (kernel 6.x) and runs as root: there it must hold.
        Assert.True(cgroups is not null, $"this test needs a writable cgroup2: {why}");
        var tag = Leaks.NewTag();
        string[] mode = warm ? [] : ["--no-warm"];
        await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), .. mode, "-np", "2", Repo.TestProgram("fork_chain"), "wait"]);
        await run.WaitForLinesAsync("chain started", 2, CommandRun.DefaultBound);
        run.Signal(9);
        await run.WaitAsync(CommandRun.DefaultBound);
        // No sfrun is left to tear down: the guard, which sees sfrun's end of its pipe close, must.
        await Leaks.AssertNoneAsync(tag);
        for (var i = 0; i < 50 && cgroups is not null && Directory.EnumerateDirectories(cgroups, $"{run.Pid}-*").Any(); i++)
            await Task.Delay(100);
        AssertNoCgroupLeft(cgroups, run.Pid);
    }

    /// <summary>MPI segments of this uid in /dev/shm.</summary>
    private static HashSet<string> Segments() =>
        Directory.EnumerateFiles("/dev/shm").Select(Path.GetFileName).OfType<string>()
            .Where(n => SegmentPrefixes.Any(p => n.StartsWith(p, StringComparison.Ordinal))).ToHashSet(StringComparer.Ordinal);

    /// <summary>Segments some live process maps or holds open: another test's job, still running.</summary>
    private static HashSet<string> SegmentsInUse()
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out _))
                continue;
            try
            {
                foreach (var line in File.ReadLines(Path.Combine(dir, "maps")))
                    if (line.IndexOf(" /dev/shm/", StringComparison.Ordinal) is var at and >= 0)
                        used.Add(line[(at + 10)..].Split(' ')[0]);
                foreach (var fd in Directory.EnumerateFileSystemEntries(Path.Combine(dir, "fd")))
                    if (new FileInfo(fd).LinkTarget is { } target && target.StartsWith("/dev/shm/", StringComparison.Ordinal))
                        used.Add(target[9..]);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Ended while we looked.
            }
        }
        return used;
    }

    [Fact]
    public async Task SIGKILL_of_sfrun_during_MPI_Init_leaves_no_process_and_no_segment()
    {
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var before = Segments();
            var tag = Leaks.NewTag();
            string[] mode = attempt % 2 == 0 ? [] : ["--no-warm"];
            await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), .. mode, "-np", "4", Repo.Example("cpi")]);
            // The moment the first segment appears, the ranks are inside MPI_Init; a job that is
            // quicker than this poll is killed at a later point of its life, which is fine too.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
            while (DateTime.UtcNow < deadline && !Segments().Except(before).Any())
                await Task.Delay(1);
            run.Signal(9);
            await run.WaitAsync(CommandRun.DefaultBound);
            await Leaks.AssertNoneAsync(tag);
            List<string> left = [];
            for (var i = 0; i < 50; i++)
            {
                left = [.. Segments().Except(before).Except(SegmentsInUse())];
                if (left.Count == 0)
                    break;
                await Task.Delay(100);
            }
            Assert.True(left.Count == 0, $"attempt {attempt}: segments left in /dev/shm: {string.Join(", ", left)}");
        }
    }
}
