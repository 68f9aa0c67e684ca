using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace Snowflock.Engine.Guest.Internal;

/// <summary>
/// One PMI connection a rank made inside a guest, joined to sfrun's PMI server by a loopback
/// connection from sfrun itself. The server's peer check sees sfrun's own process holding the
/// socket (<see cref="GuestRankProcess.HostPid"/>), so strangers on the host still cannot claim a
/// rank. Guest-to-server bytes queue until the connection is up; order is kept both ways.
/// </summary>
/// <param name="server">Where to connect; null when <paramref name="connected"/> is given.</param>
/// <param name="connected">An already connected socket to join instead (a host agent's rank's
/// end of the PMI server's socket pair), owned by the relay from now on.</param>
internal sealed class PmiRelayStream(AgentChannel channel, ushort id, IPEndPoint? server, CancellationToken stop, Socket? connected = null) : IDisposable
{
    private readonly Socket _socket = connected ?? new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    /// <summary>Frames from the guest not yet sent on (each up to 64 KiB): when full, the channel's
    /// reader waits, so a guest that floods a relay is slowed instead of filling sfrun's memory.</summary>
    private const int QueuedFrames = 16;

    private readonly Channel<byte[]?> _toServer = Channel.CreateBounded<byte[]?>(new BoundedChannelOptions(QueuedFrames)
        { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

    public void Start(Action onEnded)
    {
        _ = Task.Run(async () =>
        {
            try
            {
                if (server is not null)
                    await _socket.ConnectAsync(server, stop).ConfigureAwait(false);
                var up = PumpToServerAsync();
                await PumpFromServerAsync().ConfigureAwait(false);
                await up.ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException or IOException)
            {
            }
            finally
            {
                onEnded();
                await channel.SendAsync(AgentFrameType.PmiData, id, ReadOnlyMemory<byte>.Empty, CancellationToken.None).ConfigureAwait(false);
                Dispose();
            }
        }, CancellationToken.None);
    }

    public async ValueTask FromGuestAsync(byte[] data)
    {
        try
        {
            await _toServer.Writer.WriteAsync(data, stop).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ChannelClosedException or OperationCanceledException)
        {
            // The relay ended (its server side closed): what the guest still sends goes nowhere.
        }
    }

    public void GuestClosed()
    {
        // The end must get through even when the queue is full: complete instead of queueing.
        if (!_toServer.Writer.TryWrite(null))
            _toServer.Writer.TryComplete();
    }

    private async Task PumpToServerAsync()
    {
        try
        {
            await foreach (var data in _toServer.Reader.ReadAllAsync(stop).ConfigureAwait(false))
            {
                if (data is null)
                {
                    _socket.Shutdown(SocketShutdown.Send);
                    return;
                }
                await _socket.SendAsync(data, SocketFlags.None, stop).ConfigureAwait(false);
            }
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private async Task PumpFromServerAsync()
    {
        var buffer = new byte[AgentFrame.MaxPayload];
        while (true)
        {
            var n = await _socket.ReceiveAsync(buffer, SocketFlags.None, stop).ConfigureAwait(false);
            if (n == 0)
                return;
            await channel.SendAsync(AgentFrameType.PmiData, id, buffer.AsMemory(0, n), stop).ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        _toServer.Writer.TryComplete();
        _socket.Dispose();
    }
}
