using System.Net.Sockets;
using Snowflock.Engine.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed class UnixSocketDialerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sftest-dialer-" + Guid.NewGuid().ToString("N"));

    public UnixSocketDialerTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Waits_for_a_socket_that_appears_later()
    {
        var path = Path.Combine(_dir, "late.sock");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var connecting = UnixSocketDialer.ConnectAsync(path, TimeSpan.FromSeconds(30), cts.Token);
        await Task.Delay(100, cts.Token);
        Assert.False(connecting.IsCompleted);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        // Bound but not yet listening, as QEMU is for a moment: still refused, still retried.
        await Task.Delay(100, cts.Token);
        Assert.False(connecting.IsCompleted);
        listener.Listen();
        using var client = await connecting;
        using var peer = await listener.AcceptAsync(cts.Token);
        Assert.True(client.Connected);
    }

    [Fact]
    public async Task Gives_up_after_the_bound_naming_the_path()
    {
        var path = Path.Combine(_dir, "never.sock");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var e = await Assert.ThrowsAsync<TimeoutException>(() => UnixSocketDialer.ConnectAsync(path, TimeSpan.FromMilliseconds(200), cts.Token));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public async Task Ends_with_the_token_before_the_bound()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => UnixSocketDialer.ConnectAsync(Path.Combine(_dir, "never.sock"), TimeSpan.FromSeconds(30), cts.Token));
    }
}
