using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using NLog;

namespace Snowflock.Engine.Guest.Internal;

/// <summary>
/// The host side of one guest agent's control channel (native/agent/protocol.h) over any duplex
/// stream: a virtio-serial port's unix socket (qemu) or a TCP connection (xen). One reader owns
/// the incoming frames and hands them to the rank or PMI stream they name; writers send whole
/// frames under one gate, so frames never interleave.
/// </summary>
internal sealed partial class AgentChannel : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Guest");

    private readonly Stream _stream;
    private readonly string _name;
    private readonly IPAddress _pmiHost;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<ushort, GuestRankProcess> _ranks = new();
    private readonly ConcurrentDictionary<ushort, PmiRelayStream> _relays = new();
    private readonly Task _reader;
    /// <summary>The port in the PMI_PORT the job gave its ranks: the only one a relay may be for
    /// (0 until a rank started). A guest names the port it wants relayed; it must not pick any
    /// other port on sfrun's loopback.</summary>
    private volatile int _pmiPort;
    private bool _saidRelayRefused;
    private TaskCompletionSource<string> _hello = NewWaiter<string>();
    private TaskCompletionSource<string> _identityAck = NewWaiter<string>();
    private readonly TaskCompletionSource<string> _jobError = NewWaiter<string>();
    private volatile bool _awaitingJob;

    /// <param name="stream">The connected channel; owned (disposed) by this object.</param>
    /// <param name="name">The clone's name, for messages ("vm3").</param>
    /// <param name="pmiHost">Where sfrun's PMI server listens, as seen from sfrun itself.</param>
    public AgentChannel(Stream stream, string name, IPAddress pmiHost)
    {
        _stream = stream;
        _name = name;
        _pmiHost = pmiHost;
        _reader = Task.Run(ReadLoopAsync);
    }

    public string Name => _name;

    /// <summary>Where its ranks run, for reports: "in vm3" for a VM clone, "on h2" for a host.</summary>
    public string Place { get; init; } = "";

    /// <summary>Relays one guest may have open at once: a few per rank is plenty (MPICH opens
    /// one); beyond that a guest is flooding, and each relay costs sfrun a socket.</summary>
    public const int MaxRelays = 64;

    /// <summary>Completes when the channel ends (the guest stopped or the connection broke).</summary>
    public Task Closed => _reader;

    private static TaskCompletionSource<T> NewWaiter<T>() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Sends PING until the agent answers HELLO: on a virtio port, what is written while
    /// the guest has not opened its end is lost, so one ping may not be enough.</summary>
    public async Task<string> PingAsync(TimeSpan every, CancellationToken ct)
    {
        var hello = _hello.Task;
        while (true)
        {
            await SendAsync(AgentFrameType.Ping, 0, ReadOnlyMemory<byte>.Empty, ct).ConfigureAwait(false);
            var done = await Task.WhenAny(hello, _reader, Task.Delay(every, ct)).ConfigureAwait(false);
            if (done == hello)
                return await hello.ConfigureAwait(false);
            if (done == _reader)
                throw new CloneFailedException($"{_name}: the guest agent's channel closed before it said hello");
            ct.ThrowIfCancellationRequested();
        }
    }

    /// <summary>Gives the clone fresh entropy, then its identity; returns the identity as the guest applied it.</summary>
    public async Task<string> SetIdentityAsync(IEnumerable<KeyValuePair<string, string>> identity, CancellationToken ct)
    {
        var entropy = new byte[64];
        System.Security.Cryptography.RandomNumberGenerator.Fill(entropy);
        await SendAsync(AgentFrameType.Entropy, 0, entropy, ct).ConfigureAwait(false);
        var ack = _identityAck.Task;
        await SendAsync(AgentFrameType.Identity, 0, AgentFrame.IdentityPayload(identity), ct).ConfigureAwait(false);
        var done = await Task.WhenAny(ack, _reader, Task.Delay(Timeout.Infinite, ct)).ConfigureAwait(false);
        if (done != ack)
        {
            ct.ThrowIfCancellationRequested();
            throw new CloneFailedException($"{_name}: the guest agent's channel closed before it took its identity");
        }
        return await ack.ConfigureAwait(false);
    }

    /// <summary>Hands a host agent its share of the job (JOB) and waits until it says it is ready
    /// (IDENTITY_ACK) or why it cannot be (ERROR on channel 0, thrown as a <see cref="CloneFailedException"/>).</summary>
    public async Task<string> SendJobAsync(ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        var ack = _identityAck.Task;
        _awaitingJob = true;
        await SendAsync(AgentFrameType.Job, 0, payload, ct).ConfigureAwait(false);
        var done = await Task.WhenAny(ack, _jobError.Task, _reader, Task.Delay(Timeout.Infinite, ct)).ConfigureAwait(false);
        _awaitingJob = false;
        if (done == ack)
            return await ack.ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
        if (done == _jobError.Task)
            throw new CloneFailedException($"{_name}: {await _jobError.Task.ConfigureAwait(false)}");
        throw new CloneFailedException($"{_name}: the agent's connection closed before it was ready");
    }

    /// <summary>Joins a rank's PMI connection (<paramref name="socket"/>, the server's socket pair
    /// end for that rank, now owned here) to stream <c>slot + 1</c> of a host agent, which joins
    /// the rank's own PMI_FD there. Call before the rank's START, so no byte of it is missed.</summary>
    public void JoinPmi(ushort slot, Socket socket) => JoinPmiStream((ushort)(slot + 1), socket);

    /// <summary>Joins a host agent's aggregated PMI stream (the server's end for all of that
    /// host's ranks) to stream 0, which no rank's stream uses.</summary>
    public void JoinHostPmi(Socket socket) => JoinPmiStream(0, socket);

    private void JoinPmiStream(ushort stream, Socket socket)
    {
        var relay = new PmiRelayStream(this, stream, null, _stop.Token, socket);
        if (!_relays.TryAdd(stream, relay))
        {
            relay.Dispose();
            throw new InvalidOperationException($"PMI stream {stream} of {_name} is in use");
        }
        relay.Start(() => _relays.TryRemove(stream, out _));
    }

    /// <summary>Starts one rank in the guest, in slot <paramref name="slot"/> (unique per channel).</summary>
    public async Task<IRankProcess> StartRankAsync(ushort slot, RankStart start, CancellationToken ct)
    {
        if (start.Environment.TryGetValue("PMI_PORT", out var pmiPort) && pmiPort.LastIndexOf(':') is var colon and >= 0
            && int.TryParse(pmiPort.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
            && port is > 0 and <= 65535)
            _pmiPort = port;
        var rank = new GuestRankProcess(this, slot, start.Rank, Place.Length > 0 ? Place : $"in {_name}");
        if (!_ranks.TryAdd(slot, rank))
            throw new InvalidOperationException($"slot {slot} of {_name} is in use");
        var payload = AgentFrame.StartPayload(start.Executable, start.WorkingDirectory, start.Arguments, start.Environment);
        await SendAsync(AgentFrameType.Start, slot, payload, ct).ConfigureAwait(false);
        var done = await Task.WhenAny(rank.Started, _reader, Task.Delay(Timeout.Infinite, ct)).ConfigureAwait(false);
        if (done == rank.Started)
        {
            await rank.Started.ConfigureAwait(false); // throws RankStartException on the agent's ERROR
            return rank;
        }
        _ranks.TryRemove(slot, out _);
        ct.ThrowIfCancellationRequested();
        throw new RankStartException($"cannot start rank {start.Rank} in {_name}: the guest stopped");
    }

    /// <summary>Asks the agent to kill every rank and power the guest off.</summary>
    public Task QuitAsync(CancellationToken ct) => SendAsync(AgentFrameType.Quit, 0, ReadOnlyMemory<byte>.Empty, ct);

    public async Task SendAsync(AgentFrameType type, ushort channel, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        var frame = AgentFrame.Encode(type, channel, payload.Span);
        await _writeGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await _stream.WriteAsync(frame, ct).ConfigureAwait(false);
            await _stream.FlushAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
            Log.ForDebugEvent().Message("{Vm}: cannot send {Type}: {Error}", _name, type, e.Message).Property("EventName", "AgentSendFailed").Log();
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private async Task ReadLoopAsync()
    {
        var reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 2 * AgentFrame.MaxPayload));
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(_stop.Token).ConfigureAwait(false);
                var buffer = result.Buffer;
                while (AgentFrame.TryRead(ref buffer, out var header, out var payload))
                    await DispatchAsync(header, payload).ConfigureAwait(false);
                reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                    break;
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException or AgentProtocolException)
        {
            if (e is AgentProtocolException)
                Log.ForWarnEvent().Message("{Vm}: control channel broken: {Error}", _name, e.Message).Property("EventName", "AgentProtocolError").Log();
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
            // A guest that is gone takes its ranks with it: as if each had been killed.
            _jobError.TrySetResult("the agent's connection closed");
            foreach (var rank in _ranks.Values)
                rank.GuestGone();
            foreach (var relay in _relays.Values)
                relay.Dispose();
            _hello.TrySetCanceled();
            _identityAck.TrySetCanceled();
        }
    }

    private async ValueTask DispatchAsync(AgentFrameHeader header, ReadOnlySequence<byte> payload)
    {
        switch (header.Type)
        {
            case AgentFrameType.Hello:
                Interlocked.Exchange(ref _hello, NewWaiter<string>()).TrySetResult(Encoding.UTF8.GetString(payload));
                break;
            case AgentFrameType.IdentityAck:
                Interlocked.Exchange(ref _identityAck, NewWaiter<string>()).TrySetResult(Encoding.UTF8.GetString(payload));
                break;
            case AgentFrameType.Started when _ranks.TryGetValue(header.Channel, out var rank):
                rank.OnStarted((int)AgentFrame.U32(payload, 0));
                break;
            case AgentFrameType.Error when _ranks.TryRemove(header.Channel, out var rank):
                rank.OnStartFailed(Encoding.UTF8.GetString(payload));
                break;
            case AgentFrameType.Error when header.Channel == 0 && _awaitingJob:
                _jobError.TrySetResult(Encoding.UTF8.GetString(payload));
                break;
            case AgentFrameType.Error:
                Log.ForWarnEvent().Message("{Vm}: agent: {Error}", _name, Encoding.UTF8.GetString(payload)).Property("EventName", "AgentError").Log();
                break;
            case AgentFrameType.Stdout when _ranks.TryGetValue(header.Channel, out var rank):
                await rank.OnOutputAsync(rank.Stdout, payload).ConfigureAwait(false);
                break;
            case AgentFrameType.Stderr when _ranks.TryGetValue(header.Channel, out var rank):
                await rank.OnOutputAsync(rank.Stderr, payload).ConfigureAwait(false);
                break;
            case AgentFrameType.Exit when _ranks.TryRemove(header.Channel, out var rank):
                var code = (int)AgentFrame.U32(payload, 0);
                var signal = (int)AgentFrame.U32(payload, 1);
                rank.OnExit(new RankExit(code, signal == 0 ? null : signal));
                break;
            case AgentFrameType.PmiOpen:
                await OpenRelayAsync(header.Channel, payload).ConfigureAwait(false);
                break;
            case AgentFrameType.PmiData when _relays.TryGetValue(header.Channel, out var relay):
                if (payload.Length == 0)
                {
                    _relays.TryRemove(header.Channel, out _);
                    relay.GuestClosed();
                }
                else
                {
                    // Waits while the relay's queue is full: the guest is held back, not buffered without bound.
                    await relay.FromGuestAsync(payload.ToArray()).ConfigureAwait(false);
                }
                break;
            default:
                Log.ForTraceEvent().Message("{Vm}: frame {Type} on channel {Channel} ignored", _name, header.Type, header.Channel)
                    .Property("EventName", "AgentFrameIgnored").Log();
                break;
        }
    }

    /// <summary>Joins a new relay stream to the job's PMI server. What a guest may ask for is
    /// narrow: the job's own PMI port, on a stream id not in use, within <see cref="MaxRelays"/>.
    /// Anything else is this clone's protocol error: the stream is refused (closed at once) and
    /// the channel goes on — one bad frame must not take down the clone's ranks.</summary>
    private async ValueTask OpenRelayAsync(ushort stream, ReadOnlySequence<byte> payload)
    {
        string? refusal = null;
        long port = payload.Length == 4 ? AgentFrame.U32(payload, 0) : -1;
        if (port < 0)
            refusal = $"PMI_OPEN payload of {payload.Length} bytes, not 4";
        else if (_pmiPort == 0)
            refusal = $"PMI_OPEN for port {port} before any rank was started";
        else if (port != _pmiPort)
            refusal = $"PMI_OPEN for port {port}, not the job's PMI port {_pmiPort}";
        else if (stream == 0 || _relays.ContainsKey(stream))
            refusal = $"PMI_OPEN on stream {stream}, which is not free";
        else if (_relays.Count >= MaxRelays)
            refusal = $"PMI_OPEN beyond {MaxRelays} open relays";
        if (refusal is not null)
        {
            if (!_saidRelayRefused)
            {
                _saidRelayRefused = true;
                Log.ForWarnEvent().Message("{Vm}: relay refused, guest protocol error: {Error}", _name, refusal)
                    .Property("EventName", "AgentRelayRefused").Log();
            }
            if (stream != 0 && !_relays.ContainsKey(stream))
                await SendAsync(AgentFrameType.PmiData, stream, ReadOnlyMemory<byte>.Empty, _stop.Token).ConfigureAwait(false);
            return;
        }
        var relay = new PmiRelayStream(this, stream, new IPEndPoint(_pmiHost, (int)port), _stop.Token);
        if (!_relays.TryAdd(stream, relay))
        {
            relay.Dispose();
            return;
        }
        relay.Start(() => _relays.TryRemove(stream, out _));
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _stream.DisposeAsync().ConfigureAwait(false);
        try
        {
            await _reader.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Log.ForDebugEvent().Message("{Vm}: reader ended with {Error}", _name, e.Message).Property("EventName", "AgentReaderEnded").Log();
        }
        foreach (var relay in _relays.Values)
            relay.Dispose();
        _stop.Dispose();
    }
}
