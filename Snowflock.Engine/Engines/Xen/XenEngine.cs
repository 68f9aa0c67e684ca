using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using NLog;
using Snowflock.Engine.Engines.Xen.Internal;

namespace Snowflock.Engine.Engines.Xen;

/// <summary>
/// The xen engine: clones are Xen PV domUs. Prepare boots a master domU from the guest image
/// (the agent as /init, waiting for an identity), checkpoints it with <c>xl save -c</c> and
/// destroys it; Clone restores the checkpoint once per clone, paused, with its own name and MAC,
/// writes its identity into xenstore and unpauses it; each clone's agent then connects back and
/// runs ranks over that channel (PMI through its relay). Teardown destroys every domain and
/// removes the job's files in dom0. xl runs in dom0 itself, or over ssh with XEN_HOST=user@dom0.
/// Stock Xen has no <c>xl fork-vm</c> (Debian builds it without mem_sharing), so clones share no
/// memory. See Engines/Xen/README.md for the network wiring and its settings.
/// </summary>
public sealed class XenEngine : IEngine
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Xen");
    private static readonly TimeSpan BootWithin = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan ConnectWithin = TimeSpan.FromMinutes(5);
    private const string Root = "/var/lib/snowflock";

    private readonly XlClient _xl;
    private readonly List<string> _domains = [];
    private readonly List<AgentConnection> _agents = [];
    /// <summary>Clones restored but not yet connected: token → (domain name, its connection once made).</summary>
    private readonly ConcurrentDictionary<string, (string Name, TaskCompletionSource<AgentConnection> Connected)> _pending = new();
    private readonly CancellationTokenSource _stop = new();
    private TcpListener? _listener;
    private Task? _accepting;
    private string _job = "";
    private string _jobDir = "";
    private string _checkpoint = "";
    private DomainConfig? _config;
    private (IPAddress Address, int Prefix, string? Gateway) _net;
    private string _control = "";
    private int _tornDown;
    private bool _wroteToDom0;

    public XenEngine()
    {
        var host = Environment.GetEnvironmentVariable("XEN_HOST");
        _xl = new XlClient(string.IsNullOrEmpty(host) ? Dom0Shell.Local() : Dom0Shell.OverSsh(host, Environment.GetEnvironmentVariable("SFRUN_SSH_CONFIG")));
    }

    public string Name => "xen";

    public async Task<EnginePreparation> PrepareAsync(WarmMasterSpec master, CancellationToken ct)
    {
        _job = "sf-" + new string(master.JobId.Where(char.IsAsciiLetterOrDigit).ToArray());
        _jobDir = $"{Root}/jobs/{_job}";
        _checkpoint = $"{_jobDir}/master.chk";
        try
        {
            var info = await _xl.InfoAsync(ct);
            if (!info.TryGetValue("xen_caps", out var caps) || !caps.Contains("xen-3.0-x86_64", StringComparison.Ordinal))
                throw new EngineUnavailableException($"xen engine: {_xl.Shell.Where} cannot run 64-bit PV guests (xen_caps: {caps})");
        }
        catch (Exception e) when (e is XlCommandException or FormatException or TimeoutException)
        {
            throw new EngineUnavailableException($"xen engine: xl info failed in {_xl.Shell.Where}: {e.Message}");
        }
        var bridge = Environment.GetEnvironmentVariable("SFRUN_XEN_BRIDGE") is { Length: > 0 } b ? b : "xenbr0";
        await ReadNetworkAsync(bridge, ct);
        StartListener();

        var image = await XenGuestImage.BuildAsync(master.Executables, [Directory.GetCurrentDirectory()], ct);
        string ramdisk, kernel;
        try
        {
            ramdisk = $"{Root}/images/{image.Hash}.cpio.gz";
            kernel = await EnsureFilesAsync(image, ramdisk, ct);
        }
        finally
        {
            File.Delete(image.Path);
        }

        var memory = int.TryParse(Environment.GetEnvironmentVariable("SFRUN_XEN_MEMORY"), out var m) ? m : 384;
        _config = new DomainConfig($"{_job}-m", kernel, ramdisk, "console=hvc0 quiet", memory, 1, MacAddress.For(Environment.ProcessId, 0), bridge);
        await UploadAsync($"{_jobDir}/master.cfg", _config.Render(), ct);
        _domains.Add(_config.Name);
        await _xl.CreateAsync($"{_jobDir}/master.cfg", paused: false, ct);
        await _xl.WaitForGuestKeyAsync(_config.Name, "waiting", BootWithin, ct);
        await _xl.CheckpointAsync(_config.Name, _checkpoint, ct);
        // The checkpoint is the warm state; the master itself would only hold memory.
        await _xl.DestroyAsync(_config.Name, ct);
        Log.ForDebugEvent().Message("job {JobId}: warm master {Domain} checkpointed in {Where}", master.JobId, _config.Name, _xl.Shell.Where)
            .Property("EventName", "XenMasterReady").Log();
        return new EnginePreparation(IPAddress.Loopback, IPAddress.Loopback.ToString());
    }

    public async Task<IReadOnlyList<IClone>> CloneAsync(int count, CancellationToken ct)
    {
        var config = _config ?? throw new InvalidOperationException("CloneAsync before PrepareAsync");
        if (count > 200)
            throw new CloneFailedException($"xen engine: {count} clones asked, at most 200 per job");
        var names = Enumerable.Range(1, count).Select(i => $"{_job}-{i}").ToList();
        var ips = Enumerable.Range(0, count).Select(AddressOf).ToList();
        var hosts = string.Join(',', names.Select((n, i) => $"{n}={ips[i]}"));
        var waits = new List<Task<AgentConnection>>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var cfg = $"{_jobDir}/{names[i]}.cfg";
                var mac = MacAddress.For(Environment.ProcessId, i + 1);
                await UploadAsync(cfg, config.ForClone(names[i], mac).Render(), ct);
                _domains.Add(names[i]);
                await _xl.RestoreCloneAsync(names[i], cfg, _checkpoint, ct);
                var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
                var connected = new TaskCompletionSource<AgentConnection>(TaskCreationOptions.RunContinuationsAsynchronously);
                _pending[token] = (names[i], connected);
                waits.Add(connected.Task);
                var identity = new Dictionary<string, string>
                {
                    ["clone"] = (i + 1).ToString(CultureInfo.InvariantCulture),
                    ["hostname"] = names[i],
                    ["ip"] = $"{ips[i]}/{_net.Prefix}",
                    ["mac"] = mac,
                    ["hosts"] = hosts,
                    ["token"] = token,
                    ["control"] = _control,
                };
                if (_net.Gateway is { } gw)
                    identity["gateway"] = gw;
                await _xl.IdentifyAndUnpauseAsync(names[i], identity, ct);
            }
            var agents = await Task.WhenAll(waits).WaitAsync(ConnectWithin, ct);
            foreach (var agent in agents)
                agent.Send(AgentFrames.Entropy, 0, RandomNumberGenerator.GetBytes(64));
            Log.ForDebugEvent().Message("job {JobId}: {Count} clones connected", _job, count).Property("EventName", "XenClonesReady").Log();
            return agents.Select((a, i) => (IClone)new XenClone(new CloneIdentity(i, i, names[i]), a)).ToList();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await TeardownAsync(CancellationToken.None);
            throw e is CloneFailedException ? e : new CloneFailedException(
                e is TimeoutException ? $"xen engine: clones did not connect to {_control} within {ConnectWithin.TotalSeconds:0} s (is that address reachable from {config.Bridge}?)"
                    : $"xen engine: cloning failed: {e.Message}", e);
        }
    }

    public async Task TeardownAsync(CancellationToken ct)
    {
        if (Interlocked.Exchange(ref _tornDown, 1) == 1)
            return;
        _stop.Cancel();
        _listener?.Stop();
        foreach (var agent in _agents.ToList())
            await agent.DisposeAsync();
        try
        {
            // QUIT powers the connected clones off (on_poweroff = destroy); an xl destroy racing
            // that shutdown fails in the vif hotplug script, so let them go first.
            if (_agents.Count > 0)
                await _xl.WaitGoneAsync(_domains, TimeSpan.FromSeconds(15), CancellationToken.None);
        }
        catch (Exception e) when (e is XlCommandException or TimeoutException or EngineUnavailableException)
        {
        }
        foreach (var name in Enumerable.Reverse(_domains))
            await DestroyAsync(name);
        if (_wroteToDom0)
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

    private async Task UploadAsync(string path, string text, CancellationToken ct)
    {
        _wroteToDom0 = true;
        await _xl.WriteFileAsync(path, new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text)), ct);
    }

    /// <summary>Puts the image in dom0 unless it is there already, and finds the guests' kernel
    /// (the harness or an earlier job left an uncompressed vmlinux; else the host's vmlinuz goes up).</summary>
    private async Task<string> EnsureFilesAsync(XenGuestImage.Built image, string ramdisk, CancellationToken ct)
    {
        var kv = image.KernelVersion;
        var have = await _xl.RunAsync(["sh", "-c",
            "for f in \"$@\"; do [ -f \"$f\" ] && echo \"$f\"; done; true", "sh",
            ramdisk, $"{Root}/kernel/vmlinux-{kv}", $"{Root}/kernel/vmlinuz-{kv}"], TimeSpan.FromSeconds(60), ct);
        var present = have.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
        if (!present.Contains(ramdisk))
        {
            await using var s = File.OpenRead(image.Path);
            await _xl.WriteFileAsync(ramdisk, s, ct);
        }
        if (present.Contains($"{Root}/kernel/vmlinux-{kv}"))
            return $"{Root}/kernel/vmlinux-{kv}";
        if (!present.Contains($"{Root}/kernel/vmlinuz-{kv}"))
        {
            await using var k = File.OpenRead($"/boot/vmlinuz-{kv}");
            await _xl.WriteFileAsync($"{Root}/kernel/vmlinuz-{kv}", k, ct);
        }
        return $"{Root}/kernel/vmlinuz-{kv}";
    }

    /// <summary>Clone addresses: SFRUN_XEN_NET (first address/prefix, e.g. 10.0.2.100/24), else
    /// the bridge's own network from .100 up; SFRUN_XEN_GATEWAY; SFRUN_XEN_CONTROL names the
    /// address (and optionally :port) clones dial to reach this sfrun, else the bridge's address
    /// when sfrun runs in dom0.</summary>
    private async Task ReadNetworkAsync(string bridge, CancellationToken ct)
    {
        string? bridgeCidr = null;
        try
        {
            var o = await _xl.RunAsync(["ip", "-4", "-o", "addr", "show", "dev", bridge], TimeSpan.FromSeconds(60), ct);
            bridgeCidr = o.Split(' ', StringSplitOptions.RemoveEmptyEntries).SkipWhile(w => w != "inet").Skip(1).FirstOrDefault();
        }
        catch (XlCommandException)
        {
        }
        if (bridgeCidr is null)
            throw new EngineUnavailableException($"xen engine: {_xl.Shell.Where} has no bridge {bridge} with an IPv4 address (set SFRUN_XEN_BRIDGE)");
        var net = Environment.GetEnvironmentVariable("SFRUN_XEN_NET") is { Length: > 0 } n ? n : null;
        var (bridgeIp, prefix) = ParseCidr(bridgeCidr);
        if (net is not null)
            (bridgeIp, prefix) = ParseCidr(net);
        else
        {
            var b = bridgeIp.GetAddressBytes();
            b[3] = 100;
            bridgeIp = new IPAddress(b);
        }
        _net = (bridgeIp, prefix, Environment.GetEnvironmentVariable("SFRUN_XEN_GATEWAY") is { Length: > 0 } g ? g : null);
        var control = Environment.GetEnvironmentVariable("SFRUN_XEN_CONTROL");
        if (string.IsNullOrEmpty(control))
        {
            if (_xl.Shell.Remote)
                throw new EngineUnavailableException("xen engine: with XEN_HOST set, SFRUN_XEN_CONTROL must name this machine's address as the clones reach it");
            control = bridgeCidr.Split('/')[0];
        }
        _control = control;
    }

    private void StartListener()
    {
        var port = _control.Contains(':') && int.TryParse(_control[(_control.LastIndexOf(':') + 1)..], out var p) ? p : 0;
        _listener = new TcpListener(IPAddress.Any, port);
        _listener.Start();
        if (port == 0)
            _control = $"{_control}:{((IPEndPoint)_listener.LocalEndpoint).Port}";
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
            _ = AdmitAsync(client);
        }
    }

    /// <summary>A connection is a clone only with the token dom0 gave that clone; anything else is closed.</summary>
    private async Task AdmitAsync(TcpClient client)
    {
        try
        {
            client.NoDelay = true;
            using var first = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            first.CancelAfter(TimeSpan.FromSeconds(30));
            var token = await AgentConnection.ReadTokenAsync(client.GetStream(), first.Token);
            if (token is not null && _pending.TryRemove(token, out var waiting))
            {
                var agent = new AgentConnection(client, waiting.Name, IPAddress.Loopback);
                lock (_agents)
                    _agents.Add(agent);
                waiting.Connected.TrySetResult(agent);
                return;
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or InvalidDataException)
        {
        }
        client.Dispose();
    }

    private IPAddress AddressOf(int i)
    {
        var b = _net.Address.GetAddressBytes();
        var v = (uint)(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]) + (uint)i;
        return new IPAddress(new[] { (byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v });
    }

    private static (IPAddress, int) ParseCidr(string cidr)
    {
        var parts = cidr.Split('/');
        return parts.Length == 2 && IPAddress.TryParse(parts[0], out var ip) && int.TryParse(parts[1], out var prefix) && prefix is > 0 and <= 32
            ? (ip, prefix)
            : throw new EngineUnavailableException($"xen engine: '{cidr}' is not an IPv4 address/prefix");
    }

    private sealed class XenClone(CloneIdentity identity, AgentConnection agent) : IClone
    {
        public CloneIdentity Identity => identity;

        public async Task<IRankProcess> StartRankAsync(RankStart start, CancellationToken ct)
        {
            try
            {
                // One rank per clone: only self and TCP make sense between VMs, and UCX's probing
                // of the rest stalls MPI_Finalize here as in the qemu engine. The user's UCX_TLS wins.
                if (!start.Environment.ContainsKey("UCX_TLS"))
                    start = start with { Environment = new Dictionary<string, string>(start.Environment) { ["UCX_TLS"] = "self,tcp" } };
                return await agent.StartRankAsync(start, ct);
            }
            catch (TimeoutException)
            {
                throw new RankStartException($"rank {start.Rank}: {identity.HostName} did not start it within 2 minutes");
            }
        }
    }
}
