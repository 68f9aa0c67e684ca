using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Snowflock.Engine.Engines.Process.Internal;
using Snowflock.Mpi.Pmi;
using Snowflock.Tests.Integration.Support;
using Snowflock.Tests.Unit;

namespace Snowflock.Tests.Integration;

/// <summary>
/// The --isolate job network (<see cref="JobNetwork"/>) under a rank's PMI connection, with the
/// interleaving that hung jobs made deterministic: a clone resolves the gateway's MAC while its
/// peers plug in, then another clone plugs in (a port with a lower MAC) or leaves (the port whose
/// MAC the bridge had) before the rank's next PMI request. A Linux bridge left to pick its own MAC
/// changes it then, and the clone's frames to the MAC it resolved are dropped (or flooded away):
/// the request never reaches the PMI server and the rank waits for a reply (a get in MPI_Init, a
/// finalize_ack) until its ARP entry goes stale, tens of seconds later. Veths are made with ip
/// inside namespaces of the test's own, so nothing appears on the host. Needs root.
/// </summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed partial class JobNetworkTests
{
    /// <summary>Far below the tens of seconds an ARP entry takes to go stale, far above a reply's microseconds.</summary>
    private static readonly TimeSpan ReplyWithin = TimeSpan.FromSeconds(5);

    [GeneratedRegex(@"(?:link/ether|lladdr) ([0-9a-f:]{17})")]
    private static partial Regex EtherAddress();

    private static async Task<string> BridgeMacAsync(string jobNs) =>
        EtherAddress().Match(await NetNamespace.IpAsync(jobNs, $"link show {JobNetwork.Bridge}\n")).Groups[1].Value;

    [Theory]
    [InlineData("a clone with a lower MAC plugs in")]
    [InlineData("the clone whose port had the bridge's MAC leaves")]
    public async Task A_rank_gets_its_PMI_reply_whatever_clones_plug_in_or_leave(string change)
    {
        using var net = JobNetwork.Create();
        var jobNs = NetNamespace.PathOf(net.Fd);
        await using var server = new Pmi1Server(PmiJobLayout.SingleBlock("kvs_bridge_test", [0]));
        net.Run(() => server.Start(JobNetwork.Gateway));
        using var clone = NetNamespace.Create();

        // The rank's clone (port 02:..:30) and an idle peer (02:..:20) on the bridge: a bridge that
        // picks its own MAC now has the peer's, and the rank's ARP resolves the gateway to that.
        await NetNamespace.IpAsync(jobNs,
            $"link add sft0 address 02:00:00:00:00:30 type veth peer name eth0 netns {clone.Path}\n" +
            $"link set sft0 master {JobNetwork.Bridge} up\n" +
            "link add sft1 address 02:00:00:00:00:20 type veth peer name sft1p\n" +
            $"link set sft1 master {JobNetwork.Bridge} up\n");
        await NetNamespace.IpAsync(clone.Path, $"link set lo up\naddr add {JobNetwork.AddressOf(0)}/16 dev eth0\nlink set eth0 up\n");

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var socket = clone.Run(() => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        await using var rank = await PmiTestClient.ConnectAsync(socket, new IPEndPoint(JobNetwork.Gateway, server.LocalEndPoint.Port), timeout.Token);
        await rank.SendLineAsync("cmd=initack pmiid=0", timeout.Token);
        for (var i = 0; i < 4; i++)
            await rank.ExpectLineAsync(timeout.Token);
        var resolved = EtherAddress().Match(await NetNamespace.IpAsync(clone.Path, $"neigh show {JobNetwork.Gateway} dev eth0\n")).Groups[1].Value;
        var before = await BridgeMacAsync(jobNs);

        await NetNamespace.IpAsync(jobNs, change.Contains("plugs in")
            ? $"link add sft2 address 02:00:00:00:00:10 type veth peer name sft2p\nlink set sft2 master {JobNetwork.Bridge} up\n"
            : "link del sft1\n");
        var after = await BridgeMacAsync(jobNs);

        using var reply = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        reply.CancelAfter(ReplyWithin);
        string line;
        try
        {
            line = await rank.RequestAsync("cmd=get_maxes", reply.Token);
        }
        catch (OperationCanceledException)
        {
            throw new Xunit.Sdk.XunitException($"after {change}, the rank's request got no reply within {ReplyWithin}: its ARP entry "
                + $"for the gateway says {resolved}, and the bridge's MAC went from {before} to {after}");
        }
        Assert.StartsWith("cmd=maxes ", line);
        Assert.Equal(before, after);
        Assert.Equal(string.Join(':', JobNetwork.BridgeMac.ToArray().Select(b => b.ToString("x2"))), after);
    }
}
