using System.Globalization;
using System.Net;

namespace Snowflock.Engine.Engines.Xen.Internal;

/// <summary>
/// How a job's domUs are wired: their vifs on a dom0 bridge (SFRUN_XEN_BRIDGE, default xenbr0),
/// addresses from SFRUN_XEN_NET (first address/prefix, e.g. 10.0.2.100/24) or else from .100 of
/// the bridge's own network, an optional default route (SFRUN_XEN_GATEWAY), and the address the
/// clones dial to reach this sfrun (SFRUN_XEN_CONTROL, ADDRESS[:PORT]; when sfrun runs in dom0,
/// the bridge's own address).
/// </summary>
internal sealed class XenNetwork
{
    private readonly IPAddress _first;
    private string _controlHost;

    private XenNetwork(string bridge, IPAddress first, int prefix, string? gateway, string controlHost, int? controlPort)
    {
        Bridge = bridge;
        _first = first;
        Prefix = prefix;
        Gateway = gateway;
        _controlHost = controlHost;
        ControlPort = controlPort;
    }

    public string Bridge { get; }
    public int Prefix { get; }
    public string? Gateway { get; }

    /// <summary>The port asked for in SFRUN_XEN_CONTROL, if any.</summary>
    public int? ControlPort { get; private set; }

    /// <summary>ADDRESS:PORT the clones connect to.</summary>
    public string Control => $"{_controlHost}:{ControlPort}";

    /// <summary>Where sfrun's control listener binds: the control address itself when this host
    /// has it (the bridge's address in dom0, or the head node's), else loopback — the address is
    /// then translated to this host (QEMU's user network maps 10.0.2.2 to its loopback). Never
    /// every interface: only the job's domUs have any business connecting.</summary>
    public IPAddress ListenAddress() => ListenAddressFor(_controlHost,
        System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces().SelectMany(n => n.GetIPProperties().UnicastAddresses).Select(u => u.Address));

    internal static IPAddress ListenAddressFor(string controlHost, IEnumerable<IPAddress> localAddresses)
    {
        IPAddress[] candidates;
        try
        {
            candidates = IPAddress.TryParse(controlHost, out var ip) ? [ip] : System.Net.Dns.GetHostAddresses(controlHost);
        }
        catch (System.Net.Sockets.SocketException)
        {
            return IPAddress.Loopback;
        }
        var local = localAddresses.ToHashSet();
        return candidates.FirstOrDefault(local.Contains) ?? IPAddress.Loopback;
    }

    /// <summary>Records the port sfrun's listener got.</summary>
    public void BindPort(int port) => ControlPort = port;

    /// <summary>The address of domU <paramref name="i"/> (from 0).</summary>
    public IPAddress AddressOf(int i)
    {
        var b = _first.GetAddressBytes();
        var v = (uint)(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]) + (uint)i;
        return new IPAddress(new[] { (byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v });
    }

    private static string BridgeName => Environment.GetEnvironmentVariable("SFRUN_XEN_BRIDGE") is { Length: > 0 } b ? b : "xenbr0";

    /// <summary>The bridge domUs' vifs join, checked to exist in dom0.</summary>
    public static async Task<string> BridgeAsync(XlClient xl, CancellationToken ct)
    {
        try
        {
            await xl.RunAsync(["ip", "-o", "link", "show", "dev", BridgeName], TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
            return BridgeName;
        }
        catch (XlCommandException)
        {
            throw new EngineUnavailableException($"xen engine: {xl.Shell.Where} has no bridge {BridgeName} (set SFRUN_XEN_BRIDGE)");
        }
    }

    public static async Task<XenNetwork> ReadAsync(XlClient xl, CancellationToken ct)
    {
        var bridge = BridgeName;
        string? bridgeCidr = null;
        try
        {
            var o = await xl.RunAsync(["ip", "-4", "-o", "addr", "show", "dev", bridge], TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
            bridgeCidr = o.Split(' ', StringSplitOptions.RemoveEmptyEntries).SkipWhile(w => w != "inet").Skip(1).FirstOrDefault();
        }
        catch (XlCommandException)
        {
        }
        if (bridgeCidr is null)
            throw new EngineUnavailableException($"xen engine: {xl.Shell.Where} has no bridge {bridge} with an IPv4 address (set SFRUN_XEN_BRIDGE)");
        var (first, prefix) = ParseCidr(Environment.GetEnvironmentVariable("SFRUN_XEN_NET") is { Length: > 0 } n ? n : bridgeCidr);
        if (Environment.GetEnvironmentVariable("SFRUN_XEN_NET") is not { Length: > 0 })
        {
            var bytes = first.GetAddressBytes();
            bytes[3] = 100;
            first = new IPAddress(bytes);
        }
        var gateway = Environment.GetEnvironmentVariable("SFRUN_XEN_GATEWAY") is { Length: > 0 } g ? g : null;

        var control = Environment.GetEnvironmentVariable("SFRUN_XEN_CONTROL");
        if (string.IsNullOrEmpty(control))
        {
            if (xl.Shell.Remote)
                throw new EngineUnavailableException("xen engine: with --xen-host (XEN_HOST), SFRUN_XEN_CONTROL must name this machine's address as the clones reach it");
            control = bridgeCidr.Split('/')[0];
        }
        int? port = null;
        var colon = control.LastIndexOf(':');
        if (colon > 0)
        {
            if (!int.TryParse(control[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var p) || p is < 1 or > 65535)
                throw new EngineUnavailableException($"xen engine: SFRUN_XEN_CONTROL '{control}' is not ADDRESS[:PORT]");
            port = p;
            control = control[..colon];
        }
        if (!IPAddress.TryParse(control, out var controlIp) || controlIp.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            throw new EngineUnavailableException($"xen engine: SFRUN_XEN_CONTROL '{control}' is not an IPv4 address (the guest agent dials a.b.c.d:port)");
        return new XenNetwork(bridge, first, prefix, gateway, control, port);
    }

    private static (IPAddress, int) ParseCidr(string cidr)
    {
        var parts = cidr.Split('/');
        return parts.Length == 2 && IPAddress.TryParse(parts[0], out var ip) && int.TryParse(parts[1], out var prefix) && prefix is > 0 and <= 32
            ? (ip, prefix)
            : throw new EngineUnavailableException($"xen engine: '{cidr}' is not an IPv4 address/prefix");
    }
}
