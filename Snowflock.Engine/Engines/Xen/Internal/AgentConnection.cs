using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using NLog;

namespace Snowflock.Engine.Engines.Xen.Internal;

/// <summary>
/// sfrun's end of one clone's control channel (a TCP connection the clone's agent made): one
/// reader task owns the incoming frames and hands them to the rank slot or PMI relay stream they
/// name; outgoing frames go through one queue, so frames never interleave.
/// </summary>
internal sealed class AgentConnection : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Xen");

    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private readonly string _clone;
    private readonly IPAddress _pmiServer;
    private readonly Channel<byte[]> _outgoing = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<ushort, AgentRank> _ranks = new();
    private readonly ConcurrentDictionary<ushort, Channel<byte[]>> _relays = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader, _writer;
    private int _nextSlot;

    /// <param name="pmiServer">Where sfrun's PMI server listens; the port is the one each rank dialled.</param>
    public AgentConnection(TcpClient client, string clone, IPAddress pmiServer)
    {
        _client = client;
        _stream = client.GetStream();
        _clone = clone;
        _pmiServer = pmiServer;
        _writer = Task.Run(WriteLoopAsync);
        _reader = Task.Run(ReadLoopAsync);
    }

    public void Send(byte type, ushort channel, byte[] payload) => _outgoing.Writer.TryWrite(AgentFrames.Encode(type, channel, payload));

    public async Task<IRankProcess> StartRankAsync(RankStart start, CancellationToken ct)
    {
        var slot = (ushort)Interlocked.Increment(ref _nextSlot);
        var rank = new AgentRank(this, slot, start.Rank, _clone);
        _ranks[slot] = rank;
        var env = start.Environment.Select(e => e);
        Send(AgentFrames.Start, slot, AgentFrames.StartPayload(start.Executable, start.WorkingDirectory, start.Arguments, env));
        if (_reader.IsCompleted)
            rank.Lost();
        await rank.Started.WaitAsync(TimeSpan.FromMinutes(2), ct);
        return rank;
    }

    private async Task WriteLoopAsync()
    {
        try
        {
            await foreach (var frame in _outgoing.Reader.ReadAllAsync(_stop.Token))
                await _stream.WriteAsync(frame, _stop.Token);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // The channel is gone; the reader reports it.
        }
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (await AgentFrames.ReadAsync(_stream, _stop.Token) is { } f)
                Dispatch(f);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException or InvalidDataException)
        {
            if (!_stop.IsCancellationRequested)
                Log.ForDebugEvent().Message("clone {Clone}: control channel lost: {Error}", _clone, e.Message)
                    .Property("EventName", "XenAgentLost").Log();
        }
        foreach (var rank in _ranks.Values)
            rank.Lost();
        foreach (var relay in _relays.Values)
            relay.Writer.TryComplete();
    }

    private void Dispatch(AgentFrame f)
    {
        switch (f.Type)
        {
            case AgentFrames.PmiOpen when f.Payload.Length >= 4:
                // Registered before connecting: the rank's first bytes may come in the next frame.
                var toServer = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
                _relays[f.Channel] = toServer;
                _ = RelayAsync(f.Channel, (int)BinaryPrimitives.ReadUInt32LittleEndian(f.Payload), toServer.Reader);
                break;
            case AgentFrames.PmiData:
                if (_relays.TryGetValue(f.Channel, out var relay))
                {
                    if (f.Payload.Length == 0)
                        relay.Writer.TryComplete();
                    else
                        relay.Writer.TryWrite(f.Payload);
                }
                break;
            case AgentFrames.Hello or AgentFrames.IdentityAck:
                break;
            default:
                if (_ranks.TryGetValue(f.Channel, out var rank))
                    rank.OnFrame(f);
                else if (f.Type == AgentFrames.Error)
                    Log.ForDebugEvent().Message("clone {Clone}: agent error: {Message}", _clone, System.Text.Encoding.UTF8.GetString(f.Payload))
                        .Property("EventName", "XenAgentError").Log();
                break;
        }
    }

    /// <summary>A rank dialled PMI in its clone: join that stream to the real PMI server here.</summary>
    private async Task RelayAsync(ushort stream, int port, ChannelReader<byte[]> toServer)
    {
        using var client = new TcpClient { NoDelay = true };
        try
        {
            await client.ConnectAsync(new IPEndPoint(_pmiServer, port), _stop.Token);
            var s = client.GetStream();
            var up = Task.Run(async () =>
            {
                await foreach (var data in toServer.ReadAllAsync(_stop.Token))
                    await s.WriteAsync(data, _stop.Token);
                client.Client.Shutdown(SocketShutdown.Send);
            });
            var buffer = new byte[16384];
            int n;
            while ((n = await s.ReadAsync(buffer, _stop.Token)) > 0)
                Send(AgentFrames.PmiData, stream, buffer[..n]);
            await up.WaitAsync(TimeSpan.FromSeconds(5), _stop.Token);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or TimeoutException)
        {
        }
        Send(AgentFrames.PmiData, stream, []);
        _relays.TryRemove(stream, out _);
    }

    /// <summary>Asks the agent to power the clone off, then closes the channel.</summary>
    public async ValueTask DisposeAsync()
    {
        Send(AgentFrames.Quit, 0, []);
        _outgoing.Writer.TryComplete();
        await Task.WhenAny(_writer, Task.Delay(TimeSpan.FromSeconds(2)));
        _stop.Cancel();
        _client.Dispose();
        await Task.WhenAll(_reader, _writer).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        _stop.Dispose();
    }

    /// <summary>Reads the clone's first frame: HELLO with its token.</summary>
    public static async Task<string?> ReadTokenAsync(NetworkStream stream, CancellationToken ct)
    {
        var f = await AgentFrames.ReadAsync(stream, ct);
        if (f is not { Type: AgentFrames.Hello } hello)
            return null;
        var text = System.Text.Encoding.UTF8.GetString(hello.Payload);
        return text.Split('\n').FirstOrDefault(l => l.StartsWith("token=", StringComparison.Ordinal))?["token=".Length..];
    }

}
