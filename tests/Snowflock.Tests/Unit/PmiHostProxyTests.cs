using System.Net.Sockets;
using Snowflock.Mpi.Pmi;
using Snowflock.Mpi.Pmi.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>
/// Host agents' PMI aggregation with its two real halves joined by socket pairs, as the agent
/// connection joins them across hosts: <see cref="PmiHostProxy"/> serving each host's ranks, and
/// the head's <see cref="Pmi1Server"/> with one host stream per host. The ranks are PMI-1 clients
/// speaking MPICH's sequence. Every wait is bounded by one token.
/// </summary>
[Trait("Area", "unit")]
public sealed class PmiHostProxyTests : IDisposable
{
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(10));
    private CancellationToken Ct => _timeout.Token;

    public void Dispose() => _timeout.Dispose();

    /// <summary>One host: its proxy, its stream to the head, and its ranks' clients.</summary>
    private sealed class Host : IAsyncDisposable
    {
        private readonly List<Socket> _sockets = [];
        private readonly List<Task> _pumps = [];
        public PmiHostProxy Proxy { get; }
        public List<PmiTestClient> Ranks { get; } = [];

        public Host(Pmi1Server server, IReadOnlyList<int> ranks, CancellationToken ct)
        {
            var head = server.ConnectHost(ranks);
            _sockets.Add(head);
            Proxy = new PmiHostProxy(ranks.Count, async (b, t) => await head.SendAsync(b, SocketFlags.None, t));
            _pumps.Add(PumpAsync(head, b => Proxy.FromHeadAsync(b, ct), ct));
            foreach (var r in ranks)
            {
                var up = server.ConnectRank(r);
                var (mine, theirs) = SocketPair.Open();
                _sockets.AddRange([up, mine]);
                var rank = new PmiHostProxy.Rank(r, 0, mine, async (b, t) => await up.SendAsync(b, SocketFlags.None, t));
                _pumps.Add(PumpAsync(up, b => rank.WriteAsync(b, ct), ct));
                _pumps.Add(Proxy.ServeAsync(rank, ct));
                Ranks.Add(PmiTestClient.Over(theirs));
            }
        }

        private static async Task PumpAsync(Socket from, Func<ReadOnlyMemory<byte>, Task> to, CancellationToken ct)
        {
            var buffer = new byte[1000]; // small: the head's batches arrive cut anywhere
            try
            {
                int n;
                while ((n = await from.ReceiveAsync(buffer, SocketFlags.None, ct)) > 0)
                    await to(buffer.AsMemory(0, n).ToArray());
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var r in Ranks)
                await r.DisposeAsync();
            foreach (var s in _sockets)
                s.Dispose();
            await Task.WhenAny(Task.WhenAll(_pumps), Task.Delay(2000));
        }
    }

    private static async Task<PmiBarrierCompleted> BarrierEventAsync(Pmi1Server server, CancellationToken ct)
    {
        while (true)
            if (await server.Events.ReadAsync(ct) is PmiBarrierCompleted b)
                return b;
    }

    [Fact]
    public async Task Eight_ranks_on_two_hosts_reach_the_head_with_one_barrier_message_per_host_and_get_every_card()
    {
        const int size = 8;
        await using var server = new Pmi1Server(PmiJobLayout.SingleBlock("kvs_agg_0", [0, 0, 0, 0, 1, 1, 1, 1]));
        await using var a = new Host(server, [0, 1, 2, 3], Ct);
        await using var b = new Host(server, [4, 5, 6, 7], Ct);
        var ranks = a.Ranks.Concat(b.Ranks).ToList();

        async Task RankAsync(int r)
        {
            var c = ranks[r];
            Assert.StartsWith("cmd=response_to_init", await c.RequestAsync("cmd=init pmi_version=1 pmi_subversion=1", Ct));
            Assert.StartsWith("cmd=maxes", await c.RequestAsync("cmd=get_maxes", Ct));
            Assert.Equal("cmd=my_kvsname kvsname=kvs_agg_0", await c.RequestAsync("cmd=get_my_kvsname", Ct));
            Assert.Equal("cmd=get_result rc=0 msg=success value=(vector,(0,2,4))",
                await c.RequestAsync("cmd=get kvsname=kvs_agg_0 key=PMI_process_mapping", Ct));
            Assert.Equal("cmd=put_result rc=0 msg=success", await c.RequestAsync($"cmd=put kvsname=kvs_agg_0 key=card-{r} value=tcp://h{r} port {r}", Ct));
            Assert.Equal("cmd=barrier_out", await c.RequestAsync("cmd=barrier_in", Ct));
            for (var other = 0; other < size; other++)
                Assert.Equal($"cmd=get_result rc=0 msg=success value=tcp://h{other} port {other}",
                    await c.RequestAsync($"cmd=get kvsname=kvs_agg_0 key=card-{other}", Ct));
            Assert.Equal("cmd=barrier_out", await c.RequestAsync("cmd=barrier_in", Ct));
            Assert.Equal("cmd=finalize_ack", await c.RequestAsync("cmd=finalize", Ct));
        }

        await Task.WhenAll(a.Proxy.Greeted, b.Proxy.Greeted).WaitAsync(Ct);
        var barrier = BarrierEventAsync(server, Ct);
        await Task.WhenAll(Enumerable.Range(0, size).Select(RankAsync));
        var first = await barrier;
        Assert.Equal(1, first.Epoch);
        Assert.Equal(2, first.Arrivals);
        // Before the first barrier each rank's init is its only request of its own at the head.
        Assert.Equal(size + 2, first.Requests);
        var second = await BarrierEventAsync(server, Ct);
        Assert.Equal((2, 2), (second.Epoch, second.Arrivals));
        Assert.Equal(2, second.Requests); // the 64 gets were all answered on their hosts
    }

    [Fact]
    public async Task A_put_beyond_the_ranks_budget_fails_the_job_naming_that_rank_though_its_agent_answered()
    {
        await using var server = new Pmi1Server(PmiJobLayout.SingleBlock("kvs_agg_1", [0, 0, 1]) with { MaxKvsBytesPerRank = 100 });
        await using var a = new Host(server, [0, 1], Ct);
        await using var b = new Host(server, [2], Ct);
        var big = new string('x', 200);
        await a.Proxy.Greeted.WaitAsync(Ct);
        var r1 = a.Ranks[1];
        Assert.StartsWith("cmd=response_to_init", await r1.RequestAsync("cmd=init pmi_version=1 pmi_subversion=1", Ct));
        Assert.Equal("cmd=my_kvsname kvsname=kvs_agg_1", await r1.RequestAsync("cmd=get_my_kvsname", Ct));
        Assert.Equal("cmd=put_result rc=0 msg=success", await r1.RequestAsync($"cmd=put kvsname=kvs_agg_1 key=k value={big}", Ct));
        await r1.SendLineAsync("cmd=barrier_in", Ct);
        await a.Ranks[0].SendLineAsync("cmd=barrier_in", Ct);
        PmiEvent e;
        while ((e = await server.Events.ReadAsync(Ct)) is not PmiProtocolViolation)
        {
        }
        var v = (PmiProtocolViolation)e;
        Assert.Equal(1, v.Rank);
        Assert.Contains("put refused", v.Message);
    }

    [Fact]
    public async Task A_host_stream_cannot_speak_for_a_rank_of_another_host()
    {
        await using var server = new Pmi1Server(PmiJobLayout.SingleBlock("kvs_agg_2", [0, 1]));
        using var head = server.ConnectHost([0]);
        await head.SendAsync("cmd=sfa_put rank=1 key=k value=stolen\n"u8.ToArray(), SocketFlags.None, Ct);
        PmiEvent e;
        while ((e = await server.Events.ReadAsync(Ct)) is not PmiProtocolViolation)
        {
        }
        Assert.Equal(0, e.Rank);
        Assert.Contains("not on its host", ((PmiProtocolViolation)e).Message);
    }
}
