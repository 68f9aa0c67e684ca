using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Hosts.Support;

/// <summary>
/// The multi-host test bed (scripts/testbed): five fake hosts on this machine, <c>head</c> and
/// <c>h1</c>..<c>h4</c>, each a network, UTS and mount namespace with a real sshd; head runs
/// slurmctld, h1..h4 a slurmd each (4 CPUs apiece, so 16 ranks fit). Plain <c>ssh h2</c>,
/// <c>srun</c> and <c>mpiexec.hydra -launcher ssh</c> work on every host. Files are shared by all
/// hosts except <c>/tmp</c> and <c>/dev/shm</c>, which are each host's own.
/// <para>One bed serves every test of the <see cref="TestBedCollection"/>. If the bed was not up it
/// is brought up once and taken down when the tests end; one that was already up (someone ran
/// <c>scripts/testbed up</c>) is used and left up. If it cannot come up (not root, packages
/// missing) the tests fail, never skip.</para>
/// </summary>
public sealed class TestBed : IAsyncLifetime
{
    private static readonly string Script = Path.Combine(Repo.Root, "scripts", "testbed");
    private const string Nsenter = "/usr/bin/nsenter";

    public const string Head = "head";

    private readonly Dictionary<string, Host> _hosts = new(StringComparer.Ordinal);

    private sealed record Host(string Name, string Address, string Net, string Uts, string Mount);

    /// <summary>All hosts, head first: head, h1, h2, h3, h4.</summary>
    public IReadOnlyList<string> Hosts { get; private set; } = [];

    /// <summary>The compute hosts (each runs a slurmd): h1..h4.</summary>
    public IReadOnlyList<string> Nodes => Hosts.Where(h => h != Head).ToList();

    /// <summary>Whether this fixture brought the bed up (and so takes it down at the end).</summary>
    public bool BroughtUp { get; private set; }

    /// <summary>Seconds <c>scripts/testbed up</c> took (0 if the bed was already up).</summary>
    public double UpSeconds { get; private set; }

    /// <summary>The host's address on the bed's network (head = 10.250.77.10, h1 = .11, ...).</summary>
    public string AddressOf(string host) => Get(host).Address;

    public async Task InitializeAsync()
    {
        if (!Environment.IsPrivilegedProcess)
            throw new InvalidOperationException("the multi-host test bed (scripts/testbed) needs root: run the scaleout tests as root");
        if (!File.Exists(Script))
            throw new InvalidOperationException($"{Script} is missing");

        var status = await CommandRun.RunAsync(Script, ["status"], bound: TimeSpan.FromSeconds(30));
        if (status.ExitCode != 0)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var up = await CommandRun.RunAsync(Script, ["up"], bound: TimeSpan.FromMinutes(2));
            if (up.ExitCode != 0)
                throw new InvalidOperationException(
                    $"scripts/testbed up failed ({up.ExitCode}); the scaleout tests need it (run scripts/setup for its packages):\n{up.Err}{up.Out}");
            BroughtUp = true;
            UpSeconds = clock.Elapsed.TotalSeconds;
        }

