using System.Buffers;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text.Json;
using System.Threading.Channels;
using NLog;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Engines.Qemu.Internal;

/// <summary>
/// A QMP client on QEMU's unix socket: waits for the socket to appear, reads the greeting,
/// leaves capabilities negotiation mode, then runs commands, each with its own id, and hands
/// events to one reader through <see cref="Events"/>. One loop reads the socket and owns the
/// routing of answers; when the socket closes, every command still waiting fails with
/// <see cref="QmpConnectionClosedException"/>. JSON is written with Utf8JsonWriter and read with
/// JsonDocument, so nothing depends on reflection (sfrun is NativeAOT).
/// </summary>
internal sealed class QmpClient : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Qemu");
    private const int MaxLine = 16 << 20;

    private readonly Socket _socket;
    private readonly string _path;
    private readonly ConcurrentDictionary<long, Pending> _pending = new();
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Channel<QmpEvent> _events = Channel.CreateUnbounded<QmpEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _stop = new();
    private Task _readLoop = Task.CompletedTask;
    private long _nextId;
    private volatile Exception? _closed;

    private sealed record Pending(string Command, TaskCompletionSource<JsonElement> Answer);

    private QmpClient(Socket socket, string path, QmpGreeting greeting)
    {
        _socket = socket;
        _path = path;
        Greeting = greeting;
    }

    public QmpGreeting Greeting { get; }

    /// <summary>QEMU's events in the order it sent them; completes when the socket closes.</summary>
    public ChannelReader<QmpEvent> Events => _events.Reader;

    /// <summary>Connects to <paramref name="socketPath"/>, retrying while QEMU has not created or not
    /// yet listens on it (until <paramref name="ct"/> ends, or a <see cref="TimeoutException"/> after
    /// <see cref="UnixSocketDialer.StartupWithin"/>), and negotiates capabilities.</summary>
    public static async Task<QmpClient> ConnectAsync(string socketPath, CancellationToken ct)
    {
        var socket = await UnixSocketDialer.ConnectAsync(socketPath, UnixSocketDialer.StartupWithin, ct);
        var reader = new LineReader(socket);
        try
        {
            var first = await reader.ReadLineAsync(ct)
                ?? throw new QmpConnectionClosedException($"QMP {socketPath}: closed before the greeting");
            if (QmpMessage.Parse(first.Span) is not QmpGreeting greeting)
                throw new QmpProtocolException($"QMP {socketPath}: the first line is not a greeting");
            var client = new QmpClient(socket, socketPath, greeting);
            client._readLoop = Task.Run(() => client.ReadLoopAsync(reader));
            await client.ExecuteAsync("qmp_capabilities", null, ct);
            Log.ForDebugEvent().Message("QMP {Path}: QEMU {Version} ready", socketPath, greeting.Version)
                .Property("EventName", "QmpConnected").Log();
            return client;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Runs <paramref name="command"/> with the arguments <paramref name="arguments"/> writes
    /// into the "arguments" object (null: none) and returns QEMU's "return" value.</summary>
    public async Task<JsonElement> ExecuteAsync(string command, Action<Utf8JsonWriter>? arguments, CancellationToken ct)
    {
        if (_closed is { } closed)
            throw new QmpConnectionClosedException($"QMP {_path}: {command}: {closed.Message}", closed);
        var id = Interlocked.Increment(ref _nextId);
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("execute", command);
            if (arguments is not null)
            {
                json.WriteStartObject("arguments");
                arguments(json);
                json.WriteEndObject();
            }
            json.WriteNumber("id", id);
            json.WriteEndObject();
        }
        buffer.Write("\n"u8);

        var pending = new Pending(command, new TaskCompletionSource<JsonElement>(TaskCreationOptions.RunContinuationsAsynchronously));
        _pending[id] = pending;
        // The read loop may have failed everything between the check above and the registration.
        if (_closed is { } closedNow && _pending.TryRemove(id, out _))
            throw new QmpConnectionClosedException($"QMP {_path}: {command}: {closedNow.Message}", closedNow);
        try
        {
            await _writeLock.WaitAsync(ct);
            try
            {
                await _socket.SendAsync(buffer.WrittenMemory, SocketFlags.None, ct);
            }
            finally
            {
                _writeLock.Release();
            }
            return await pending.Answer.Task.WaitAsync(ct);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            throw new QmpConnectionClosedException($"QMP {_path}: {command}: cannot send ({e.Message})", e);
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    /// <summary>Reads <see cref="Events"/> up to the first event named <paramref name="name"/> and returns
    /// it; the events before it are dropped (the caller is the channel's one reader). A
    /// <see cref="QmpConnectionClosedException"/> if the socket closes first.</summary>
    public async Task<QmpEvent> WaitForEventAsync(string name, CancellationToken ct)
    {
        await foreach (var e in Events.ReadAllAsync(ct))
            if (e.Name == name)
                return e;
        throw new QmpConnectionClosedException($"QMP {_path}: closed while waiting for the {name} event");
    }

    public Task StopAsync(CancellationToken ct) => ExecuteAsync("stop", null, ct);

    public Task ContAsync(CancellationToken ct) => ExecuteAsync("cont", null, ct);

    /// <summary>Asks QEMU to exit. It answers and then closes the socket; a close that overtakes the
    /// answer counts as done too.</summary>
    public async Task QuitAsync(CancellationToken ct)
    {
        try
        {
            await ExecuteAsync("quit", null, ct);
        }
        catch (QmpConnectionClosedException)
        {
            // QEMU is gone, which is what quit asks for.
        }
    }

    /// <summary>Turns migration capabilities on, e.g. x-ignore-shared (RAM in a shared memory file
    /// is not copied into the snapshot) and events (MIGRATION status events).</summary>
    public Task MigrateSetCapabilitiesAsync(IEnumerable<string> enabled, CancellationToken ct) =>
        ExecuteAsync("migrate-set-capabilities", json =>
        {
            json.WriteStartArray("capabilities");
            foreach (var name in enabled)
            {
                json.WriteStartObject();
                json.WriteString("capability", name);
                json.WriteBoolean("state", true);
                json.WriteEndObject();
            }
            json.WriteEndArray();
        }, ct);

    /// <summary>Starts an outgoing migration, e.g. to "exec:cat > FILE"; it runs on after the return.</summary>
    public Task MigrateAsync(string uri, CancellationToken ct) => ExecuteAsync("migrate", json => json.WriteString("uri", uri), ct);

    /// <summary>Starts the incoming side of a QEMU started with -incoming defer.</summary>
    public Task MigrateIncomingAsync(string uri, CancellationToken ct) =>
        ExecuteAsync("migrate-incoming", json => json.WriteString("uri", uri), ct);

    /// <summary>The migration's status (none, setup, active, completed, failed, cancelled, ...) and,
    /// when it failed, why. An incoming migration that has not started reports no status: "none".</summary>
    public async Task<(string Status, string? Error)> QueryMigrateAsync(CancellationToken ct)
    {
        var r = await ExecuteAsync("query-migrate", null, ct);
        var status = r.ValueKind == JsonValueKind.Object && r.TryGetProperty("status", out var s) && s.ValueKind == JsonValueKind.String
            ? s.GetString()! : "none";
        var error = r.ValueKind == JsonValueKind.Object && r.TryGetProperty("error-desc", out var e) && e.ValueKind == JsonValueKind.String
            ? e.GetString() : null;
        return (status, error);
    }

    /// <summary>Polls query-migrate until the migration has ended; its last status, or a
    /// <see cref="QmpCommandException"/> if it failed.</summary>
    public async Task<string> WaitForMigrationAsync(TimeSpan poll, CancellationToken ct)
    {
        while (true)
        {
            var (status, error) = await QueryMigrateAsync(ct);
            if (status == "completed")
                return status;
            if (status is "failed" or "cancelled")
                throw new QmpCommandException("query-migrate", status, error ?? "migration " + status);
            await Task.Delay(poll, ct);
        }
    }

    /// <summary>The VM's run state (prelaunch, inmigrate, paused, running, ...) and whether it runs.</summary>
    public async Task<(string Status, bool Running)> QueryStatusAsync(CancellationToken ct)
    {
        var r = await ExecuteAsync("query-status", null, ct);
        if (r.ValueKind != JsonValueKind.Object || !r.TryGetProperty("status", out var s) || s.ValueKind != JsonValueKind.String
            || !r.TryGetProperty("running", out var running) || running.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            throw new QmpProtocolException($"QMP {_path}: query-status returned {r.GetRawText()}");
        return (s.GetString()!, running.GetBoolean());
    }

    private async Task ReadLoopAsync(LineReader reader)
    {
        Exception ended = new QmpConnectionClosedException("QEMU closed its QMP socket (did QEMU exit?)");
        try
        {
            while (await reader.ReadLineAsync(_stop.Token) is { } line)
            {
                switch (QmpMessage.Parse(line.Span))
                {
                    case QmpEvent e:
                        _events.Writer.TryWrite(e);
                        break;
                    case QmpReturn r:
                        Answer(r.Id, p => p.Answer.TrySetResult(r.Value));
                        break;
                    case QmpError err:
                        Answer(err.Id, p => p.Answer.TrySetException(new QmpCommandException(p.Command, err.Class, err.Description)));
                        break;
                    case QmpGreeting:
                        throw new QmpProtocolException($"QMP {_path}: a second greeting");
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            ended = new QmpConnectionClosedException("the QMP client was closed");
        }
        catch (Exception e)
        {
            ended = e is QmpProtocolException ? e : new QmpConnectionClosedException($"QMP socket failed: {e.Message}", e);
            Log.ForDebugEvent().Message("QMP {Path}: {Error}", _path, e.Message).Property("EventName", "QmpReadFailed").Log();
        }
        _closed = ended;
        foreach (var id in _pending.Keys)
            if (_pending.TryRemove(id, out var p))
                p.Answer.TrySetException(ended is QmpConnectionClosedException
                    ? new QmpConnectionClosedException($"QMP {_path}: {p.Command}: {ended.Message}", ended)
                    : ended);
        _events.Writer.TryComplete();
    }

    /// <summary>Routes an answer to the command with its id; an answer without one (QEMU gives none
    /// when it could not read the command) goes to the oldest command, as QMP answers in order.</summary>
    private void Answer(string? rawId, Action<Pending> complete)
    {
        long id;
        if (rawId is null || !long.TryParse(rawId, out id))
        {
            if (_pending.IsEmpty)
                return;
            id = _pending.Keys.Min();
        }
        if (_pending.TryRemove(id, out var pending))
            complete(pending);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // Already closed by QEMU.
        }
        await _readLoop;
        _socket.Dispose();
        _stop.Dispose();
        _writeLock.Dispose();
    }

    /// <summary>Splits the socket's bytes into lines; a line longer than <see cref="MaxLine"/> is a
    /// protocol error rather than a reason to buffer without end.</summary>
    private sealed class LineReader(Socket socket)
    {
        private byte[] _buffer = new byte[8192];
        private int _start, _end;

        public async Task<ReadOnlyMemory<byte>?> ReadLineAsync(CancellationToken ct)
        {
            while (true)
            {
                var newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
                if (newline >= 0)
                {
                    var line = _buffer.AsMemory(_start, newline - _start).ToArray();
                    _start = newline + 1;
                    var text = line.AsMemory();
                    return text.Length > 0 && text.Span[^1] == '\r' ? text[..^1] : text;
                }
                if (_start > 0)
                {
                    Array.Copy(_buffer, _start, _buffer, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                }
                if (_end == _buffer.Length)
                {
                    if (_buffer.Length >= MaxLine)
                        throw new QmpProtocolException($"QMP: a line longer than {MaxLine} bytes");
                    Array.Resize(ref _buffer, _buffer.Length * 2);
                }
                var n = await socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, ct);
                if (n == 0)
                    return null;
                _end += n;
            }
        }
    }
}
