using System.Threading.Channels;
using NLog;

namespace Snowflock.Mpi.Pmi.Internal;

/// <summary>
/// The one reader of every session's requests. It owns the key-value space, the barrier and the
/// rank bindings; sessions only parse and forward, so the protocol state has a single owner.
/// </summary>
internal sealed class PmiDispatcher : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Mpi.Pmi");

    /// <param name="Bind">Not a line: binds the session to this rank (a PMI_FD connection), posted
    /// before its reader starts so the binding precedes every line.</param>
    private readonly record struct Inbound(PmiSession Session, PmiParseResult Line, bool Eof, int Bind = -1);

    /// <summary>Lines queued from all sessions: a session that floods waits for the dispatcher
    /// instead of growing the queue without bound.</summary>
    private const int InboundCapacity = 4096;

    private readonly PmiJobLayout _layout;
    private readonly ChannelWriter<PmiEvent> _events;
    private readonly CancellationToken _ct;
    private readonly Channel<Inbound> _inbound = Channel.CreateBounded<Inbound>(new BoundedChannelOptions(InboundCapacity)
        { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly KeyValueSpace _kvs;
    private readonly Dictionary<int, PmiSession> _ranks = [];
    private readonly HashSet<int> _inBarrier = [];
    /// <summary>Sessions not yet closed, each with its reader; a closed one is disposed (its fd
    /// freed) at once, not at the end of the job.</summary>
    private readonly Dictionary<PmiSession, Task> _sessions = [];
    private readonly Task _loop;
    private int _barrierEpoch;
    private int _openTcp;
    private bool _disposing;

    public PmiDispatcher(PmiJobLayout layout, ChannelWriter<PmiEvent> events, CancellationToken ct)
    {
        _layout = layout;
        _events = events;
        _ct = ct;
        _kvs = new KeyValueSpace(layout.KvsName, layout.MaxKeys, layout.MaxKvsBytesPerRank, layout.MaxKvsBytes);
        _kvs.TryPut("PMI_process_mapping", ProcessMapping.Format(layout.NodeOfRank), out _);
        _loop = Task.Run(LoopAsync, CancellationToken.None);
    }

    public int OpenTcpSessions => Volatile.Read(ref _openTcp);

    /// <summary>Starts reading <paramref name="session"/>; with <paramref name="rank"/> it is that
    /// rank's from its first line on.</summary>
    public void Attach(PmiSession session, int? rank)
    {
        lock (_sessions)
        {
            if (_disposing)
            {
                session.Close();
                _ = session.DisposeAsync().AsTask();
                return;
            }
            if (session.IsTcp)
                Interlocked.Increment(ref _openTcp);
            if (rank is { } r && !_inbound.Writer.TryWrite(new Inbound(session, default, false, r)))
            {
                // The queue is full (a flood): binding must not wait here, so the reader posts it first.
                _sessions[session] = Task.Run(async () =>
                {
                    await _inbound.Writer.WriteAsync(new Inbound(session, default, false, r), _ct).ConfigureAwait(false);
                    await ReadAsync(session).ConfigureAwait(false);
                }, CancellationToken.None);
                return;
            }
            _sessions[session] = Task.Run(() => ReadAsync(session), CancellationToken.None);
        }
    }

    private async Task ReadAsync(PmiSession session)
    {
        try
        {
            await session.ReadLinesAsync((s, line) => _inbound.Writer.WriteAsync(new Inbound(s, line, false), _ct), _ct)
                .ConfigureAwait(false);
        }
        finally
        {
            // Waits for room like a line: the end must reach the loop, or the fd would stay.
            try
            {
                await _inbound.Writer.WriteAsync(new Inbound(session, default, true), _ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
            {
            }
        }
    }

    private async Task LoopAsync()
    {
        try
        {
            await foreach (var item in _inbound.Reader.ReadAllAsync(_ct).ConfigureAwait(false))
            {
                if (item.Eof)
                    await OnClosedAsync(item.Session).ConfigureAwait(false);
                else if (item.Bind >= 0)
                    Bind(item.Session, item.Bind);
                else if (item.Session.Rejected)
                    continue; // lines queued before the rejection must not act
                else if (!item.Line.Ok)
                    await RejectAsync(item.Session, item.Line.Error!).ConfigureAwait(false);
                else
                    await HandleAsync(item.Session, item.Line.Command!).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void Bind(PmiSession session, int rank)
    {
        if (_ranks.TryGetValue(rank, out var other) && !other.Closed)
        {
            // A TCP peer took the rank first: the rank's own fd wins, the other one is cut off.
            other.Rejected = true;
            other.Close();
            Log.ForWarnEvent().Message("PMI connection from {Peer} held rank {Rank}; cut off for the rank's own PMI_FD", other.Peer, rank)
                .Property("EventName", "PmiRankTakenBack").Log();
        }
        session.Rank = rank;
        _ranks[rank] = session;
    }

    private async ValueTask OnClosedAsync(PmiSession session)
    {
        if (session.Rank >= 0 && _ranks.TryGetValue(session.Rank, out var bound) && bound == session)
            Log.ForDebugEvent().Message("rank {Rank} closed its PMI connection (finalized: {Finalized})", session.Rank, session.Finalized)
                .Property("EventName", "PmiClosed").Log();
        session.Close();
        lock (_sessions)
        {
            if (!_sessions.Remove(session))
                return;
            if (session.IsTcp)
                Interlocked.Decrement(ref _openTcp);
        }
        await session.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>A bad line from a rank of this job fails the job; from an unidentified peer it only
    /// closes that connection, so a stranger cannot take a job down.</summary>
    private ValueTask RejectAsync(PmiSession session, string error)
    {
        session.Rejected = true;
        if (session.Rank >= 0)
            _events.TryWrite(new PmiProtocolViolation(session.Rank, error));
        else
            Log.ForWarnEvent().Message("PMI connection from {Peer} rejected: {Error}", session.Peer, error)
                .Property("EventName", "PmiRejected").Log();
        session.Close();
        return ValueTask.CompletedTask;
    }

    private async ValueTask HandleAsync(PmiSession s, PmiCommand c)
    {
        if (Log.IsTraceEnabled)
            Log.ForTraceEvent().Message("rank {Rank} -> {Command}", s.Rank, c.Name).Property("EventName", "PmiRequest").Log();
        if (s.Rank < 0 && c.Name != "initack")
        {
            await RejectAsync(s, $"first command was {c.Name}, not initack").ConfigureAwait(false);
            return;
        }
        switch (c.Name)
        {
            case "initack":
                await InitAckAsync(s, c).ConfigureAwait(false);
                break;
            case "init":
                await ReplyAsync(s, "response_to_init", ("pmi_version", "1"), ("pmi_subversion", "1"), ("rc", "0")).ConfigureAwait(false);
                _events.TryWrite(new PmiRankInitialized(s.Rank));
                break;
            case "get_maxes":
                await ReplyAsync(s, "maxes", ("kvsname_max", PmiWire.MaxKvsNameLength.ToString()),
                    ("keylen_max", PmiWire.MaxKeyLength.ToString()), ("vallen_max", PmiWire.MaxValueLength.ToString())).ConfigureAwait(false);
                break;
            case "get_appnum":
                await ReplyAsync(s, "appnum", ("appnum", _layout.AppnumOfRank[s.Rank].ToString())).ConfigureAwait(false);
                break;
            case "get_my_kvsname":
                await ReplyAsync(s, "my_kvsname", ("kvsname", _kvs.Name)).ConfigureAwait(false);
                break;
            case "get_universe_size":
                await ReplyAsync(s, "universe_size", ("size", _layout.Size.ToString())).ConfigureAwait(false);
                break;
            case "put":
                await PutAsync(s, c).ConfigureAwait(false);
                break;
            case "get":
                await GetAsync(s, c).ConfigureAwait(false);
                break;
            case "barrier_in":
                await BarrierInAsync(s).ConfigureAwait(false);
                break;
            case "finalize":
                s.Finalized = true;
                // Published before the ack: the rank may exit the moment it reads the ack, and the
                // job must already know that this exit is a clean one.
                _events.TryWrite(new PmiRankFinalized(s.Rank));
                await ReplyAsync(s, "finalize_ack").ConfigureAwait(false);
                break;
            case "abort":
                c.TryGetInt("exitcode", out var code);
                _events.TryWrite(new PmiAbortRequested(s.Rank, code, c["message"] ?? c["error_msg"]));
                break;
            case "publish_name" or "unpublish_name" or "lookup_name":
                // Name publishing serves MPI_Comm_connect between jobs, which sfrun does not offer.
                await ReplyAsync(s, c.Name.Replace("_name", "_result"), ("rc", "-1"), ("msg", "not_supported_by_sfrun")).ConfigureAwait(false);
                break;
            default:
                await RejectAsync(s, $"unknown PMI command {c.Name}").ConfigureAwait(false);
                break;
        }
    }

    private async ValueTask InitAckAsync(PmiSession s, PmiCommand c)
    {
        if (s.Rank >= 0)
        {
            await RejectAsync(s, "initack sent twice").ConfigureAwait(false);
            return;
        }
        if (!c.TryGetInt("pmiid", out var rank) || rank < 0 || rank >= _layout.Size)
        {
            await RejectAsync(s, $"initack with pmiid {c["pmiid"] ?? "(none)"} outside 0..{_layout.Size - 1}").ConfigureAwait(false);
            return;
        }
        if (_ranks.ContainsKey(rank))
        {
            await RejectAsync(s, $"a second connection claims to be rank {rank}").ConfigureAwait(false);
            return;
        }
        if (_layout.Admission is { } admit && s.IsTcp && (s.Local is not { } local || s.Remote is not { } remote
                ? "its addresses are unknown" : admit(local, remote, rank)) is { } refusal)
        {
            await RejectAsync(s, $"connection claiming rank {rank} refused: {refusal}").ConfigureAwait(false);
            return;
        }
        s.Rank = rank;
        _ranks[rank] = s;
        await ReplyAsync(s, "initack").ConfigureAwait(false);
        await ReplyAsync(s, "set", ("size", _layout.Size.ToString())).ConfigureAwait(false);
        await ReplyAsync(s, "set", ("rank", rank.ToString())).ConfigureAwait(false);
        await ReplyAsync(s, "set", ("debug", "0")).ConfigureAwait(false);
    }

    private async ValueTask PutAsync(PmiSession s, PmiCommand c)
    {
        if (c["kvsname"] != _kvs.Name)
        {
            await ReplyAsync(s, "put_result", ("rc", "-1"), ("msg", "unknown_kvsname")).ConfigureAwait(false);
            return;
        }
        if (c["key"] is not { } key || c["value"] is not { } value)
        {
            await RejectAsync(s, "put without key or value").ConfigureAwait(false);
            return;
        }
        if (!_kvs.TryPut(key, value, out var error, s.Rank))
        {
            await RejectAsync(s, $"put refused: {error}").ConfigureAwait(false);
            return;
        }
        await ReplyAsync(s, "put_result", ("rc", "0"), ("msg", "success")).ConfigureAwait(false);
    }

    private async ValueTask GetAsync(PmiSession s, PmiCommand c)
    {
        var key = c["key"] ?? "";
        if (c["kvsname"] == _kvs.Name && _kvs.TryGet(key, out var value))
            await ReplyAsync(s, "get_result", ("rc", "0"), ("msg", "success"), ("value", value)).ConfigureAwait(false);
        else
            await ReplyAsync(s, "get_result", ("rc", "-1"), ("msg", $"key_{key}_not_found"), ("value", "unknown")).ConfigureAwait(false);
    }

    private async ValueTask BarrierInAsync(PmiSession s)
    {
        if (!_inBarrier.Add(s.Rank))
        {
            await RejectAsync(s, "barrier_in twice in one barrier").ConfigureAwait(false);
            return;
        }
        if (_inBarrier.Count < _layout.Size)
            return;
        _inBarrier.Clear();
        _barrierEpoch++;
        var reply = PmiWire.Format("barrier_out");
        foreach (var session in _ranks.Values)
            await session.SendAsync(reply, _ct).ConfigureAwait(false);
        _events.TryWrite(new PmiBarrierCompleted(_barrierEpoch));
    }

    private ValueTask ReplyAsync(PmiSession s, string command, params (string, string)[] args) =>
        s.SendAsync(PmiWire.Format(command, args), _ct);

    public async ValueTask DisposeAsync()
    {
        KeyValuePair<PmiSession, Task>[] sessions;
        lock (_sessions)
        {
            _disposing = true;
            sessions = [.. _sessions];
        }
        foreach (var (s, _) in sessions)
            s.Close();
        // Readers may be waiting for room in the queue; the server's token (cancelled before this)
        // releases them, and the loop ends with it.
        await Task.WhenAll(sessions.Select(kv => kv.Value)).ConfigureAwait(false);
        _inbound.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
        foreach (var (s, _) in sessions)
            await s.DisposeAsync().ConfigureAwait(false);
    }
}
