using System.Text.RegularExpressions;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary><c>--isolate</c> on the process engine: each clone of a real MPICH program has its own
/// pid, uts, mount, ipc and network namespace and address on the job's bridge, so it is a machine
/// of its own to MPI (ranks talk TCP, UCX is not told to use shared memory); and after success,
/// MPI_Abort, a crash, Ctrl-C or a SIGKILL of sfrun, nothing of the job's networks is left: no
/// process in the clones' namespaces, no bridge or veth on the host. Needs root (CI runs as root).</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed partial class IsolateTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [GeneratedRegex(@"^rank (\d+) host (\S+) ip (\S+) pid (\d+) mpihost (\S+) ucx_tls (\S+)$")]
    private static partial Regex WhoLine();

    private sealed record Who(int Rank, string Host, string Ip, int Pid, string MpiHost, string UcxTls);

    private static List<Who> Whos(CommandResult r) =>
        r.OutLines.Select(l => WhoLine().Match(l)).Where(m => m.Success)
            .Select(m => new Who(int.Parse(m.Groups[1].Value), m.Groups[2].Value, m.Groups[3].Value, int.Parse(m.Groups[4].Value),
                m.Groups[5].Value, m.Groups[6].Value))
            .OrderBy(w => w.Rank).ToList();

    /// <summary>Network interfaces of sfrun's own (the host's) namespace that a job could have left.</summary>
    private static List<string> JobLinksOnHost() =>
        Directory.GetDirectories("/sys/class/net").Select(d => Path.GetFileName(d)).Where(n => n.StartsWith("sfv") || n.StartsWith("sfbr")).ToList();

    private static string? NetNamespaceOf(int pid)
    {
        try
        {
            return new FileInfo($"/proc/{pid}/ns/net").LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Pids of live processes in any of <paramref name="namespaces"/>.</summary>
    private static List<int> ProcessesIn(IReadOnlySet<string> namespaces) =>
        Directory.EnumerateDirectories("/proc").Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0).Where(pid => pid > 0)
            .Where(pid => NetNamespaceOf(pid) is { } ns && namespaces.Contains(ns)).ToList();

    [Fact]
    public async Task Each_rank_is_a_machine_of_its_own_and_they_talk_over_the_bridge()
    {
        var tag = Leaks.NewTag();
        var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "--isolate", "-np", "4", Repo.TestProgram("whoami")]);
        Assert.True(r.ExitCode == 0, r.Err);
        var whos = Whos(r);
        Assert.Equal(Enumerable.Range(0, 4), whos.Select(w => w.Rank));
        Assert.Equal(4, whos.Select(w => w.Host).Distinct().Count());
        Assert.Equal(4, whos.Select(w => w.Ip).Distinct().Count());
        Assert.All(whos, w => Assert.StartsWith("10.77.", w.Ip));
        Assert.All(whos, w => Assert.Equal(w.Host, w.MpiHost));
        // Its own pid namespace: pid 1 is the clone's init, the rank is pid 2.
        Assert.All(whos, w => Assert.Equal(2, w.Pid));
        Assert.All(whos, w => Assert.NotEqual("self,sm", w.UcxTls));
        Assert.Contains("sum 10 of 4 ranks", r.OutLines);
        await Leaks.AssertNoneAsync(tag);
        Assert.Empty(JobLinksOnHost());

        // Without --isolate the same ranks share the host, as mpiexec's do.
        var shared = Whos(await CommandRun.SfrunAsync("-np", "2", Repo.TestProgram("whoami")));
        Assert.Single(shared.Select(w => w.Host).Distinct());
    }

    [Fact]
    public async Task Ring_gives_hydras_output_across_isolated_clones()
    {
        var hydra = await CommandRun.RunAsync(Repo.Hydra, ["-np", "4", Repo.Example("ring"), "4"]);
        var sf = await CommandRun.SfrunAsync("--isolate", "-np", "4", Repo.Example("ring"), "4");
        Assert.True(sf.ExitCode == 0, sf.Err);
        Assert.Equal(hydra.OutLines, sf.OutLines);
        // Large messages over UCX's TCP lanes too (its 256 KiB allreduce): they finish, libsfucx
        // keeping the waiting ranks progressing in MPI_Finalize (FinalizeTests has the stress).
        var big = await CommandRun.SfrunAsync("--isolate", "-np", "4", Repo.Example("allreduce"));
        Assert.True(big.ExitCode == 0, big.Err);
        Assert.Contains("allreduce   262144 bytes: ok", big.OutLines);
    }

    /// <summary>MPI_Abort reaches sfrun over PMI and decides the job as without isolation. A rank
    /// that dies is seen by its peers over UCX's TCP lanes too, and one of them may fail first (as
    /// across hosts under mpiexec), so there the job only has to fail and name a rank.</summary>
    [Theory]
    [InlineData("abort", new[] { "1", "7" }, 7, "called MPI_Abort with exit code 7")]
    [InlineData("crash", new[] { "2", "segv" }, null, "rank ")]
    [InlineData("crash", new[] { "1", "exit3" }, null, "rank ")]
    public async Task Failures_end_the_job_and_leave_no_network(string program, string[] args, int? code, string report)
    {
        var tag = Leaks.NewTag();
        var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "--isolate", "-np", "4", Repo.TestProgram(program), .. args]);
        if (code is { } exact)
            Assert.Equal(exact, r.ExitCode);
        else
            Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(report, r.Err);
        Assert.Matches(@"\(pid \d+ on \S+-c\d\)", r.Err);
        await Leaks.AssertNoneAsync(tag);
        Assert.Empty(JobLinksOnHost());
    }

    [Theory]
    [InlineData(2, 130)] // Ctrl-C: forwarded into each clone's namespaces, the ranks end, sfrun says 128+2
    [InlineData(9, null)] // SIGKILL of sfrun: the master sees its socket close and kills the clones
    public async Task Signals_and_a_killed_sfrun_leave_no_namespace_behind(int signal, int? expected)
    {
        var tag = Leaks.NewTag();
        var namespaces = new HashSet<string>();
        await using (var run = CommandRun.Start("/usr/bin/env", ["--default-signal=HUP,INT,QUIT,TERM,USR1,USR2", Repo.Sfrun,
                         .. Leaks.TagArgs(tag), "--isolate", "-np", "3", Repo.TestProgram("sleeper")], watchLines: true))
        {
            await run.WriteStdinAsync([]);
            await run.WaitForLinesAsync("ready", 3, Bound);
            var host = NetNamespaceOf(Environment.ProcessId);
            foreach (var pid in Leaks.ProcessesWithTag(tag))
                if (NetNamespaceOf(pid) is { } ns && ns != host)
                    namespaces.Add(ns);
            Assert.Equal(3, namespaces.Count);
            run.Signal(signal);
            var r = await run.WaitAsync(Bound);
            if (expected is { } code)
                Assert.Equal(code, r.ExitCode);
        }
        await Leaks.AssertNoneAsync(tag);
        for (var i = 0; i < 50 && ProcessesIn(namespaces).Count > 0; i++)
            await Task.Delay(100);
        Assert.Empty(ProcessesIn(namespaces));
        Assert.Empty(JobLinksOnHost());
    }

    /// <summary>Issue #15: with SFRUN_ISOLATE_IPC=1 (no UCX shared memory, nothing but PMI
    /// between hello's ranks) a job now and then hung for good in MPI_Init or MPI_Finalize, a rank
    /// waiting for a PMI reply its request never got: the bridge changed its MAC as clones plugged
    /// in and left (JobNetworkTests has the exact interleaving). Fifty jobs in a row, each bounded.</summary>
    [Fact]
    public async Task Fifty_isolated_hello_jobs_in_a_row_none_hangs()
    {
        var env = new Dictionary<string, string> { ["SFRUN_ISOLATE_IPC"] = "1" };
        var expected = Enumerable.Range(0, 3).Select(i => $"hello from rank {i} of 3").ToList();
        for (var run = 1; run <= 50; run++)
        {
            CommandResult r;
            try
            {
                r = await CommandRun.RunAsync(Repo.Sfrun, ["--isolate", "-np", "3", Repo.Example("hello")], env: env,
                    bound: TimeSpan.FromSeconds(20));
            }
            catch (TimeoutException e)
            {
                throw new Xunit.Sdk.XunitException($"job {run} of 50 hung: {e.Message}");
            }
            Assert.True(r.ExitCode == 0, $"job {run} of 50: exit {r.ExitCode}: {r.Err}");
            Assert.Equal(expected, r.OutLines.Order(StringComparer.Ordinal));
        }
        Assert.Empty(JobLinksOnHost());
    }

    [Fact]
    public async Task Without_root_it_is_one_clear_line()
    {
        var r = await CommandRun.RunAsync("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", Repo.Sfrun,
            "--isolate", "-np", "1", Repo.Example("hello")]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--isolate needs root", r.Err);
        Assert.Single(r.Err.Trim().Split('\n'));
        var noWarm = await CommandRun.SfrunAsync("--isolate", "--no-warm", "-np", "1", Repo.Example("hello"));
        Assert.Equal(2, noWarm.ExitCode);
    }
}
