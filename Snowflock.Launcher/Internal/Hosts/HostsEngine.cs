using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using NLog;
using Snowflock.Engine;
using Snowflock.Engine.Guest.Internal;
using Snowflock.Engine.Internal;
using Snowflock.Launcher.Hosts;
using Snowflock.Launcher.Internal.Hosts.Bootstrap;

namespace Snowflock.Launcher.Internal.Hosts;

/// <summary>
/// The head's side of a multi-host job, as an engine: its "clones" are the hosts of the plan, each
/// served by one <c>sfrun agent</c> that a launcher (<see cref="IBootstrap"/>) started there and
/// that dialled back and proved it holds the job's secret. Everything a rank does crosses that one
/// connection per host as frames of the guest agents' protocol (native/agent/protocol.h): START,
/// stdio, signals, EXIT, and the rank's PMI stream, which is joined here to its end of the head's
/// PMI server's socket pair — so the head's PMI server, supervisor and output path are the ones a
/// one-host job uses. On each host the agent forks the ranks from its own warm masters.
/// </summary>
internal sealed class HostsEngine(HostPlan plan, HostLaunchOptions options, Func<string, string?> getEnv) : IEngine, IAggregatesPmi
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Launcher.Hosts");

    /// <summary>How long all agents together may take to start and dial back (ssh to a loaded
    /// host, an srun waiting for its step); <c>SFRUN_AGENT_TIMEOUT</c> (seconds) overrides it.</summary>
    private static TimeSpan AgentsWithin(Func<string, string?> getEnv) =>
        int.TryParse(getEnv("SFRUN_AGENT_TIMEOUT"), out var s) && s > 0 ? TimeSpan.FromSeconds(s) : TimeSpan.FromSeconds(60);

    /// <summary>Connections that have not yet proved themselves, at most, and how long each may take.</summary>
    private const int MaxPending = 64;
    private static readonly TimeSpan HelloWithin = TimeSpan.FromSeconds(10);

    private readonly AgentChannel?[] _channels = new AgentChannel?[plan.Hosts.Count];
    private readonly List<LaunchedAgents> _launched = [];
    private Socket? _listener;
    private readonly CancellationTokenSource _stop = new();

    public string Name => "hosts";

    public async Task<EnginePreparation> PrepareAsync(WarmMasterSpec master, CancellationToken ct)
    {
        var bootstrap = BootstrapChoice.For(options, plan.Source, getEnv);
        var secret = AgentHandshake.NewSecret();
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Any, 0));
        _listener.Listen(MaxPending);
        var port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        var sfrun = Environment.ProcessPath ?? throw new EngineUnavailableException("cannot tell where this sfrun is, for the other hosts' agents");
        var command = new AgentCommand(sfrun, HeadAddress(), port, secret, master.JobId);
        var targets = plan.Hosts.Select((h, i) => new AgentTarget(i, h, plan.IsLocal[i])).ToList();
        Log.ForDebugEvent().Message("job {JobId}: agents for {Hosts} through {Launcher}, dialling {Head}:{Port}", master.JobId,
            string.Join(",", plan.Hosts), bootstrap.Name, command.HeadAddress, port).Property("EventName", "AgentsLaunching").Log();

        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct, _stop.Token);
        var within = AgentsWithin(getEnv);
        bound.CancelAfter(within);
        var accepting = AcceptAsync(secret, bound.Token);
        try
        {
            _launched.AddRange(await bootstrap.LaunchAsync(targets, command, bound.Token).ConfigureAwait(false));
            await WaitForAgentsAsync(accepting, bootstrap, bound.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            var missing = targets.Where(t => _channels[t.Index] is null).Select(t => t.Host).ToList();
            throw new CloneFailedException($"host {string.Join(", ", missing)}: no sfrun agent connected within {within.TotalSeconds:0} s "
                + $"(launcher {bootstrap.Name}; is {command.HeadAddress}:{port} reachable from there? -iface picks the address)");
        }

        var executables = master.Executables;
        var environment = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .Select(e => new KeyValuePair<string, string>((string)e.Key, (string?)e.Value ?? "")).ToList();
        await Task.WhenAll(targets.Select(async t =>
        {
            var job = new AgentJob(master.JobId, master.Warm, plan.RanksOn(t.Index), executables, environment).Encode();
            if (job.Length > AgentFrame.MaxPayload)
                throw new CloneFailedException($"host {t.Host}: the job's environment takes {job.Length} bytes, more than an agent takes ({AgentFrame.MaxPayload})");
            await _channels[t.Index]!.SendJobAsync(job, ct).ConfigureAwait(false);
        })).ConfigureAwait(false);
        Log.ForDebugEvent().Message("job {JobId}: {Count} host agents ready", master.JobId, targets.Count).Property("EventName", "AgentsReady").Log();
        // Every agent forks its ranks as their STARTs come, so starts overlap across hosts (and
        // the round trips within one host).
        return new EnginePreparation(IPAddress.Loopback, "") { RanksInheritPmiFd = true, StartsInFlight = 64 };
    }

    /// <summary>Until every host has its agent: fails at once when a launcher ends before all its
    /// hosts' agents connected, with what it said.</summary>
    private async Task WaitForAgentsAsync(Task accepting, IBootstrap bootstrap, CancellationToken ct)
    {
        while (_channels.Any(c => c is null))
        {
            var failed = _launched.FirstOrDefault(l => l.Exited.IsCompleted && l.Targets.Any(t => _channels[t.Index] is null));
            if (failed is not null)
            {
                // An agent may still be on its way: its launcher can end once it forked (not ours).
                await Task.Delay(300, ct).ConfigureAwait(false);
                if (failed.Targets.All(t => _channels[t.Index] is not null))
                    continue;
                throw new CloneFailedException(await DescribeFailureAsync(failed).ConfigureAwait(false));
            }
            if (accepting.IsFaulted)
                await accepting.ConfigureAwait(false);
            await Task.WhenAny(Task.Delay(50, ct), Task.WhenAny(_launched.Select(l => l.Exited).DefaultIfEmpty(Task.Delay(Timeout.Infinite, ct))))
                .ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
        }
    }

    private async Task<string> DescribeFailureAsync(LaunchedAgents failed)
    {
        var hosts = string.Join(", ", failed.Targets.Where(t => _channels[t.Index] is null).Select(t => t.Host));
        var said = await failed.LastWordsAsync().ConfigureAwait(false);
        var code = failed.ExitCode;
        var why = failed.Launcher switch
        {
            "ssh" when code == 255 => $"ssh failed: {(said.Length > 0 ? said : "no reason given")}",
            "ssh" or "fork" when code == 127 || said.Contains("No such file", StringComparison.Ordinal) =>
                $"{Environment.ProcessPath} is not there; install the same sfrun at the same path on every host ({said})",
            "srun" => $"srun could not start the agents (exit code {code}): {(said.Length > 0 ? said : "no reason given")}",
            _ => $"the agent ended before it connected (exit code {code}){(said.Length > 0 ? ": " + said : "")}",
        };
        return $"host {hosts}: {why}";
    }

    /// <summary>Accepts agents' connections until every host has one: each gets a challenge and
    /// must answer with a valid HELLO within <see cref="HelloWithin"/>; anything else is closed
    /// and costs nothing more. A right proof from the wrong version is a one-line error.</summary>
    private async Task AcceptAsync(string secret, CancellationToken ct)
    {
        var pending = new SemaphoreSlim(MaxPending);
        while (!ct.IsCancellationRequested && _channels.Any(c => c is null))
        {
            Socket client;
            try
            {
                client = await _listener!.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (SocketException) when (!ct.IsCancellationRequested)
            {
                await Task.Delay(50, ct).ConfigureAwait(false);
                continue;
            }
            if (!pending.Wait(0))
            {
                client.Dispose();
                continue;
            }
            _ = Task.Run(async () =>
            {
                try
                {
                    await AdmitAsync(client, secret, ct).ConfigureAwait(false);
                }
                finally
                {
                    pending.Release();
                }
            }, CancellationToken.None);
        }
    }

    private string? _versionError;

    private async Task AdmitAsync(Socket client, string secret, CancellationToken ct)
    {
        client.NoDelay = true;
        var stream = new NetworkStream(client, ownsSocket: true);
        using var within = CancellationTokenSource.CreateLinkedTokenSource(ct);
        within.CancelAfter(HelloWithin);
        var peer = client.RemoteEndPoint?.ToString() ?? "?";
        try
        {
            var challenge = AgentHandshake.NewChallenge();
            await stream.WriteAsync(AgentFrame.Encode(AgentFrameType.Challenge, 0, challenge), within.Token).ConfigureAwait(false);
            var frame = await AgentFrame.ReadOneAsync(stream, within.Token).ConfigureAwait(false);
            var hello = frame is { Header.Type: AgentFrameType.Hello } f ? AgentHandshake.ParseHello(f.Payload) : null;
            if (hello is null || !AgentHandshake.Verify(secret, challenge, hello.Proof))
            {
                Log.ForWarnEvent().Message("connection from {Peer} refused: not an agent of this job", peer).Property("EventName", "AgentRefused").Log();
                await stream.DisposeAsync().ConfigureAwait(false);
                return;
            }
            var index = hello.Index ?? IndexOf(hello.Host);
            if (index is not { } i || i < 0 || i >= _channels.Length)
            {
                Log.ForWarnEvent().Message("agent from {Peer} names host {Host}, which is not in the job", peer, hello.Host)
                    .Property("EventName", "AgentRefused").Log();
                await stream.DisposeAsync().ConfigureAwait(false);
                return;
            }
            if (hello.Version != AgentHandshake.Version)
            {
                _versionError = $"host {plan.Hosts[i]}: its sfrun is version {hello.Version}, this one {AgentHandshake.Version}; "
                    + "install the same sfrun at the same path on every host";
                await stream.DisposeAsync().ConfigureAwait(false);
                return;
            }
            var channel = new AgentChannel(stream, plan.Hosts[i], IPAddress.Loopback) { Place = $"on {plan.Hosts[i]}" };
            if (Interlocked.CompareExchange(ref _channels[i], channel, null) is not null)
            {
                await channel.DisposeAsync().ConfigureAwait(false);
                return;
            }
            Log.ForDebugEvent().Message("agent of {Host} connected from {Peer}", plan.Hosts[i], peer).Property("EventName", "AgentConnected").Log();
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or AgentProtocolException or ObjectDisposedException)
        {
            await stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>An agent started by srun names its host; Slurm's names may be short or long.</summary>
    private int? IndexOf(string host)
    {
        for (var i = 0; i < plan.Hosts.Count; i++)
            if (string.Equals(plan.Hosts[i], host, StringComparison.OrdinalIgnoreCase)
                || string.Equals(plan.Hosts[i].Split('.')[0], host.Split('.')[0], StringComparison.OrdinalIgnoreCase))
                if (_channels[i] is null)
                    return i;
        return null;
    }

    /// <summary>The address agents dial: -iface's IPv4 address, else this host's name (as hydra).</summary>
    private string HeadAddress()
    {
        if (options.Interface is not { } name)
            return Dns.GetHostName();
        var nic = NetworkInterface.GetAllNetworkInterfaces().FirstOrDefault(n => n.Name == name)
            ?? throw new PlacementException($"-iface {name}: no such network interface here");
        return nic.GetIPProperties().UnicastAddresses.FirstOrDefault(a => a.Address.AddressFamily == AddressFamily.InterNetwork)?.Address.ToString()
            ?? throw new PlacementException($"-iface {name}: the interface has no IPv4 address");
    }

    public Task<IReadOnlyList<IClone>> CloneAsync(int count, CancellationToken ct)
    {
        if (_versionError is not null)
            throw new CloneFailedException(_versionError);
        var clones = new List<IClone>(count);
        var slots = new int[plan.Hosts.Count];
        for (var rank = 0; rank < count; rank++)
        {
            var host = plan.HostOfRank[rank];
            clones.Add(new HostClone(new CloneIdentity(rank, host, plan.Hosts[host]), _channels[host]!, (ushort)slots[host]++));
        }
        return Task.FromResult<IReadOnlyList<IClone>>(clones);
    }

    /// <summary>Gives each host's agent its aggregated PMI stream (stream 0 of its connection),
    /// before any rank starts, so its first barrier already goes through it.</summary>
    public void JoinHostPmi(Func<IReadOnlyCollection<int>, Socket> connectHost)
    {
        foreach (var ranks in plan.HostOfRank.Select((host, rank) => (host, rank)).GroupBy(x => x.host))
            if (_channels[ranks.Key] is { } channel)
                channel.JoinHostPmi(connectHost(ranks.Select(x => x.rank).ToList()));
    }

    /// <summary>One rank's place on a host: a slot of that host's agent.</summary>
    private sealed class HostClone(CloneIdentity identity, AgentChannel channel, ushort slot) : IClone
    {
        public CloneIdentity Identity => identity;

        public Task<IRankProcess> StartRankAsync(RankStart start, CancellationToken ct)
        {
            // The caller closes its PMI socket once the rank started: the relay keeps its own copy.
            if (start.PmiSocket is { } pmi)
                channel.JoinPmi(slot, Posix.DuplicateSocket(pmi));
            return channel.StartRankAsync(slot, start with { PmiSocket = null }, ct);
        }
    }

    public async Task TeardownAsync(CancellationToken ct)
    {
        _stop.Cancel();
        _listener?.Dispose();
        var channels = _channels.OfType<AgentChannel>().ToList();
        Array.Clear(_channels);
        // QUIT makes each agent kill its ranks, end its engine and exit; its launcher then ends.
        await Task.WhenAll(channels.Select(c => c.QuitAsync(CancellationToken.None))).ConfigureAwait(false);
        await Task.WhenAny(Task.WhenAll(channels.Select(c => c.Closed)), Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
        foreach (var c in channels)
            await c.DisposeAsync().ConfigureAwait(false);
        var launched = _launched.ToList();
        _launched.Clear();
        await Task.WhenAll(launched.Select(l => l.DisposeAsync().AsTask())).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync() => await TeardownAsync(CancellationToken.None).ConfigureAwait(false);
}
