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
    private readonly record struct Inbound(PmiSession Session, PmiParseResult Line, bool Eof, int Bind = -1, bool Host = false);

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
    /// <summary>Ranks whose barrier_in came through their host's aggregating agent: their
    /// barrier_out goes back the same way, once per host, not on their own connection.</summary>
    private readonly HashSet<int> _barrierViaHost = [];
    /// <summary>Host sessions (<see cref="AttachHost"/>), each speaking for its host's ranks.</summary>
    private readonly List<PmiSession> _hosts = [];
    /// <summary>Puts since the last barrier: what each host's agent gets at barrier_out, so its
    /// ranks' gets are answered on their own host.</summary>
    private readonly List<(string Key, string Value)> _sinceBarrier = [];
    /// <summary>Barrier messages and PMI requests since the last barrier (at -v: with agents
    /// aggregating, the head sees one barrier message per host, not per rank).</summary>
    private int _barrierArrivals;
    private int _requests;
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

    /// <summary>Starts reading a host agent's aggregated stream, which speaks for
    /// <paramref name="ranks"/> only: batched puts (<c>cmd=sfa_put rank=R key=K value=V</c>) and one
    /// <c>cmd=sfa_barrier_in</c> for all of them. The head answers <c>cmd=sfa_hello kvsname=…</c>
    /// at once, and at each barrier's end sends the puts since the previous one
    /// (<c>cmd=sfa_kv key=K value=V</c>) followed by <c>cmd=sfa_barrier_out</c>.</summary>
    public void AttachHost(PmiSession session, IReadOnlySet<int> ranks)
    {
        session.HostRanks = ranks;
        lock (_sessions)
        {
            if (_disposing)
            {
                session.Close();
                _ = session.DisposeAsync().AsTask();
                return;
            }
            _sessions[session] = Task.Run(async () =>
            {
                await _inbound.Writer.WriteAsync(new Inbound(session, default, false, Host: true), _ct).ConfigureAwait(false);
                await ReadAsync(session).ConfigureAwait(false);
            }, CancellationToken.None);
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
                else if (item.Host)
                {
                    _hosts.Add(item.Session);
                    await ReplyAsync(item.Session, "sfa_hello", ("kvsname", _kvs.Name), ("size", _layout.Size.ToString())).ConfigureAwait(false);
                    // What the KVS holds before any rank put (PMI_process_mapping): gets of it stay on the host.
                    foreach (var (key, value) in _kvs.Entries)
                        await ReplyAsync(item.Session, "sfa_kv", ("key", key), ("value", value)).ConfigureAwait(false);
                }
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
        _hosts.Remove(session);
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
    /// closes that connection, so a stranger cannot take a job down. A host agent's stream speaks
    /// for several ranks: <paramref name="rank"/> names the one at fault, else its first.</summary>
    private ValueTask RejectAsync(PmiSession session, string error, int? rank = null)
    {
        session.Rejected = true;
        if (rank is { } blamed)
            _events.TryWrite(new PmiProtocolViolation(blamed, error));
        else if (session.Rank >= 0)
            _events.TryWrite(new PmiProtocolViolation(session.Rank, error));
        else if (session.HostRanks is { Count: > 0 } ranks)
            _events.TryWrite(new PmiProtocolViolation(ranks.Min(), $"its host's agent: {error}"));
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
        // A batched put is part of its host's one barrier message, not a message of its own.
        if (c.Name != "sfa_put")
            _requests++;
        if (s.HostRanks is not null)
        {
            await HandleHostAsync(s, c).ConfigureAwait(false);
            return;
        }
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
        _sinceBarrier.Add((key, value));
        await ReplyAsync(s, "put_result", ("rc", "0"), ("msg", "success")).ConfigureAwait(false);
    }

    /// <summary>A host agent's aggregated requests. The agent already answered its ranks' puts,
    /// so a put refused here (a budget) fails the job, naming the rank that made it.</summary>
    private async ValueTask HandleHostAsync(PmiSession s, PmiCommand c)
    {
        var ranks = s.HostRanks!;
        switch (c.Name)
        {
            case "sfa_put":
                if (!c.TryGetInt("rank", out var rank) || !ranks.Contains(rank))
                {
                    await RejectAsync(s, $"sfa_put for rank {c["rank"] ?? "(none)"}, which is not on its host").ConfigureAwait(false);
                    return;
                }
                if (c["key"] is not { } key || c["value"] is not { } value)
                {
                    await RejectAsync(s, "sfa_put without key or value").ConfigureAwait(false);
                    return;
                }
                if (!_kvs.TryPut(key, value, out var error, rank))
                {
                    await RejectAsync(s, $"put refused: {error}", rank).ConfigureAwait(false);
                    return;
                }
                _sinceBarrier.Add((key, value));
                break;
            case "sfa_barrier_in":
                foreach (var r in ranks)
                    if (_inBarrier.Contains(r))
                    {
                        await RejectAsync(s, $"rank {r} entered one barrier twice").ConfigureAwait(false);
                        return;
                    }
                _inBarrier.UnionWith(ranks);
                _barrierViaHost.UnionWith(ranks);
                _barrierArrivals++;
                await CompleteBarrierIfDoneAsync().ConfigureAwait(false);
                break;
            default:
                await RejectAsync(s, $"unknown host PMI command {c.Name}").ConfigureAwait(false);
                break;
        }
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
        _barrierArrivals++;
        await CompleteBarrierIfDoneAsync().ConfigureAwait(false);
    }

    private async ValueTask CompleteBarrierIfDoneAsync()
    {
        if (_inBarrier.Count < _layout.Size)
            return;
        _inBarrier.Clear();
        _barrierEpoch++;
        var reply = PmiWire.Format("barrier_out");
        foreach (var (rank, session) in _ranks)
            if (!_barrierViaHost.Contains(rank))
                await session.SendAsync(reply, _ct).ConfigureAwait(false);
        if (_hosts.Count > 0)
        {
            // One write per host: every put of the epoch, then the barrier's end.
            var delta = new MemoryStream();
            foreach (var (key, value) in _sinceBarrier)
                delta.Write(PmiWire.Format("sfa_kv", ("key", key), ("value", value)));
            delta.Write(PmiWire.Format("sfa_barrier_out"));
            var bytes = delta.ToArray();
            foreach (var host in _hosts)
                await host.SendAsync(bytes, _ct).ConfigureAwait(false);
        }
        Log.ForDebugEvent().Message("PMI barrier {Epoch}: {Arrivals} barrier messages and {Requests} PMI requests reached sfrun since the last one, for {Size} ranks",
            _barrierEpoch, _barrierArrivals, _requests, _layout.Size).Property("EventName", "PmiBarrierDone").Log();
        _events.TryWrite(new PmiBarrierCompleted(_barrierEpoch) { Arrivals = _barrierArrivals, Requests = _requests });
        _barrierViaHost.Clear();
        _sinceBarrier.Clear();
        _barrierArrivals = 0;
        _requests = 0;
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
