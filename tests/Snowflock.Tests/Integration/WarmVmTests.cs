using System.Text.Json;
using System.Text.RegularExpressions;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>Warm VMs on the process engine: <c>sfrun warm create|list|rm</c> keep a real warm master
/// of a real MPICH program alive between jobs, <c>sfrun --vm NAME</c> forks a job's ranks from it
/// with the output and exit codes of a normal job, the master survives its jobs but not
/// <c>warm rm</c>, and its death, a rebuilt program or another program are clear errors. Each test
/// has its own XDG_RUNTIME_DIR, so the warm VM directory it checks holds only its own files.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed partial class WarmVmTests : IAsyncLifetime
{
    private readonly DirectoryInfo _runtime = Directory.CreateTempSubdirectory("sftest-warmvm-");
    private readonly Dictionary<string, string> _env;

    public WarmVmTests()
    {
        _env = new() { ["XDG_RUNTIME_DIR"] = _runtime.FullName };
    }

    private string WarmDir => Path.Combine(_runtime.FullName, "snowflock", "warm");

    private Task<CommandResult> Sfrun(params string[] args) => CommandRun.RunAsync(Repo.Sfrun, args, env: _env);

    private async Task<int> CreateAsync(string name, string program, params string[] args)
    {
        var r = await Sfrun(["warm", "create", name, "--", program, .. args]);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains($"warm VM '{name}' is ready", r.Out);
        return PidOf(name);
    }

    private int PidOf(string name)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(WarmDir, name + ".json")));
        return json.RootElement.GetProperty("Pid").GetInt32();
    }

    private static bool Running(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    [GeneratedRegex(@"^(\S+)\s+(\S+)\s+(alive|dead)\s+(\d+)\s+(\S+)\s+(\S+)\s+(.*)$")]
    private static partial Regex ListLine();

    private sealed record Listed(string Name, string Engine, bool Alive, int Pid, string Jobs, string Program);

    private async Task<List<Listed>> ListAsync()
    {
        var r = await Sfrun("warm", "list");
        Assert.True(r.ExitCode == 0, r.Err);
        return r.OutLines.Skip(1).Select(l => ListLine().Match(l)).Where(m => m.Success)
            .Select(m => new Listed(m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Value == "alive", int.Parse(m.Groups[4].Value),
                m.Groups[6].Value, m.Groups[7].Value))
            .ToList();
    }

    [Fact]
    public async Task Create_list_and_rm_leave_nothing_behind()
    {
        var ring = Repo.Example("ring");
        var pid = await CreateAsync("ring4", ring, "4");
        Assert.True(Running(pid));
        var listed = Assert.Single(await ListAsync());
        Assert.Equal(new Listed("ring4", "process", true, pid, "0", ring + " 4"), listed);
        // Detached: its own session, not the test's.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        Assert.Equal(pid.ToString(), fields[3]);
        Assert.Equal(["ring4.json", "ring4.log", "ring4.sock"], Directory.GetFiles(WarmDir).Select(Path.GetFileName).Order());

        var rm = await Sfrun("warm", "rm", "ring4");
        Assert.True(rm.ExitCode == 0, rm.Err);
        Assert.False(Running(pid));
        Assert.Empty(Directory.GetFiles(WarmDir));
        Assert.Contains("no warm VMs", (await Sfrun("warm", "list")).Out);
    }

    [Fact]
    public async Task Jobs_fork_from_the_warm_vm_two_in_a_row_and_the_master_survives_them()
    {
        var pid = await CreateAsync("probe", Repo.TestProgram("warm_probe"));
        for (var job = 1; job <= 2; job++)
        {
            var tag = Leaks.NewTag();
            var r = await Sfrun([.. Leaks.TagArgs(tag), "-np", "4", "--vm", "probe"]);
            Assert.True(r.ExitCode == 0, r.Err);
            var lines = r.OutLines.Where(l => l.StartsWith("rank ")).Order(StringComparer.Ordinal).ToList();
            Assert.Equal(4, lines.Count);
            // Every rank ran the constructors of the warm VM's master: nothing was loaded again.
            Assert.All(lines, l => Assert.Contains($" constructor {pid} ", l));
            // The ranks' LD_PRELOAD is what sfrun gives every MPI rank (libsfucx among it), never the fork server.
            Assert.All(lines, l => Assert.Matches($@" preload \S*{Regex.Escape(Repo.UcxProgressLibrary)}\S* socket - ", l));
            Assert.All(lines, l => Assert.DoesNotContain("libsfwarm", l));
            await Leaks.AssertNoneAsync(tag);
            Assert.True(Running(pid), $"the warm VM's master died after job {job}");
            Assert.Equal(job.ToString(), Assert.Single(await ListAsync()).Jobs);
        }
        var ring = await CreateAsync("ring", Repo.Example("ring"), "4");
        var hydra = await CommandRun.RunAsync(Repo.Hydra, ["-np", "8", Repo.Example("ring"), "4"]);
        var sf = await Sfrun("-np", "8", "--vm", "ring", Repo.Example("ring"), "4");
        Assert.True(sf.ExitCode == 0, sf.Err);
        Assert.Equal(hydra.OutLines, sf.OutLines);
        Assert.True(Running(ring));
    }

    [Theory]
    [InlineData("abort", new[] { "1", "7" }, 7, "called MPI_Abort with exit code 7")]
    [InlineData("crash", new[] { "1", "segv" }, 11, "killed by signal 11 (SIGSEGV)")]
    [InlineData("crash", new[] { "2", "exit3" }, 3, "exited with code 3")]
    public async Task A_failing_job_ends_as_without_a_warm_vm_and_the_master_lives_on(string program, string[] args, int code, string report)
    {
        var pid = await CreateAsync("failing", Repo.TestProgram(program), args);
        var tag = Leaks.NewTag();
        var r = await Sfrun([.. Leaks.TagArgs(tag), "-np", "4", "--vm", "failing"]);
        var cold = await Sfrun(["--no-warm", "-np", "4", Repo.TestProgram(program), .. args]);
        Assert.Equal(cold.ExitCode, r.ExitCode);
        Assert.Equal(code, r.ExitCode);
        Assert.Contains(report, r.Err);
        await Leaks.AssertNoneAsync(tag);
        Assert.True(Running(pid));
        Assert.Equal(0, (await Sfrun("warm", "rm", "failing")).ExitCode);
    }

    [Fact]
    public async Task Killing_the_master_fails_its_job_clearly_and_list_shows_it_dead()
    {
        var pid = await CreateAsync("sleepy", Repo.TestProgram("sleeper"));
        var tag = Leaks.NewTag();
        await using (var job = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-np", "3", "--vm", "sleepy"], _env, watchLines: true))
        {
            await job.WriteStdinAsync([]);
            await job.WaitForLinesAsync("ready", 3, TimeSpan.FromSeconds(30));
            Posix.Kill(pid, 9);
            var r = await job.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("warm VM 'sleepy'", r.Err);
            Assert.Contains("died during the job", r.Err);
        }
        await Leaks.AssertNoneAsync(tag);
        var listed = Assert.Single(await ListAsync());
        Assert.False(listed.Alive);
        var again = await Sfrun("-np", "2", "--vm", "sleepy");
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("warm VM 'sleepy' is dead", again.Err);
        Assert.Single(again.Err.Trim().Split('\n'));
        Assert.Equal(0, (await Sfrun("warm", "rm", "sleepy")).ExitCode);
        Assert.Empty(Directory.GetFiles(WarmDir));
    }

    [Fact]
    public async Task A_rebuilt_program_or_another_program_is_refused_in_one_line()
    {
        var copy = Path.Combine(_runtime.FullName, "ring");
        File.Copy(Repo.Example("ring"), copy);
        await CreateAsync("mine", copy);
        var other = await Sfrun("-np", "2", "--vm", "mine", Repo.Example("ring"));
        Assert.Equal(1, other.ExitCode);
        Assert.Contains("warm VM 'mine' holds", other.Err);
        var args = await Sfrun("-np", "2", "--vm", "mine", copy, "9");
        Assert.Equal(1, args.ExitCode);
        Assert.Contains("arguments", args.Err);

        File.SetLastWriteTimeUtc(copy, DateTime.UtcNow.AddMinutes(-1));
        var stale = await Sfrun("-np", "2", "--vm", "mine");
        Assert.Equal(1, stale.ExitCode);
        Assert.Contains($"{copy} was rebuilt", stale.Err);
        Assert.Single(stale.Err.Trim().Split('\n'));

        var missing = await Sfrun("-np", "2", "--vm", "nosuch");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("no warm VM named 'nosuch'", missing.Err);
        var taken = await Sfrun("warm", "create", "mine", copy);
        Assert.Equal(1, taken.ExitCode);
        Assert.Contains("already exists", taken.Err);
    }

    [Fact]
    public async Task Bad_warm_commands_are_one_line_errors()
    {
        var cases = new (string[] Args, int Code, string Text)[]
        {
            (["warm"], 2, "usage"),
            (["warm", "frobnicate"], 2, "unknown warm command"),
            (["warm", "create", "x"], 2, "needs a PROGRAM"),
            (["warm", "create", "../x", Repo.Example("ring")], 1, "not a valid warm VM name"),
            (["warm", "create", "x", "/no/such/program"], 127, "/no/such/program"),
            (["warm", "create", "x", "--engine", "qemu", Repo.Example("ring")], 1, "qemu engine"),
            (["warm", "rm"], 2, "needs a NAME"),
            (["warm", "rm", "ghost"], 1, "no warm VM named 'ghost'"),
            (["--vm", "x", "--no-warm", "-np", "2"], 2, "contradict"),
        };
        foreach (var (args, code, text) in cases)
        {
            var r = await Sfrun(args);
            Assert.True(code == r.ExitCode, $"{string.Join(' ', args)}: exit {r.ExitCode}, {r.Err}");
            Assert.Contains(text, r.Err);
            Assert.Single(r.Err.Trim().Split('\n'));
        }
        Assert.Empty(Directory.GetFiles(WarmDir));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        // Whatever a failed test left: no master may outlive it.
        await Sfrun("warm", "rm", "--all");
        _runtime.Delete(recursive: true);
    }
}
