using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Snowflock.Engine.Engines.Qemu.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>
/// How the client routes what comes back, against a fake QMP server (named so: it plays QEMU's
/// recorded lines, because the real QEMU cannot be made to answer out of order or to die with a
/// command in flight on demand). The real QEMU is driven in Integration/QmpClientTests.
/// </summary>
[Trait("Area", "unit")]
public sealed class QmpClientRoutingTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sftest-qmpfake-" + Guid.NewGuid().ToString("N"));
    private readonly Socket _listener;
    private readonly CancellationTokenSource _cts = new(TimeSpan.FromSeconds(30));

    public QmpClientRoutingTests()
    {
        Directory.CreateDirectory(_dir);
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        _listener.Listen();
    }

    private string SocketPath => Path.Combine(_dir, "fake.qmp");

    public void Dispose()
    {
        _listener.Dispose();
        _cts.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>The fake QEMU: sends the recorded greeting, answers qmp_capabilities, then hands
    /// the connection to the test.</summary>
    private async Task<(Socket Peer, StreamReader Reader)> AcceptAsync()
    {
        var peer = await _listener.AcceptAsync(_cts.Token);
        var reader = new StreamReader(new NetworkStream(peer, ownsSocket: false), Encoding.UTF8);
        await SendAsync(peer, Encoding.UTF8.GetString(QmpTranscript.FromQemu[0]));
        var capabilities = await ReadCommandAsync(reader);
        Assert.Equal("qmp_capabilities", capabilities.Command);
        await SendAsync(peer, $"{{\"return\": {{}}, \"id\": {capabilities.Id}}}");
        return (peer, reader);
    }

    private async Task<(string Command, long Id)> ReadCommandAsync(StreamReader reader)
    {
        var line = await reader.ReadLineAsync(_cts.Token) ?? throw new InvalidOperationException("client closed");
        using var json = JsonDocument.Parse(line);
        return (json.RootElement.GetProperty("execute").GetString()!, json.RootElement.GetProperty("id").GetInt64());
    }

    private async Task SendAsync(Socket peer, string line) =>
        await peer.SendAsync(Encoding.UTF8.GetBytes(line + "\n"), SocketFlags.None, _cts.Token);

    [Fact]
    public async Task Answers_reach_their_command_by_id_and_events_go_to_the_channel()
    {
        var server = AcceptAsync();
        await using var qmp = await QmpClient.ConnectAsync(SocketPath, _cts.Token);
        var (peer, reader) = await server;
        using var _ = peer;

        var first = qmp.QueryStatusAsync(_cts.Token);
        var second = qmp.QueryMigrateAsync(_cts.Token);
        var a = await ReadCommandAsync(reader);
        var b = await ReadCommandAsync(reader);
        var (status, migrate) = a.Command == "query-status" ? (a, b) : (b, a);
        // Answered in the opposite order, with an event in between.
        await SendAsync(peer, $"{{\"return\": {{\"status\": \"completed\"}}, \"id\": {migrate.Id}}}");
        await SendAsync(peer, "{\"timestamp\": {\"seconds\": 1795643012, \"microseconds\": 869382}, \"event\": \"STOP\"}");
        await SendAsync(peer, $"{{\"return\": {{\"status\": \"paused\", \"singlestep\": false, \"running\": false}}, \"id\": {status.Id}}}");

        Assert.Equal(("paused", false), await first);
        Assert.Equal(("completed", (string?)null), await second);
        Assert.Equal("STOP", (await qmp.Events.ReadAsync(_cts.Token)).Name);
    }

    [Fact]
    public async Task Commands_in_flight_fail_when_the_socket_closes()
    {
        var server = AcceptAsync();
        await using var qmp = await QmpClient.ConnectAsync(SocketPath, _cts.Token);
        var (peer, reader) = await server;

        var stop = qmp.StopAsync(_cts.Token);
        Assert.Equal("stop", (await ReadCommandAsync(reader)).Command);
        peer.Dispose();

        var e = await Assert.ThrowsAsync<QmpConnectionClosedException>(() => stop);
        Assert.Contains("stop", e.Message);
        await Assert.ThrowsAsync<QmpConnectionClosedException>(() => qmp.ContAsync(_cts.Token));
        await Assert.ThrowsAsync<QmpConnectionClosedException>(() => qmp.WaitForEventAsync("SHUTDOWN", _cts.Token));
    }

    [Fact]
    public async Task A_peer_that_is_not_QMP_is_refused()
    {
        var server = Task.Run(async () =>
        {
            using var peer = await _listener.AcceptAsync(_cts.Token);
            await SendAsync(peer, "cmd=initack");
        });
        await Assert.ThrowsAsync<QmpProtocolException>(() => QmpClient.ConnectAsync(SocketPath, _cts.Token));
        await server;
    }

    [Fact]
    public async Task Garbage_after_the_greeting_fails_the_command_waiting_for_it()
    {
        var server = AcceptAsync();
        await using var qmp = await QmpClient.ConnectAsync(SocketPath, _cts.Token);
        var (peer, reader) = await server;
        using var _ = peer;

        var cont = qmp.ContAsync(_cts.Token);
        await ReadCommandAsync(reader);
        await SendAsync(peer, "{\"return\": {}, \"id\": 2");
        await Assert.ThrowsAsync<QmpProtocolException>(() => cont);
    }
}
