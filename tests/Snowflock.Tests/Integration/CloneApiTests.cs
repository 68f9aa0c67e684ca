using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>The SnowFlock clone API (native/sf, libsf.so) through the real sfrun and its clone
/// agent, driven by tests/programs/sf_probe and examples/table: ids, join statuses, kill, clones
/// that outlive their parent or the job, bad use, standalone use, fresh seeds, and real
/// copy-on-write sharing of a large table.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed partial class CloneApiTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [GeneratedRegex(@"^(?:\[(\d+)\] )?clone (\d+) pid (\d+) parent (\d+)$")]
    private static partial Regex CloneLine();

    [GeneratedRegex(@"clone (\d+) pid (\d+) ready")]
    private static partial Regex ReadyLine();

    private static string Probe => Repo.TestProgram("sf_probe");

    [Theory]
    [InlineData(1, true)]
    [InlineData(3, true)]
    [InlineData(3, false)]
    public async Task Clone_ids_are_unique_and_complete_in_every_rank(int np, bool warm)
    {
        var tag = Leaks.NewTag();
        string[] mode = warm ? [] : ["--no-warm"];
        var r = await CommandRun.SfrunAsync([.. mode, .. Leaks.TagArgs(tag), "-l", "-np", np.ToString(), Probe, "ids", "8"]);
        Assert.True(r.ExitCode == 0, r.Err);
        var clones = r.OutLines.Select(l => CloneLine().Match(l)).Where(m => m.Success)
            .Select(m => (Rank: int.Parse(m.Groups[1].Value), Id: int.Parse(m.Groups[2].Value), Pid: int.Parse(m.Groups[3].Value),
                Parent: int.Parse(m.Groups[4].Value)))
            .ToList();
        Assert.Equal(8 * np, clones.Count);
        Assert.Equal(clones.Count, clones.Select(c => c.Pid).Distinct().Count());
        foreach (var rank in clones.GroupBy(c => c.Rank))
        {
            Assert.Equal(Enumerable.Range(1, 8), rank.Select(c => c.Id).Order());
            var parent = Assert.Single(rank.Select(c => c.Parent).Distinct());
            Assert.DoesNotContain(parent, clones.Select(c => c.Pid));
        }
        Assert.Equal(np, r.OutLines.Count(l => l.EndsWith("joined 8", StringComparison.Ordinal)));
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task Join_reports_each_clone_s_exit_status_in_clone_order()
    {
        var r = await CommandRun.SfrunAsync("-np", "1", Probe, "exits", "4");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(["status 1 exit 10", "status 2 exit 20", "status 3 exit 30", "status 4 signal 15"],
            r.OutLines.Where(l => l.StartsWith("status ", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Sf_kill_ends_and_reaps_the_clones()
    {
        var tag = Leaks.NewTag();
        var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "1", Probe, "kill", "3"]);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("killed", r.OutLines);
        Assert.DoesNotContain(r.OutLines, l => l.StartsWith("error", StringComparison.Ordinal));
        foreach (var pid in r.OutLines.Select(l => ReadyLine().Match(l)).Where(m => m.Success).Select(m => int.Parse(m.Groups[2].Value)))
            Assert.False(Directory.Exists($"/proc/{pid}"), $"clone {pid} is still there");
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task Clones_a_parent_leaves_behind_are_killed_by_the_agent()
    {
        var tag = Leaks.NewTag();
        // The probe's clones in "leave" mode no longer die with their parent: only the agent ends them.
        await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-v", "-np", "1", Probe, "leave", "3"], watchLines: true);
        await run.WaitForLinesAsync("ready", 3, Bound);
        Assert.Equal(4, Leaks.ProcessesWithTag(tag).Count);
        await run.WriteStdinAsync([]);
        var r = await run.WaitAsync(Bound);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("left ticket 1: killed 3 clones", r.Err);
        await Leaks.AssertNoneAsync(tag);
    }

    [Theory]
    [InlineData("signal")]
    [InlineData("timeout")]
    [InlineData("failing rank")]
    public async Task Clones_still_running_when_the_job_ends_are_killed(string ending)
    {
        var tag = Leaks.NewTag();
        string[] args = ending switch
        {
            "timeout" => ["-timeout", "3", "-np", "1", Probe, "leave", "3"],
            "failing rank" => ["-np", "1", Probe, "leave", "3", ":", "-np", "1", Probe, "ids", "5"],
            _ => ["-np", "1", Probe, "leave", "3"],
        };
        // "failing rank": the second rank asks for more clones than the job allows and exits 3.
        await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), "--max-clones", "4", .. args], watchLines: true);
        if (ending == "signal")
        {
            await run.WaitForLinesAsync("ready", 3, Bound);
            run.Signal(15);
        }
        var r = await run.WaitAsync(Bound);
        Assert.Equal(ending switch { "timeout" => 255, "failing rank" => 3, _ => 143 }, r.ExitCode);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task Bad_use_gets_one_clear_error_per_call()
    {
        var r = await CommandRun.SfrunAsync("-np", "1", Probe, "misuse");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(
        [
            "error EINVAL: sf_request_ticket(0): ask for at least one clone",
            "error EINVAL: sf_join(999): this process holds no ticket 999",
            "error EPERM: sf_exit: this process is not a clone (a parent ends with exit() or by returning from main)",
            "error EINVAL: sf_join(1): ticket 1 has no clones yet: call sf_clone first, or sf_kill to release it",
            "error EALREADY: sf_clone(1): ticket 1 has already cloned; request a new ticket",
            "error ECHILD: sf_join(1): ticket 1 was already joined or killed",
            "error ECHILD: sf_kill(1): ticket 1 was already joined or killed",
            "misuse done",
        ], r.OutLines);
    }

    [Fact]
    public async Task A_ticket_beyond_the_job_s_budget_is_refused()
    {
        var tooBig = await CommandRun.SfrunAsync("--max-clones", "4", "-np", "1", Probe, "ids", "5");
        Assert.Equal(3, tooBig.ExitCode);
        Assert.Equal("error E2BIG: sf_request_ticket(5): more clones than the job's limit of 4 (sfrun --max-clones, SF_MAX_CLONES)",
            Assert.Single(tooBig.OutLines));

        var held = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "1", Probe, "budget", "4"],
            env: new Dictionary<string, string> { ["SF_MAX_CLONES"] = "4" });
        Assert.True(held.ExitCode == 0, held.Err);
        Assert.Equal(["error EAGAIN: sf_request_ticket(2): 3 of the job's 4 clones (sfrun --max-clones) are held by other tickets; join or kill them first",
            "granted yes"], held.OutLines);

        var bad = await CommandRun.SfrunAsync("--max-clones", "0", "-np", "1", Probe);
        Assert.Equal(2, bad.ExitCode);
        Assert.Equal("sfrun: --max-clones needs a positive whole number, got '0'", bad.Err.Trim());
    }

    [Fact]
    public async Task The_budget_is_shared_by_all_ranks_of_the_job()
    {
        // Two ranks ask for 3 clones each out of 4 and hold them a moment: one is refused (and
        // exits 3, which ends the job), unless the first had already let go of its clones.
        var r = await CommandRun.SfrunAsync("--max-clones", "4", "-l", "-np", "2", Probe, "kill", "3");
        var refused = r.OutLines.Count(l => l.Contains("error EAGAIN: sf_request_ticket(3): 3 of the job's 4 clones", StringComparison.Ordinal));
        var granted = r.OutLines.Count(l => l.EndsWith("killed", StringComparison.Ordinal));
        if (refused == 1)
            Assert.Equal(3, r.ExitCode);
        else
            Assert.True(r.ExitCode == 0 && granted == 2, r.Out + r.Err);
    }

    [Fact]
    public async Task A_rank_with_threads_is_refused_unless_it_says_it_is_safe()
    {
        // MPICH's MPI_Init starts a thread here; a fork would keep only the calling one.
        var r = await CommandRun.SfrunAsync("-np", "2", Probe, "mpi", "2");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(r.OutLines, l => l.StartsWith("error EBUSY: sf_clone(", StringComparison.Ordinal) && l.Contains("threads", StringComparison.Ordinal));

        var allowed = await CommandRun.SfrunAsync("-genv", "SF_ALLOW_THREADS", "1", "-np", "2", Probe, "mpi", "2");
        Assert.True(allowed.ExitCode == 0, allowed.Err);
        Assert.Equal(2, allowed.OutLines.Count(l => l == "joined 2"));
    }

    [Fact]
    public async Task Standalone_without_sfrun_the_library_grants_tickets_itself()
    {
        var tag = Leaks.NewTag();
        var env = new Dictionary<string, string> { ["SF_AGENT"] = "", ["SFRUN_TEST_TAG"] = tag };
        var r = await CommandRun.RunAsync(Probe, ["ids", "6"], env: env);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(Enumerable.Range(1, 6), r.OutLines.Select(l => CloneLine().Match(l)).Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[2].Value)).Order());
        Assert.Contains("joined 6", r.OutLines);

        env["SF_MAX_CLONES"] = "3";
        var limited = await CommandRun.RunAsync(Probe, ["ids", "4"], env: env);
        Assert.Equal(3, limited.ExitCode);
        Assert.Equal("error E2BIG: sf_request_ticket(4): more clones than the limit of 3 (SF_MAX_CLONES)", Assert.Single(limited.OutLines));
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task A_clone_can_clone_itself_within_the_job_s_budget()
    {
        var r = await CommandRun.SfrunAsync("-np", "1", Probe, "nested");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(2, r.OutLines.Count(l => l.StartsWith("grandclone ", StringComparison.Ordinal)));
        Assert.Contains("clone 1 joined its clones: 0 0", r.OutLines);

        var tight = await CommandRun.SfrunAsync("--max-clones", "3", "-np", "1", Probe, "nested");
        Assert.Contains(tight.OutLines, l => l.StartsWith("error EAGAIN: sf_request_ticket(2)", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Clones_get_fresh_seeds_unless_told_to_keep_them(bool keep)
    {
        string[] env = keep ? ["-genv", "SF_KEEP_SEEDS", "1"] : [];
        var r = await CommandRun.SfrunAsync([.. env, "-np", "1", Probe, "seeds", "4"]);
        Assert.True(r.ExitCode == 0, r.Err);
        var lines = r.OutLines.Where(l => l.Contains(" rand ", StringComparison.Ordinal)).Select(l => l.Split(' ')).ToList();
        Assert.Equal(4, lines.Count);
        Assert.Equal(keep ? 1 : 4, lines.Select(f => f[3]).Distinct().Count()); // rand() after srand(42)
        Assert.Equal(4, lines.Select(f => f[5]).Distinct().Count());            // getrandom() is per call
    }

    [Fact]
    public async Task The_agent_is_private_to_the_job_and_gone_after_it()
    {
        await using var run = CommandRun.Start(Repo.Sfrun, ["-np", "1", Probe, "agent"], watchLines: true);
        await run.WaitForLinesAsync("agent /", 1, Bound);
        var path = run.OutSoFar.Split('\n').First(l => l.StartsWith("agent /", StringComparison.Ordinal))["agent ".Length..];
        var folder = Path.GetDirectoryName(path)!;
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(folder));

        // This test process is no process of the job: the agent says so and hangs up.
        using (var stranger = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            await stranger.ConnectAsync(new UnixDomainSocketEndPoint(path));
            var buffer = new byte[256];
            var n = await stranger.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(Bound);
            Assert.StartsWith("error EPERM ", Encoding.ASCII.GetString(buffer, 0, n));
        }

        await run.WriteStdinAsync([]);
        var r = await run.WaitAsync(Bound);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.False(Directory.Exists(folder), $"{folder} was left behind");
    }

    [Fact]
    public async Task The_folder_of_a_SIGKILLed_sfrun_is_swept_by_the_next_job()
    {
        var tag = Leaks.NewTag();
        await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-np", "1", Probe, "agent"], watchLines: true);
        await run.WaitForLinesAsync("agent /", 1, Bound);
        var path = run.OutSoFar.Split('\n').First(l => l.StartsWith("agent /", StringComparison.Ordinal))["agent ".Length..];
        run.Signal(9);
        await run.WaitAsync(Bound);
        Assert.True(File.Exists(path), "nothing is left to sweep: was the agent's socket removed some other way?");
        var next = await CommandRun.SfrunAsync("-np", "1", "/bin/true");
        Assert.True(next.ExitCode == 0, next.Err);
        Assert.False(Directory.Exists(Path.GetDirectoryName(path)), $"{Path.GetDirectoryName(path)} was not swept");
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task The_table_example_gives_one_checksum_with_clones_one_worker_or_MPI_ranks()
    {
        var cloned = await CommandRun.SfrunAsync("-np", "1", Repo.Example("table"), "32", "8");
        Assert.True(cloned.ExitCode == 0, cloned.Err);
        var alone = await CommandRun.RunAsync(Repo.Example("table"), ["32", "1"], env: new Dictionary<string, string> { ["SF_AGENT"] = "" });
        var ranks = await CommandRun.RunAsync(Repo.Hydra, ["-np", "4", Repo.Example("table"), "--mpi", "32"]);
        var checksum = Assert.Single(cloned.OutLines);
        Assert.StartsWith("checksum 0x", checksum);
        Assert.Equal([checksum], alone.OutLines);
        Assert.Equal([checksum], ranks.OutLines);
    }

    [Fact]
    public async Task Workers_share_the_table_copy_on_write()
    {
        const int TableMb = 128, Workers = 8;
        var tag = Leaks.NewTag();
        await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-np", "1", Repo.Example("table"), TableMb.ToString(),
            Workers.ToString(), "--hold"], watchLines: true);
        await run.WaitForLinesAsync("ready", Workers, TimeSpan.FromSeconds(120));
        var pids = WorkerLine().Matches(run.OutSoFar).Select(m => int.Parse(m.Groups[1].Value)).ToList();
        Assert.Equal(Workers, pids.Count);
        var pssKb = pids.Sum(PssKb);
        await run.WriteStdinAsync([]);
        var r = await run.WaitAsync(Bound);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.StartsWith("checksum 0x", r.OutLines.Last());
        // Unshared, each worker would hold the whole table: 8 x 128 MB. Shared, the workers' part
        // of the table is 8/9 of it (the parent holds the ninth share), plus their own stacks.
        var tableKb = TableMb * 1024;
        Assert.True(pssKb < 2 * tableKb, $"PSS of the {Workers} workers: {pssKb} kB, table {tableKb} kB");
        await Leaks.AssertNoneAsync(tag);
    }

    [GeneratedRegex(@"worker \d+ pid (\d+) ready")]
    private static partial Regex WorkerLine();

    /// <summary>Proportional set size: shared pages count 1/n to each of the n processes mapping them.</summary>
    internal static long PssKb(int pid) =>
        File.ReadLines($"/proc/{pid}/smaps_rollup").Where(l => l.StartsWith("Pss:", StringComparison.Ordinal))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1])).Single();
}
