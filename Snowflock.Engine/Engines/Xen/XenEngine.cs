using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using NLog;
using Snowflock.Engine.Engines.Xen.Internal;
using Snowflock.Engine.Guest.Internal;

namespace Snowflock.Engine.Engines.Xen;

/// <summary>
/// The xen engine: clones are Xen PV domUs. Prepare boots a master domU from the job's guest image
/// (the agent as /init, waiting for an identity) and checkpoints it with <c>xl save -c</c>, or,
/// with <c>--vm NAME</c>, checkpoints the running warm domU NAME; Clone restores the checkpoint
/// once per clone, paused, with its own name and MAC, writes its identity and fresh entropy into
/// xenstore and unpauses it; each clone's agent then connects back with the token dom0 gave it
/// and runs ranks over that channel (PMI through its relay). With <c>--no-warm</c> every domU is
/// created fresh from the image instead (what cloning is measured against). Teardown destroys
/// every domain and removes the job's files in dom0; a watchdog in dom0 does the same if sfrun
/// dies first. xl runs in dom0 itself, or over ssh with <c>--xen-host user@dom0</c> (XEN_HOST).
/// Stock Xen has no <c>xl fork-vm</c> (Debian builds it without mem_sharing), so clones share no
/// memory. See Engines/Xen/README.md for the network wiring and its settings.
/// </summary>
public sealed class XenEngine : IEngine
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Xen");
    private static readonly TimeSpan BootWithin = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan ConnectWithin = TimeSpan.FromMinutes(5);
    private static int ParallelRestores =>
        int.TryParse(Environment.GetEnvironmentVariable("SFRUN_XEN_PARALLEL"), out var n) && n >= 1 ? n : 1;
    private const string Root = XenGuestFileStore.Root;

    private readonly XlClient _xl;
    private readonly List<string> _domains = [];
    private readonly List<AgentChannel> _agents = [];
    /// <summary>Domains restored but not yet connected: token → (domain name, its channel once made).</summary>
    private readonly ConcurrentDictionary<string, (string Name, TaskCompletionSource<AgentChannel> Connected)> _pending = new();
    private readonly CancellationTokenSource _stop = new();
    private TcpListener? _listener;
    private Task? _accepting;
    private Dom0Guard? _guard;
    private string _job = "";
    private string _jobDir = "";
    private string _checkpoint = "";
    private DomainConfig? _config;
    private XenNetwork? _net;
    private bool _warm = true;
    private int _ranksPerDomain = 1;
    private int _tornDown;

    /// <param name="xenHost">ssh destination of dom0 (<c>--xen-host</c>); null: XEN_HOST, else xl runs here.</param>
    public XenEngine(string? xenHost = null)
    {
        _xl = XlClient.ForHost(xenHost);
    }

    public string Name => "xen";

    public async Task<EnginePreparation> PrepareAsync(WarmMasterSpec master, CancellationToken ct)
    {
        try
        {
            return await PrepareMasterAsync(master, ct);
        }
        catch (Exception e) when (e is XlCommandException or TimeoutException)
        {
            // dom0 refused or failed (no memory, no space, a tool that died): one line, exit 1.
            throw new CloneFailedException($"xen engine: preparing the warm master failed: {e.Message}", e);
        }
    }

    private async Task<EnginePreparation> PrepareMasterAsync(WarmMasterSpec master, CancellationToken ct)
    {
        _job = "sf-" + new string(master.JobId.Where(char.IsAsciiLetterOrDigit).ToArray());
        _jobDir = $"{Root}/jobs/{_job}";
        _checkpoint = $"{_jobDir}/master.chk";
        _warm = master.Warm;
        _ranksPerDomain = Math.Max(1, master.RanksPerClone ?? 1);
        var clock = Stopwatch.StartNew();
        await XenWarmDomains.RequireXenAsync(_xl, ct);
        _net = await XenNetwork.ReadAsync(_xl, ct);
        StartListener();
        // Before anything of the job exists in dom0: from here on a dead sfrun leaves nothing there.
        _guard = Dom0Guard.Start(_xl.Shell, _job, _jobDir);

        if (master.WarmVm is { } warmVm)
        {
            _config = await XenWarmDomains.ConfigForClonesAsync(_xl, warmVm, master.Executables, ct);
            await _xl.RunAsync(["mkdir", "-p", _jobDir], TimeSpan.FromSeconds(60), ct);
            await _xl.CheckpointAsync(warmVm, _checkpoint, ct);
        }
        else
        {
            var files = await XenGuestFileStore.EnsureAsync(_xl, master.Executables, ct);
            _config = DomainConfig.ForGuest($"{_job}-m", files, MacAddress.For(Environment.ProcessId, 0), _net.Bridge);
            if (_warm)
            {
                await UploadAsync($"{_jobDir}/master.cfg", _config.Render(), ct);
                _domains.Add(_config.Name);
                await _xl.MakeDomainAsync(_config.Name, $"{_jobDir}/master.cfg", checkpoint: null, ct);
                await _xl.UnpauseAsync(_config.Name, ct);
                await _xl.WaitForGuestKeyAsync(_config.Name, "waiting", BootWithin, ct);
                await _xl.CheckpointAsync(_config.Name, _checkpoint, ct);
                // The checkpoint is the warm state; the master itself would only hold memory.
                await _xl.DestroyAsync(_config.Name, ct);
            }
        }
        Log.ForDebugEvent().Message("job {JobId}: {Mode} in {Ms} ms ({Where})", master.JobId,
                !_warm ? "image ready for cold boots (--no-warm)" : master.WarmVm is { } vm ? $"warm domU {vm} checkpointed" : $"warm master {_config.Name} checkpointed",
                clock.ElapsedMilliseconds, _xl.Shell.Where)
            .Property("EventName", "XenMasterReady").Log();
        return new EnginePreparation(IPAddress.Loopback, IPAddress.Loopback.ToString());
    }

    public async Task<IReadOnlyList<IClone>> CloneAsync(int count, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var config = _config ?? throw new InvalidOperationException("CloneAsync before PrepareAsync");
        var net = _net!;
        var domainCount = (count + _ranksPerDomain - 1) / _ranksPerDomain;
        if (domainCount > 200)
            throw new CloneFailedException($"xen engine: {domainCount} domains asked, at most 200 per job (use -ppn to put more ranks in each)");
        var names = Enumerable.Range(1, domainCount).Select(i => $"{_job}-{i}").ToList();
        var ips = Enumerable.Range(0, domainCount).Select(net.AddressOf).ToList();
        var hosts = string.Join(',', names.Select((n, i) => $"{n}={ips[i]}"));
        var waits = new List<Task<AgentChannel>>();
        var clock = Stopwatch.StartNew();
        try
        {
            // One at a time unless SFRUN_XEN_PARALLEL says more: the vif-bridge hotplug scripts
            // take one lock in dom0, and on the nested test host two restores at once made the
            // waiting one overrun libxl's hotplug timeout. A fast dom0 can overlap the memory copies.
            using var slots = new SemaphoreSlim(ParallelRestores);
            var bringUps = new List<Task>();
            for (var i = 0; i < domainCount; i++)
            {
                var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
                var connected = new TaskCompletionSource<AgentChannel>(TaskCreationOptions.RunContinuationsAsynchronously);
                _pending[token] = (names[i], connected);
                waits.Add(connected.Task);
                var identity = new Dictionary<string, string>
                {
                    ["clone"] = (i + 1).ToString(CultureInfo.InvariantCulture),
                    ["hostname"] = names[i],
                    ["ip"] = $"{ips[i]}/{net.Prefix}",
                    ["mac"] = MacAddress.For(Environment.ProcessId, i + 1),
                    ["hosts"] = hosts,
                    ["entropy"] = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(64)),
                    ["token"] = token,
                    ["control"] = net.Control,
                };
                if (net.Gateway is { } gw)
                    identity["gateway"] = gw;
                lock (_domains)
                    _domains.Add(names[i]);
                bringUps.Add(BringUpAsync(config.ForClone(names[i], identity["mac"]), identity, slots, ct));
            }
            await Task.WhenAll(bringUps);
            var agents = await Task.WhenAll(waits).WaitAsync(ConnectWithin, ct);
            Log.ForDebugEvent().Message("job {JobId}: {Count} domains {Mode} and connected in {Ms} ms", _job, domainCount,
                    _warm ? "cloned" : "created", clock.ElapsedMilliseconds)
                .Property("EventName", "XenClonesReady").Log();
            var clones = new List<IClone>(count);
            for (var r = 0; r < count; r++)
            {
                var k = r / _ranksPerDomain;
                var inDomain = Math.Min(_ranksPerDomain, count - k * _ranksPerDomain);
                clones.Add(new XenClone(new CloneIdentity(r, k, names[k]), agents[k], (ushort)(r % _ranksPerDomain), inDomain));
            }
            return clones;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await TeardownAsync(CancellationToken.None);
            throw e is CloneFailedException ? e : new CloneFailedException(
                e is TimeoutException ? $"xen engine: clones did not connect to {net.Control} within {ConnectWithin.TotalSeconds:0} s (is that address reachable from {config.Bridge}?)"
                    : $"xen engine: cloning failed: {e.Message}", e);
        }
    }

    /// <summary>One domain: restored (or created) paused, its identity in xenstore, unpaused.</summary>
    private async Task BringUpAsync(DomainConfig domain, IReadOnlyDictionary<string, string> identity, SemaphoreSlim slots, CancellationToken ct)
    {
        await slots.WaitAsync(ct);
        try
        {
            var cfg = $"{_jobDir}/{domain.Name}.cfg";
            await UploadAsync(cfg, domain.Render(), ct);
            await _xl.MakeDomainAsync(domain.Name, cfg, _warm ? _checkpoint : null, ct);
            await _xl.IdentifyAndUnpauseAsync(domain.Name, identity, ct);
        }
        finally
        {
            slots.Release();
        }
    }

    public async Task TeardownAsync(CancellationToken ct)
    {
        if (Interlocked.Exchange(ref _tornDown, 1) == 1)
            return;
        _stop.Cancel();
        _listener?.Stop();
        List<AgentChannel> agents;
        lock (_agents)
            agents = [.. _agents];
        // QUIT powers the connected clones off (on_poweroff = destroy); an xl destroy racing that
        // shutdown fails in the vif hotplug script, so let them go first.
        foreach (var agent in agents)
            await agent.QuitAsync(CancellationToken.None);
        foreach (var agent in agents)
            await agent.DisposeAsync();
        try
        {
            if (agents.Count > 0)
                await _xl.WaitGoneAsync(_domains, TimeSpan.FromSeconds(15), CancellationToken.None);
        }
        catch (Exception e) when (e is XlCommandException or TimeoutException or EngineUnavailableException)
        {
        }
        foreach (var name in Enumerable.Reverse(_domains))
            await DestroyAsync(name);
        if (_guard is not null)
        {
            try
            {
                await _xl.RemoveFilesAsync([_jobDir], CancellationToken.None);
            }
            catch (Exception e) when (e is XlCommandException or TimeoutException or EngineUnavailableException)
            {
                Log.ForWarnEvent().Message("xen engine: could not remove {Dir}: {Error}", _jobDir, e.Message).Property("EventName", "XenCleanupFailed").Log();
            }
        }
        if (_guard is not null)
            await _guard.DisposeAsync();
        if (_accepting is not null)
            await _accepting.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    private async Task DestroyAsync(string name)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await _xl.DestroyAsync(name, CancellationToken.None);
                return;
            }
            catch (Exception e) when (e is XlCommandException or TimeoutException or EngineUnavailableException)
            {
                if (attempt >= 3)
                {
                    Log.ForWarnEvent().Message("xen engine: could not destroy {Domain}: {Error}", name, e.Message).Property("EventName", "XenDestroyFailed").Log();
                    return;
                }
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await TeardownAsync(CancellationToken.None);
        _stop.Dispose();
    }

    private Task UploadAsync(string path, string text, CancellationToken ct) =>
        _xl.WriteFileAsync(path, new MemoryStream(Encoding.UTF8.GetBytes(text)), ct);

    private void StartListener()
    {
        var net = _net!;
        _listener = new TcpListener(net.ListenAddress(), net.ControlPort ?? 0);
        _listener.Start();
        net.BindPort(((IPEndPoint)_listener.LocalEndpoint).Port);
        _accepting = AcceptAsync(_listener);
    }

    private async Task AcceptAsync(TcpListener listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            // Unauthenticated connections are bounded: once every clone has said HELLO nobody else
            // may, and no more than a few may wait to say it at once (a stalled HELLO costs an fd).
            if (_pending.IsEmpty || !_admitting.Wait(0))
            {
                client.Dispose();
                continue;
            }
            _ = AdmitAsync(client).ContinueWith(_ => _admitting.Release(), TaskScheduler.Default);
        }
    }

    private readonly SemaphoreSlim _admitting = new(MaxAdmitting);
    private const int MaxAdmitting = 64;

    /// <summary>A connection is a clone only if its first frame is HELLO with the token dom0 gave
    /// that clone; anything else is closed.</summary>
    private async Task AdmitAsync(TcpClient client)
    {
        try
        {
            client.NoDelay = true;
            using var first = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            first.CancelAfter(TimeSpan.FromSeconds(10));
            var stream = client.GetStream();
            var hello = await AgentFrame.ReadOneAsync(stream, first.Token);
            var token = hello is ({ Type: AgentFrameType.Hello }, var payload)
                ? Encoding.UTF8.GetString(payload).Split('\n').FirstOrDefault(l => l.StartsWith("token=", StringComparison.Ordinal))?["token=".Length..]
                : null;
            if (token is not null && _pending.TryRemove(token, out var waiting))
            {
                // The relay reaches sfrun's PMI server on loopback: sfrun itself holds those sockets.
                var agent = new AgentChannel(stream, waiting.Name, IPAddress.Loopback);
                lock (_agents)
                    _agents.Add(agent);
                waiting.Connected.TrySetResult(agent);
                return;
            }
            Log.ForDebugEvent().Message("xen engine: a connection from {Peer} without a clone's token was closed", client.Client.RemoteEndPoint)
                .Property("EventName", "XenStrangerRefused").Log();
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or AgentProtocolException)
        {
        }
        client.Dispose();
    }

    /// <summary>One rank's place in a domU: the domU's agent channel and the rank's slot in it.</summary>
    private sealed class XenClone(CloneIdentity identity, AgentChannel agent, ushort slot, int ranksInDomain) : IClone
    {
        public CloneIdentity Identity => identity;

        public Task<IRankProcess> StartRankAsync(RankStart start, CancellationToken ct)
        {
            // Only self, shared memory and TCP make sense in a PV domU, and UCX's probing of the
            // rest is slow under nested TCG. The user's UCX_TLS wins.
            if (!start.Environment.ContainsKey("UCX_TLS"))
                start = start with
                {
                    Environment = new Dictionary<string, string>(start.Environment) { ["UCX_TLS"] = ranksInDomain > 1 ? "self,sm,tcp" : "self,tcp" },
                };
            return agent.StartRankAsync(slot, start, ct);
        }
    }
}