        var hosts = await CommandRun.RunAsync(Script, ["hosts"], bound: TimeSpan.FromSeconds(30));
        if (hosts.ExitCode != 0)
            throw new InvalidOperationException($"scripts/testbed hosts failed ({hosts.ExitCode}): {hosts.Err}");
        foreach (var line in hosts.OutLines)
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length != 5)
                throw new InvalidOperationException($"scripts/testbed hosts printed '{line}'");
            _hosts[f[0]] = new Host(f[0], f[1], f[2], f[3], f[4]);
        }
        Hosts = _hosts.Keys.ToList();
        if (Hosts.Count == 0 || Hosts[0] != Head)
            throw new InvalidOperationException($"scripts/testbed hosts printed no '{Head}' first: {hosts.Out}");
    }

    public async Task DisposeAsync()
    {
        if (!BroughtUp)
            return;
        var down = await CommandRun.RunAsync(Script, ["down"], bound: TimeSpan.FromMinutes(1));
        if (down.ExitCode != 0)
            throw new InvalidOperationException($"scripts/testbed down failed ({down.ExitCode}): {down.Err}");
        // The script promises nothing is left: hold it to that here, where a failure is reported.
        var left = _hosts.Values.SelectMany(h => new[] { h.Net, h.Uts, h.Mount }).Where(File.Exists).ToList();
        if (left.Count > 0)
            throw new InvalidOperationException($"scripts/testbed down left {string.Join(", ", left)}");
    }

    /// <summary>The arguments of <c>/usr/bin/nsenter</c> that run a command as if on
    /// <paramref name="host"/>, in <paramref name="workingDirectory"/> (the repository root if
    /// null; every path but /tmp and /dev/shm is the same on all hosts). Append <c>--</c>, the
    /// command and its arguments.</summary>
    public string[] NsenterArgs(string host, string? workingDirectory = null)
    {
        var h = Get(host);
        return [$"--net={h.Net}", $"--uts={h.Uts}", $"--mount={h.Mount}", $"--wdns={workingDirectory ?? Repo.Root}"];
    }

    /// <summary>Starts <paramref name="command"/> on <paramref name="host"/> (for commands a test
    /// watches or signals while they run). <paramref name="env"/> is added to the test's own
    /// environment; it does not travel further through ssh or srun.</summary>
    internal CommandRun StartOn(string host, string command, IEnumerable<string>? args = null,
        IDictionary<string, string>? env = null, string? workingDirectory = null, bool watchLines = false) =>
        CommandRun.Start(Nsenter, [.. NsenterArgs(host, workingDirectory), "--", command, .. args ?? []], env, Repo.Root, watchLines);

    /// <summary>Runs <paramref name="command"/> on <paramref name="host"/> to its end, within
    /// <paramref name="timeout"/> (default 60 s; a hang throws <see cref="TimeoutException"/>).</summary>
    internal async Task<CommandResult> RunOnAsync(string host, string command, IEnumerable<string>? args = null,
        IDictionary<string, string>? env = null, TimeSpan? timeout = null, string? workingDirectory = null, byte[]? stdin = null)
    {
        await using var run = StartOn(host, command, args, env, workingDirectory);
        await run.WriteStdinAsync(stdin ?? []);
        return await run.WaitAsync(timeout ?? TimeSpan.FromSeconds(60));
    }

    /// <summary>
    /// What jobs left behind on the bed, one line each: <c>"HOST process PID CMDLINE"</c> for a
    /// process in a host's network namespace that is not one of the bed's daemons (sshd listener,
    /// slurmd, slurmctld; munged lives outside the hosts), <c>"HOST file PATH"</c> for an entry in
    /// the host's own /tmp or /dev/shm (sfrun's per-user folders /tmp/snowflock-UID and
    /// /tmp/sfrun-UID may stay, what is in them may not), and, with <paramref name="tag"/>,
    /// <c>"any process PID CMDLINE"</c> for a process anywhere on the machine holding the tag
    /// (<see cref="Leaks.TagArgs"/>). Processes and ssh sessions get up to
    /// <paramref name="grace"/> (default 5 s) to end; empty means nothing was left.
    /// </summary>
    public async Task<IReadOnlyList<string>> LeftoversAsync(string? tag = null, TimeSpan? grace = null)
    {
        var deadline = DateTime.UtcNow + (grace ?? TimeSpan.FromSeconds(5));
        while (true)
        {
            var r = await CommandRun.RunAsync(Script, ["leftovers"], bound: TimeSpan.FromSeconds(30));
            if (r.ExitCode != 0)
                throw new InvalidOperationException($"scripts/testbed leftovers failed ({r.ExitCode}): {r.Err}");
            var left = r.OutLines.Select(l => l.TrimEnd()).ToList();
            if (tag is not null)
                left.AddRange(Leaks.ProcessesWithTag(tag).Select(pid => $"any process {pid} {CommandLine(pid)}"));
            if (left.Count == 0 || DateTime.UtcNow >= deadline)
                return left;
            await Task.Delay(150);
        }
    }

    private static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }

    private Host Get(string host) =>
        _hosts.TryGetValue(host, out var h) ? h
            : throw new ArgumentException($"no host '{host}' in the test bed (hosts: {string.Join(' ', Hosts)})", nameof(host));
}

/// <summary>Tests that share the one test bed; they run one after another (one machine, 2 cores).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TestBedCollection : ICollectionFixture<TestBed>
{
    public const string Name = "testbed";
}
