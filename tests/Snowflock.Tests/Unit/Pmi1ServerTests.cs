using System.Net;
using System.Text;
using Snowflock.Mpi.Pmi;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>The PMI-1 server over real loopback TCP, driven by <see cref="PmiTestClient"/> as
/// MPICH's ranks drive hydra. Every wait is bounded by one 10 s token: a bug fails, never hangs.</summary>
[Trait("Area", "unit")]
public sealed class Pmi1ServerTests : IDisposable
{
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(10));
    private CancellationToken Ct => _timeout.Token;

    public void Dispose() => _timeout.Dispose();

    private static Pmi1Server Start(PmiJobLayout layout)
    {
        var server = new Pmi1Server(layout);
        server.Start(IPAddress.Loopback);
        return server;
    }

    private static Pmi1Server Start(int size, string kvs = "kvs_test_0") =>
        Start(PmiJobLayout.SingleBlock(kvs, new int[size]));

    private async Task<T> NextEventAsync<T>(Pmi1Server server) where T : PmiEvent =>
        Assert.IsType<T>(await server.Events.ReadAsync(Ct));

    private static List<PmiEvent> EventsSoFar(Pmi1Server server)
    {
        var list = new List<PmiEvent>();
        while (server.Events.TryRead(out var e))
            list.Add(e);
        return list;
    }

    private Task<(PmiTestClient Client, IReadOnlyList<string> Handshake)> RankAsync(Pmi1Server server, int rank) =>
        PmiTestClient.ConnectAsRankAsync(server.LocalEndPoint, rank, Ct);

    // ---- handshake ----

    [Fact]
    public async Task Initack_is_answered_with_size_rank_and_debug()
    {
        await using var server = Start(3);
        var (client, handshake) = await RankAsync(server, 2);
        await using var _ = client;
        Assert.Equal(["cmd=initack", "cmd=set size=3", "cmd=set rank=2", "cmd=set debug=0"], handshake);
    }

    [Fact]
    public async Task Server_listens_on_the_loopback_address_it_was_given()
    {
        await using var server = Start(1);
        Assert.Equal(IPAddress.Loopback, server.LocalEndPoint.Address);
        Assert.NotEqual(0, server.LocalEndPoint.Port);
    }

    // ---- the real MPICH conversation ----

    [Fact]
    public async Task Rank_zero_of_the_MPICH_transcript_gets_hydras_exact_replies()
    {
        await using var server = Start(PmiJobLayout.SingleBlock(MpichTranscript.KvsName, [0, 0]));
        var (rank0, _) = await RankAsync(server, 0);
        var (rank1, _) = await RankAsync(server, 1);
        await using var r0 = rank0;
        await using var r1 = rank1;

        foreach (var (request, reply) in MpichTranscript.Exchanges)
        {
            await r0.SendLineAsync(request, Ct);
            if (request == "cmd=barrier_in")
                Assert.Equal("cmd=barrier_out", await r1.RequestAsync("cmd=barrier_in", Ct));
            Assert.NotNull(reply);
            Assert.Equal(reply, await r0.ExpectLineAsync(Ct));
        }

        Assert.Equal(new PmiRankInitialized(0), await server.Events.ReadAsync(Ct));
        for (var epoch = 1; epoch <= 4; epoch++)
            Assert.Equal(new PmiBarrierCompleted(epoch), await server.Events.ReadAsync(Ct));
        Assert.Equal(new PmiRankFinalized(0), await server.Events.ReadAsync(Ct));
        Assert.Empty(EventsSoFar(server));
    }

    [Fact]
    public async Task Two_ranks_go_through_MPI_Init_and_exchange_business_cards()
    {
        const string kvs = "kvs_42_0";
        await using var server = Start(PmiJobLayout.SingleBlock(kvs, [0, 1]));
        var (rank0, _) = await RankAsync(server, 0);
        var (rank1, _) = await RankAsync(server, 1);
        await using var r0 = rank0;
        await using var r1 = rank1;

        foreach (var (r, c) in new[] { (0, r0), (1, r1) })
        {
            Assert.Equal("cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0",
                await c.RequestAsync("cmd=init pmi_version=1 pmi_subversion=1", Ct));
            Assert.Equal(new PmiRankInitialized(r), await server.Events.ReadAsync(Ct));
            Assert.Equal("cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024", await c.RequestAsync("cmd=get_maxes", Ct));
            Assert.Equal("cmd=appnum appnum=0", await c.RequestAsync("cmd=get_appnum", Ct));
            Assert.Equal($"cmd=my_kvsname kvsname={kvs}", await c.RequestAsync("cmd=get_my_kvsname", Ct));
            Assert.Equal("cmd=universe_size size=2", await c.RequestAsync("cmd=get_universe_size", Ct));
            Assert.Equal("cmd=get_result rc=0 msg=success value=(vector,(0,2,1))",
                await c.RequestAsync($"cmd=get kvsname={kvs} key=PMI_process_mapping", Ct));
            Assert.Equal("cmd=put_result rc=0 msg=success",
                await c.RequestAsync($"cmd=put kvsname={kvs} key=card-{r} value=host{r} port {1000 + r}   ", Ct));
        }

        // Rank 0 enters the barrier first: nothing is released until rank 1 arrives. Its next
        // request is answered in order, so had barrier_out been sent it would come first.
        await r0.SendLineAsync("cmd=barrier_in", Ct);
        Assert.Equal("cmd=appnum appnum=0", await r0.RequestAsync("cmd=get_appnum", Ct));
        Assert.DoesNotContain(EventsSoFar(server), e => e is PmiBarrierCompleted);

        await r1.SendLineAsync("cmd=barrier_in", Ct);
        Assert.Equal("cmd=barrier_out", await r1.ExpectLineAsync(Ct));
        Assert.Equal("cmd=barrier_out", await r0.ExpectLineAsync(Ct));
        Assert.Equal(new PmiBarrierCompleted(1), await server.Events.ReadAsync(Ct));

        // After the barrier every rank sees every other rank's put (padding trimmed, inner spaces kept).
        Assert.Equal("cmd=get_result rc=0 msg=success value=host1 port 1001",
            await r0.RequestAsync($"cmd=get kvsname={kvs} key=card-1", Ct));
        Assert.Equal("cmd=get_result rc=0 msg=success value=host0 port 1000",
            await r1.RequestAsync($"cmd=get kvsname={kvs} key=card-0", Ct));

        // A second barrier is a new epoch.
        await r1.SendLineAsync("cmd=barrier_in", Ct);
        await r0.SendLineAsync("cmd=barrier_in", Ct);
        Assert.Equal("cmd=barrier_out", await r0.ExpectLineAsync(Ct));
        Assert.Equal("cmd=barrier_out", await r1.ExpectLineAsync(Ct));
        Assert.Equal(new PmiBarrierCompleted(2), await server.Events.ReadAsync(Ct));

        foreach (var (r, c) in new[] { (0, r0), (1, r1) })
        {
            Assert.Equal("cmd=finalize_ack", await c.RequestAsync("cmd=finalize", Ct));
            Assert.Equal(new PmiRankFinalized(r), await server.Events.ReadAsync(Ct));
        }
        Assert.Empty(EventsSoFar(server));
    }

    [Fact]
    public async Task Missing_key_is_answered_with_rc_minus_one()
    {
        await using var server = Start(1);
        var (client, _) = await RankAsync(server, 0);
        await using var c = client;
        Assert.Equal("cmd=get_result rc=-1 msg=key_nope_not_found value=unknown",
            await c.RequestAsync("cmd=get kvsname=kvs_test_0 key=nope", Ct));
        // A key of another job's space is not found either.
        Assert.Equal("cmd=get_result rc=-1 msg=key_PMI_process_mapping_not_found value=unknown",
            await c.RequestAsync("cmd=get kvsname=kvs_other key=PMI_process_mapping", Ct));
    }

    [Fact]
    public async Task Put_into_another_kvs_is_refused_without_ending_the_job()
    {
        await using var server = Start(1);
        var (client, _) = await RankAsync(server, 0);
        await using var c = client;
        Assert.Equal("cmd=put_result rc=-1 msg=unknown_kvsname", await c.RequestAsync("cmd=put kvsname=kvs_other key=a value=1", Ct));
        Assert.Equal("cmd=get_result rc=-1 msg=key_a_not_found value=unknown", await c.RequestAsync("cmd=get kvsname=kvs_test_0 key=a", Ct));
        Assert.Empty(EventsSoFar(server));
    }

    [Fact]
    public async Task A_later_put_replaces_the_value()
    {
        await using var server = Start(1);
        var (client, _) = await RankAsync(server, 0);
        await using var c = client;
        await c.RequestAsync("cmd=put kvsname=kvs_test_0 key=a value=1", Ct);
        await c.RequestAsync("cmd=put kvsname=kvs_test_0 key=a value=2", Ct);
        Assert.Equal("cmd=get_result rc=0 msg=success value=2", await c.RequestAsync("cmd=get kvsname=kvs_test_0 key=a", Ct));
    }

    [Fact]
    public async Task Each_rank_gets_the_appnum_of_its_MPMD_block()
    {
        await using var server = Start(new PmiJobLayout("kvs_mpmd", [0, 0, 0], [0, 1, 1]));
        var (a, _) = await RankAsync(server, 0);
        var (b, _) = await RankAsync(server, 2);
        await using var r0 = a;
        await using var r2 = b;
        Assert.Equal("cmd=appnum appnum=0", await r0.RequestAsync("cmd=get_appnum", Ct));
        Assert.Equal("cmd=appnum appnum=1", await r2.RequestAsync("cmd=get_appnum", Ct));
    }

    [Theory]
    [InlineData("publish_name", "cmd=publish_result rc=-1 msg=not_supported_by_sfrun")]
    [InlineData("unpublish_name", "cmd=unpublish_result rc=-1 msg=not_supported_by_sfrun")]
    [InlineData("lookup_name", "cmd=lookup_result rc=-1 msg=not_supported_by_sfrun")]
    public async Task Name_publishing_is_refused_politely(string command, string reply)
    {
        await using var server = Start(1);
        var (client, _) = await RankAsync(server, 0);
        await using var c = client;
        Assert.Equal(reply, await c.RequestAsync($"cmd={command} service=s port=p", Ct));
        Assert.Empty(EventsSoFar(server));
    }

    // ---- life-cycle events ----

    [Fact]
    public async Task Finalize_is_acknowledged_and_reported()
    {
        await using var server = Start(2);
        var (client, _) = await RankAsync(server, 1);
        await using var c = client;
        Assert.Equal("cmd=finalize_ack", await c.RequestAsync("cmd=finalize", Ct));
        Assert.Equal(new PmiRankFinalized(1), await server.Events.ReadAsync(Ct));
    }

    [Fact]
    public async Task Abort_is_reported_with_its_exit_code()
    {
        await using var server = Start(2);
        var (client, _) = await RankAsync(server, 1);
        await using var c = client;
        await c.SendLineAsync("cmd=abort exitcode=7", Ct);
        var abort = await NextEventAsync<PmiAbortRequested>(server);
        Assert.Equal(1, abort.Rank);
        Assert.Equal(7, abort.ExitCode);
        Assert.Null(abort.Message);
    }

    [Fact]
    public async Task Abort_carries_the_error_message_when_given()
    {
        await using var server = Start(1);
        var (client, _) = await RankAsync(server, 0);
        await using var c = client;
        await c.SendLineAsync("cmd=abort exitcode=3 error_msg=disk_full", Ct);
        Assert.Equal(new PmiAbortRequested(0, 3, "disk_full"), await server.Events.ReadAsync(Ct));
    }

    [Fact]
    public async Task Abort_as_MPICH_4_1_and_later_send_it_keeps_its_exit_code_and_message()
    {
        // PMIU_msg_set_query_abort adds exitcode and message; PMIU_cmd_output_v1 writes values unescaped.
        await using var server = Start(2);
        var (client, _) = await RankAsync(server, 1);
        await using var c = client;
        await c.SendLineAsync("cmd=abort exitcode=7 message=application called MPI_Abort(MPI_COMM_WORLD, 7) - process 1", Ct);
        var abort = await NextEventAsync<PmiAbortRequested>(server);
        Assert.Equal((1, 7), (abort.Rank, abort.ExitCode));
        Assert.Equal("application called MPI_Abort(MPI_COMM_WORLD, 7) - process 1", abort.Message);
    }

    public static TheoryData<string> BadLinesFromARank() => new()
    {
        "hello world",
        "cmd=bogus",
        "mcmd=spawn",
        "cmd=get key=a key=b",
        "cmd=put kvsname=kvs_test_0 key=a value=\u0001",
        "cmd=put kvsname=kvs_test_0 key=a",
        "cmd=put kvsname=kvs_test_0 key=" + new string('k', 65) + " value=v",
        "cmd=put kvsname=kvs_test_0 key=a value=" + new string('v', 1025),
        "cmd=initack pmiid=0",
        "x" + new string('y', 5000),
    };

    [Theory]
    [MemberData(nameof(BadLinesFromARank))]
    public async Task A_bad_line_from_an_identified_rank_is_a_protocol_violation_of_that_rank(string line)
    {
        await using var server = Start(2);
        var (client, _) = await RankAsync(server, 1);
        await using var c = client;
        await c.SendLineAsync(line, Ct);
        var violation = await NextEventAsync<PmiProtocolViolation>(server);
        Assert.Equal(1, violation.Rank);
        Assert.False(string.IsNullOrWhiteSpace(violation.Message));
        Assert.Empty(await c.ReadUntilClosedAsync(Ct));
    }

    [Fact]
    public async Task An_over_long_line_without_newline_from_a_rank_is_a_protocol_violation()
    {
        await using var server = Start(1);
        var (client, _) = await RankAsync(server, 0);
        await using var c = client;
        await c.SendAsync(Encoding.ASCII.GetBytes("cmd=put kvsname=kvs_test_0 key=a value=" + new string('v', 2 * 4096)), Ct);
        var violation = await NextEventAsync<PmiProtocolViolation>(server);
        Assert.Equal(0, violation.Rank);
        Assert.Contains("4096", violation.Message);
    }

    [Fact]
    public async Task Entering_the_same_barrier_twice_is_a_protocol_violation()
    {
        await using var server = Start(2);
        var (client, _) = await RankAsync(server, 0);
        await using var c = client;
        await c.SendLineAsync("cmd=barrier_in", Ct);
        await c.SendLineAsync("cmd=barrier_in", Ct);
        var violation = await NextEventAsync<PmiProtocolViolation>(server);
        Assert.Equal(0, violation.Rank);
        Assert.Contains("barrier", violation.Message);
    }

    [Fact]
    public async Task Filling_the_key_value_space_is_a_protocol_violation()
    {
        // PMI_process_mapping takes one of the two slots.
        await using var server = Start(PmiJobLayout.SingleBlock("kvs_small", [0]) with { MaxKeys = 2 });
        var (client, _) = await RankAsync(server, 0);
        await using var c = client;
        Assert.Equal("cmd=put_result rc=0 msg=success", await c.RequestAsync("cmd=put kvsname=kvs_small key=a value=1", Ct));
        Assert.Equal("cmd=put_result rc=0 msg=success", await c.RequestAsync("cmd=put kvsname=kvs_small key=a value=2", Ct));
        await c.SendLineAsync("cmd=put kvsname=kvs_small key=b value=1", Ct);
        var violation = await NextEventAsync<PmiProtocolViolation>(server);
        Assert.Contains("full", violation.Message);
    }

    // ---- strangers ----


    public static TheoryData<byte[]> StrangerOpenings() => new()
    {
        Encoding.ASCII.GetBytes("hello world\n"),
        Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Encoding.ASCII.GetBytes("cmd=init pmi_version=1 pmi_subversion=1\n"),
        Encoding.ASCII.GetBytes("cmd=get kvsname=kvs_test_0 key=PMI_process_mapping\n"),
        Encoding.ASCII.GetBytes("cmd=abort exitcode=9\n"),
        Encoding.ASCII.GetBytes("cmd=initack\n"),
        Encoding.ASCII.GetBytes("cmd=initack pmiid=2\n"),
        Encoding.ASCII.GetBytes("cmd=initack pmiid=-1\n"),
        Encoding.ASCII.GetBytes("cmd=initack pmiid=one\n"),
        Encoding.ASCII.GetBytes("cmd=initack pmiid=99999999999\n"),
        Encoding.ASCII.GetBytes("cmd=initack pmiid=0\n"),
        new byte[] { 0xff, 0xfe, 0x00, (byte)'\n' },
        Encoding.ASCII.GetBytes(new string('z', 5000)),
    };

    [Theory]
    [MemberData(nameof(StrangerOpenings))]
    public async Task A_stranger_is_disconnected_without_failing_the_job_or_disturbing_a_rank(byte[] opening)
    {
        await using var server = Start(2);
        var (legit, handshake) = await RankAsync(server, 0);
        await using var rank0 = legit;
        Assert.Equal("cmd=set rank=0", handshake[2]);

        await using (var stranger = await PmiTestClient.ConnectAsync(server.LocalEndPoint, Ct))
        {
            await stranger.SendAsync(opening, Ct);
            Assert.Empty(await stranger.ReadUntilClosedAsync(Ct));
        }

        // The rank goes on as if nothing happened; had the stranger produced an event, it would
        // have been written before its connection was closed, so before this one.
        Assert.Equal("cmd=appnum appnum=0", await rank0.RequestAsync("cmd=get_appnum", Ct));
        Assert.Equal("cmd=finalize_ack", await rank0.RequestAsync("cmd=finalize", Ct));
        Assert.Equal(new PmiRankFinalized(0), await server.Events.ReadAsync(Ct));
        Assert.Empty(EventsSoFar(server));
    }

    [Fact]
    public async Task A_stranger_cannot_take_a_rank_number_before_the_rank_connects()
    {
        // An unidentified peer is rejected at its first bad line; nothing it sent after that may
        // be acted on, or it could claim rank 0 and lock the real rank 0 out.
        await using var server = Start(2);
        await using (var stranger = await PmiTestClient.ConnectAsync(server.LocalEndPoint, Ct))
        {
            await stranger.SendAsync(Encoding.ASCII.GetBytes("hello\ncmd=initack pmiid=0\n"), Ct);
            Assert.Empty(await stranger.ReadUntilClosedAsync(Ct));
        }
        var (legit, handshake) = await RankAsync(server, 0);
        await using var rank0 = legit;
        Assert.Equal(["cmd=initack", "cmd=set size=2", "cmd=set rank=0", "cmd=set debug=0"], handshake);
    }

    [Fact]
    public async Task Nothing_a_rank_sends_after_its_protocol_violation_is_acted_on()
    {
        await using var server = Start(2);
        var (a, _) = await RankAsync(server, 0);
        var (b, _) = await RankAsync(server, 1);
        await using var r0 = a;
        await using var r1 = b;
        await r0.SendAsync(Encoding.ASCII.GetBytes("cmd=bogus\ncmd=abort exitcode=5\n"), Ct);
        Assert.Empty(await r0.ReadUntilClosedAsync(Ct));

        // Rank 1's request is queued after everything rank 0 sent, so its event comes after any of rank 0's.
        Assert.Equal("cmd=finalize_ack", await r1.RequestAsync("cmd=finalize", Ct));
        Assert.Equal(0, (await NextEventAsync<PmiProtocolViolation>(server)).Rank);
        Assert.Equal(new PmiRankFinalized(1), await server.Events.ReadAsync(Ct));
    }

    // ---- teardown ----

    [Fact]
    public async Task DisposeAsync_completes_with_clients_still_connected()
    {
        var server = Start(3);
        var (rank0, _) = await RankAsync(server, 0);
        var (rank1, _) = await RankAsync(server, 1);
        var idle = await PmiTestClient.ConnectAsync(server.LocalEndPoint, Ct);
        await using var r0 = rank0;
        await using var r1 = rank1;
        await using var i = idle;
        await r0.RequestAsync("cmd=init pmi_version=1 pmi_subversion=1", Ct);
        await r1.SendLineAsync("cmd=barrier_in", Ct); // left waiting in a barrier

        await server.DisposeAsync().AsTask().WaitAsync(Ct);

        // The event stream ends: what was published is still readable, then the reader completes.
        var events = new List<PmiEvent>();
        await foreach (var e in server.Events.ReadAllAsync(Ct))
            events.Add(e);
        Assert.Equal([new PmiRankInitialized(0)], events);
        Assert.Empty(await r0.ReadUntilClosedAsync(Ct));
        Assert.Empty(await r1.ReadUntilClosedAsync(Ct));
        Assert.Empty(await i.ReadUntilClosedAsync(Ct));
    }

    [Fact]
    public async Task DisposeAsync_of_a_server_that_never_started_completes()
    {
        var server = new Pmi1Server(PmiJobLayout.SingleBlock("k", [0]));
        await server.DisposeAsync().AsTask().WaitAsync(Ct);
        Assert.Throws<InvalidOperationException>(() => server.LocalEndPoint);
    }
}
