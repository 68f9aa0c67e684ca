using System.Net.Sockets;

namespace Snowflock.Engine.Internal;

/// <summary>Connects to a unix socket that a process sfrun has just started will create (QEMU's QMP
/// and control sockets): the socket may not exist yet, or exist with nobody listening on it yet.</summary>
internal static class UnixSocketDialer
{
    /// <summary>How long a process just started may take to listen on its socket. QEMU creates and
    /// listens on its sockets at start-up, before any guest work, so this is generous.</summary>
    public static readonly TimeSpan StartupWithin = TimeSpan.FromSeconds(60);

    /// <summary>A socket connected to <paramref name="path"/>, retrying every failed connect with a
    /// pause doubling from 2 to 50 ms. Ends with <paramref name="ct"/>
    /// (<see cref="OperationCanceledException"/>), or after <paramref name="within"/> with a
    /// <see cref="TimeoutException"/> naming the path and the last error.</summary>
    public static async Task<Socket> ConnectAsync(string path, TimeSpan within, CancellationToken ct)
    {
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(within);
        var pause = 2;
        SocketException? last = null;
        try
        {
            while (true)
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), bound.Token).ConfigureAwait(false);
                    return socket;
                }
                catch (SocketException e)
                {
                    // Not there yet (ENOENT), or there but not yet listened on (ECONNREFUSED).
                    socket.Dispose();
                    last = e;
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
                await Task.Delay(pause, bound.Token).ConfigureAwait(false);
                pause = Math.Min(pause * 2, 50);
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"{path}: nobody listening after {within.TotalSeconds:0.###} s"
                + (last is null ? "" : $" (last error: {last.Message})"));
        }
    }
}
