using System.Text.RegularExpressions;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>Warm fork on the process engine: ranks forked from a master stopped before main()
/// behave exactly as ranks started cold (--no-warm) and as under mpiexec.hydra, exit statuses
/// are exact, and nothing of the master survives the job — not even when sfrun is SIGKILLed.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed partial class WarmForkTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [GeneratedRegex(@"^rank (\d+) constructor (\d+) pid (\d+) preload (\S+) socket (\S+) cwd (.*)$")]
    private static partial Regex ProbeLine();

    private sealed record Probe(int Rank, int ConstructorPid, int Pid, string Preload, string Socket, string Cwd);

    private static List<Probe> Probes(CommandResult r) =>
        r.OutLines.Select(l => ProbeLine().Match(l)).Where(m => m.Success)
            .Select(m => new Probe(int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value), int.Parse(m.Groups[3].Value),
                m.Groups[4].Value, m.Groups[5].Value, m.Groups[6].Value))
            .OrderBy(p => p.Rank).ToList();

    public static TheoryData<string, int, bool> Examples()
    {
        var data = new TheoryData<string, int, bool>();
        foreach (var program in new[] { "cpi", "ring", "hello" })
            foreach (var np in new[] { 1, 8, 32 })
                foreach (var warm in new[] { true, false })
                    data.Add(program, np, warm);
        return data;
    }

    [Theory]
    [MemberData(nameof(Examples))]
    public async Task Examples_give_the_same_output_as_hydra_warm_and_cold(string program, int np, bool warm)
    {
        var tag = Leaks.NewTag();
        string[] args = program switch { "cpi" => ["100000"], "ring" => ["4"], _ => [] };
        string[] mode = warm ? [] : ["--no-warm"];
        var sf = await CommandRun.SfrunAsync([.. mode, .. Leaks.TagArgs(tag), "-np", np.ToString(), Repo.Example(program), .. args]);
        var hy = await CommandRun.RunAsync(Repo.Hydra, ["-np", np.ToString(), Repo.Example(program), .. args]);
        Assert.Equal(0, hy.ExitCode);
        Assert.True(sf.ExitCode == 0, sf.Err);
        Assert.Equal(hy.OutLines.Order(StringComparer.Ordinal), sf.OutLines.Order(StringComparer.Ordinal));
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task Every_rank_is_forked_from_one_master_that_ran_the_constructors_once()
    {
        var tag = Leaks.NewTag();
        var sub = Directory.CreateTempSubdirectory("warm-cwd-");
        try
        {
            var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-wdir", sub.FullName, "-np", "8", Repo.TestProgram("warm_probe")]);
            Assert.True(r.ExitCode == 0, r.Err);
            var probes = Probes(r);
            Assert.Equal(Enumerable.Range(0, 8), probes.Select(p => p.Rank));
            var master = Assert.Single(probes.Select(p => p.ConstructorPid).Distinct());
            Assert.All(probes, p => Assert.NotEqual(master, p.Pid));
            // The clone's environment is exactly the rank's: nothing of the fork server leaks in.
            // (The rank's own LD_PRELOAD is libsfucx, which sfrun gives every MPI rank, then
            // libsfinit, which it gives every rank: native/init.)
            Assert.All(probes, p => Assert.Equal(Repo.UcxProgressLibrary + ":" + Path.Combine(Path.GetDirectoryName(Repo.UcxProgressLibrary)!, "libsfinit.so"), p.Preload));
            Assert.All(probes, p => Assert.Equal("-", p.Socket));
            Assert.All(probes, p => Assert.Equal(sub.FullName, p.Cwd));
            await Leaks.AssertNoneAsync(tag);
        }
        finally
        {
            sub.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("--no-warm", null)]
    [InlineData(null, "0")]
    public async Task Without_warm_fork_every_rank_runs_its_own_constructors(string? flag, string? sfrunWarm)
    {
        string[] mode = flag is null ? [] : [flag];
        var env = sfrunWarm is null ? null : new Dictionary<string, string> { ["SFRUN_WARM"] = sfrunWarm };
        var r = await CommandRun.RunAsync(Repo.Sfrun, [.. mode, "-np", "4", Repo.TestProgram("warm_probe")], env: env);
        Assert.True(r.ExitCode == 0, r.Err);
        var probes = Probes(r);
        Assert.Equal(4, probes.Count);
        Assert.All(probes, p => Assert.Equal(p.Pid, p.ConstructorPid));
    }

    [Theory]
    [InlineData(139)]
    [InlineData(130)]
    public async Task An_exit_code_above_128_is_reported_as_an_exit_code_not_a_signal(int code)
    {
        var tag = Leaks.NewTag();
        var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "2", Repo.TestProgram("warm_probe"), "exit", code.ToString()]);
        Assert.Equal(code, r.ExitCode);
        Assert.Contains($"rank 0 (pid ", r.Err);
        Assert.Contains($"exited with code {code} before calling MPI_Finalize", r.Err);
        Assert.DoesNotContain("killed by signal", r.Err);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task A_rank_killed_by_a_signal_is_reported_as_a_signal()
    {
        var r = await CommandRun.SfrunAsync("-np", "3", Repo.TestProgram("crash"), "1", "segv");
        Assert.Equal(11, r.ExitCode);
        Assert.Contains("rank 1 (pid ", r.Err);
        Assert.Contains("was killed by signal 11 (SIGSEGV)", r.Err);
    }

    [Fact]
    public async Task SIGKILL_of_sfrun_leaves_no_rank_no_master_and_no_socket_directory()
    {
        var tag = Leaks.NewTag();
        await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-np", "4", Repo.TestProgram("sleeper")], watchLines: true);
        await run.WaitForLinesAsync("ready", 4, Bound);
        var masters = MastersOf(run.Pid);
        var (masterPid, socket) = Assert.Single(masters);
        Assert.Equal(4, Leaks.ProcessesWithTag(tag).Count);

        run.Signal(9);
        await run.WaitAsync(Bound);
        await Leaks.AssertNoneAsync(tag);
        for (var i = 0; i < 50 && IsAlive(masterPid); i++)
            await Task.Delay(100);
        Assert.False(IsAlive(masterPid), $"warm master {masterPid} survived sfrun");
        Assert.False(File.Exists(socket), $"{socket} was left behind");
        Assert.False(Directory.Exists(Path.GetDirectoryName(socket)), $"{Path.GetDirectoryName(socket)} was left behind");
    }

    [Fact]
    public async Task SIGKILL_of_sfrun_leaves_no_rank_started_cold()
    {
        var tag = Leaks.NewTag();
        await using var run = CommandRun.Start(Repo.Sfrun, ["--no-warm", .. Leaks.TagArgs(tag), "-np", "4", Repo.TestProgram("sleeper")],
            watchLines: true);
        await run.WaitForLinesAsync("ready", 4, Bound);
        Assert.Empty(MastersOf(run.Pid));
        Assert.Equal(4, Leaks.ProcessesWithTag(tag).Count);
        run.Signal(9);
        await run.WaitAsync(Bound);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task Programs_of_an_MPMD_job_each_get_their_own_master()
    {
        var tag = Leaks.NewTag();
        // Same executable, other arguments: a clone continues with its master's argv, so a second master.
        var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "3", Repo.TestProgram("warm_probe"), ":",
            "-np", "2", Repo.TestProgram("warm_probe"), "second-block"]);
        Assert.True(r.ExitCode == 0, r.Err);
        var probes = Probes(r);
        Assert.Equal([0, 1, 2, 3, 4], probes.Select(p => p.Rank));
        var first = Assert.Single(probes.Take(3).Select(p => p.ConstructorPid).Distinct());
        var second = Assert.Single(probes.Skip(3).Select(p => p.ConstructorPid).Distinct());
        Assert.NotEqual(first, second);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task A_static_executable_starts_cold_and_says_why_at_v()
    {
        var r = await CommandRun.SfrunAsync("-v", "-np", "2", "/sbin/ldconfig", "--version");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(2, r.OutLines.Count(l => l.StartsWith("ldconfig", StringComparison.Ordinal)));
        Assert.Contains("is statically linked", r.Err);
    }

    [Fact]
    public async Task Ranks_get_the_warm_start_up_state_unless_the_user_set_it()
    {
        const string Show = "echo tls=$UCX_TLS this=$HWLOC_THISSYSTEM xml=$HWLOC_XMLFILE";
        var r = await CommandRun.SfrunAsync("-np", "2", "/bin/sh", "-c", Show);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.All(r.OutLines, l => Assert.StartsWith("tls=self,sm this=1 xml=/", l));
        var xml = r.OutLines[0][(r.OutLines[0].IndexOf("xml=", StringComparison.Ordinal) + 4)..];
        Assert.True(new FileInfo(xml).Length > 0, $"{xml} is empty");

        var own = await CommandRun.SfrunAsync("-genv", "UCX_TLS", "tcp", "-np", "2", "/bin/sh", "-c", Show);
        Assert.All(own.OutLines, l => Assert.StartsWith("tls=tcp this=1", l));
        var fromEnv = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "1", "/bin/sh", "-c", Show],
            env: new Dictionary<string, string> { ["HWLOC_THISSYSTEM"] = "0" });
        Assert.StartsWith("tls=self,sm this=0", Assert.Single(fromEnv.OutLines));
        var cold = await CommandRun.SfrunAsync("--no-warm", "-np", "1", "/bin/sh", "-c", Show);
        Assert.Equal("tls= this= xml=", Assert.Single(cold.OutLines));
    }

    /// <summary>Warm masters that are children of <paramref name="sfrunPid"/>, with their socket
    /// path (a master shows only <c>SFWARM_MASTER=socket</c> in /proc/PID/environ).</summary>
    private static List<(int Pid, string Socket)> MastersOf(int sfrunPid)
    {
        var found = new List<(int, string)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
                continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (int.Parse(fields[1]) != sfrunPid)
                    continue;
                var environ = File.ReadAllText(Path.Combine(dir, "environ"));
                const string Marker = "SFWARM_MASTER=";
                if (environ.StartsWith(Marker, StringComparison.Ordinal))
                    found.Add((pid, environ[Marker.Length..].Split('\0')[0]));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
        return found;
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }
}
