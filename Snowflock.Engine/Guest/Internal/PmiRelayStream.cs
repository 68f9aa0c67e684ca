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
internal sealed class PmiRelayStream(AgentChannel channel, ushort id, IPEndPoint server, CancellationToken stop) : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly Channel<byte[]?> _toServer = Channel.CreateUnbounded<byte[]?>(new UnboundedChannelOptions { SingleReader = true });

    public void Start(Action onEnded)
    {
        _ = Task.Run(async () =>
        {
            try
            {
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

    public void FromGuest(byte[] data) => _toServer.Writer.TryWrite(data);

    public void GuestClosed() => _toServer.Writer.TryWrite(null);

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
