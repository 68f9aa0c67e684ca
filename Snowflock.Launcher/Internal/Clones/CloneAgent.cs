using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using NLog;

namespace Snowflock.Launcher.Internal.Clones;

/// <summary>
/// The job's agent for the SnowFlock clone API (native/sf): ranks find it through
/// <c>SF_AGENT</c>, a unix socket in a private per-job folder. It grants tickets within the job's
/// clone budget, records every clone as a pidfd before the clone runs user code, kills the clones
/// of a process whose connection closes, and kills every clone still recorded when the job ends.
/// Sessions only read, parse and write; one dispatcher owns the <see cref="CloneLedger{T}"/>.
/// </summary>
internal sealed class CloneAgent : IAsyncDisposable
{
    /// <summary>Clones a job may hold at once unless <c>--max-clones</c>/<c>SF_MAX_CLONES</c> say otherwise.</summary>
    public const int DefaultLimit = 256;

    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Launcher.Clones");

    private sealed class Session(int id, int pid, Socket socket)
    {
        public int Id { get; } = id;
        public int Pid { get; } = pid;
        public Socket Socket { get; } = socket;
        public bool Greeted { get; set; }
    }

    /// <summary>A request for the dispatcher; <see cref="Reply"/> is null when the session closed.</summary>
    private sealed record Work(Session Session, CloneRequest? Request, TaskCompletionSource<string>? Reply);

    private readonly string _jobId;
    private readonly string _directory;
    private readonly Socket _listener;
    private readonly CloneLedger<ClonePid> _ledger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<Work> _work = Channel.CreateUnbounded<Work>(new() { SingleReader = true });
    private readonly List<Task> _sessionTasks = [];
    private readonly List<Session> _sessions = [];
    private readonly Task _accepting;
    private readonly Task _dispatching;
    private int _nextSession;
    private int _disposed;

    private CloneAgent(string jobId, string directory, Socket listener, int limit)
    {
        _jobId = jobId;
        _directory = directory;
        _listener = listener;
        _ledger = new CloneLedger<ClonePid>(limit);
        SocketPath = Path.Combine(directory, "agent.sock");
        _dispatching = Task.Run(DispatchAsync, CancellationToken.None);
        _accepting = Task.Run(() => AcceptAsync(_stop.Token), CancellationToken.None);
    }

    public string SocketPath { get; }

    /// <summary>Creates the folder and socket and starts serving.</summary>
    /// <exception cref="IOException">The folder or socket cannot be made.</exception>
    public static CloneAgent Start(string jobId, int limit)
    {
        var directory = AgentDirectory.Create(jobId);
        var path = Path.Combine(directory, "agent.sock");
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen(64);
        }
        catch (SocketException e)
        {
            listener.Dispose();
            AgentDirectory.Remove(directory);
            throw new IOException($"clone agent: cannot listen on {path}: {e.Message}", e);
        }
        Log.ForDebugEvent().Message("job {JobId}: clone agent at {Path}, at most {Limit} clones at once", jobId, path, limit)
            .Property("EventName", "CloneAgentListening").Log();
        return new CloneAgent(jobId, directory, listener, limit);
    }

    private async Task AcceptAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            var (pid, uid) = PeerOf(socket);
            if (uid != ClonePid.EffectiveUid() || !ClonePid.DescendsFrom(pid, Environment.ProcessId))
            {
                // The folder is private to the user; this only turns away the user's other programs.
                Log.ForWarnEvent().Message("clone agent: refused pid {Pid} (uid {Uid}), not a process of this job", pid, uid)
                    .Property("EventName", "CloneAgentStrangerRefused").Log();
                await TrySendAsync(socket, CloneWire.Error("EPERM", "the sfrun agent serves only the processes of its job"), ct)
                    .ConfigureAwait(false);
                socket.Dispose();
                continue;
            }
            var session = new Session(++_nextSession, pid, socket);
            lock (_sessions)
            {
                _sessions.Add(session);
                _sessionTasks.Add(Task.Run(() => ServeAsync(session, ct), CancellationToken.None));
            }
        }
    }

    /// <summary>The agent, or null (said why at -v) if it cannot run: ranks then use libsf standalone.</summary>
    public static CloneAgent? TryStart(string jobId, int? limit)
    {
        try
        {
            return Start(jobId, limit ?? DefaultLimit);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.ForWarnEvent().Message("no clone agent for this job, libsf grants tickets per process: {Error}", e.Message)
                .Property("EventName", "CloneAgentUnavailable").Log();
            return null;
        }
    }

    private static (int Pid, uint Uid) PeerOf(Socket socket)
    {
        Span<byte> cred = stackalloc byte[12]; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        const int SOL_SOCKET = 1, SO_PEERCRED = 17;
        return socket.GetRawSocketOption(SOL_SOCKET, SO_PEERCRED, cred) == 12
            ? (BitConverter.ToInt32(cred), BitConverter.ToUInt32(cred[4..]))
            : (-1, uint.MaxValue);
    }

    /// <summary>Reads the session's requests one at a time; each is answered before the next is read.</summary>
    private async Task ServeAsync(Session session, CancellationToken ct)
    {
        var buffer = new byte[CloneWire.MaxLine];
        var filled = 0;
        try
        {
            while (true)
            {
                var newline = Array.IndexOf(buffer, (byte)'\n', 0, filled);
                if (newline < 0)
                {
                    if (filled == buffer.Length)
                    {
                        await TrySendAsync(session.Socket, CloneWire.Error("EPROTO", "line too long"), ct).ConfigureAwait(false);
                        break;
                    }
                    var n = await session.Socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, ct).ConfigureAwait(false);
                    if (n == 0)
                        break;
                    filled += n;
                    continue;
                }
                var line = Encoding.ASCII.GetString(buffer, 0, newline);
                buffer.AsSpan(newline + 1, filled - newline - 1).CopyTo(buffer);
                filled -= newline + 1;
                CloneRequest request;
                try
                {
                    request = CloneWire.Parse(line);
                }
                catch (FormatException e)
                {
                    Log.ForDebugEvent().Message("clone agent: pid {Pid} sent a bad line: {Error}", session.Pid, e.Message)
                        .Property("EventName", "CloneAgentBadLine").Log();
                    await TrySendAsync(session.Socket, CloneWire.Error("EPROTO", e.Message), ct).ConfigureAwait(false);
                    break;
                }
                var reply = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
                await _work.Writer.WriteAsync(new Work(session, request, reply), ct).ConfigureAwait(false);
                if (!await TrySendAsync(session.Socket, await reply.Task.WaitAsync(ct).ConfigureAwait(false), ct).ConfigureAwait(false))
                    break;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or ChannelClosedException)
        {
        }
        _work.Writer.TryWrite(new Work(session, null, null));
    }

    private static async Task<bool> TrySendAsync(Socket socket, string line, CancellationToken ct)
    {
        try
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes(line), SocketFlags.None, ct).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    private async Task DispatchAsync()
    {
        await foreach (var work in _work.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            if (work.Reply is null)
            {
                Closed(work.Session);
                continue;
            }
            string reply;
            try
            {
                reply = Handle(work.Session, work.Request!);
            }
            catch (IOException e)
            {
                reply = CloneWire.Error("EPROTO", e.Message);
            }
            work.Reply.TrySetResult(reply);
        }
    }

    private string Handle(Session session, CloneRequest request)
    {
        if (request is CloneRequest.Hello hello)
        {
            if (hello.Version != CloneWire.Version)
                return CloneWire.Error("EPROTO", $"libsf speaks protocol {hello.Version}, sfrun {CloneWire.Version}; rebuild native/");
            session.Greeted = true;
            return CloneWire.Ok("limit", _ledger.Limit);
        }
        if (!session.Greeted)
            return CloneWire.Error("EPROTO", "say hello first");
        switch (request)
        {
            case CloneRequest.Ticket(var count):
            {
                var id = _ledger.Request(session.Id, count, out var refusal);
                if (refusal is not null)
                {
                    Log.ForDebugEvent().Message("pid {Pid}: ticket for {Count} clones refused: {Why}", session.Pid, count, refusal.Text)
                        .Property("EventName", "CloneTicketRefused").Log();
                    return CloneWire.Error(refusal.Errno, refusal.Text);
                }
                Log.ForDebugEvent().Message("pid {Pid}: ticket {Ticket} for {Count} clones ({Granted} of {Limit} granted)", session.Pid, id, count,
                    _ledger.Granted, _ledger.Limit).Property("EventName", "CloneTicketGranted").Log();
                return CloneWire.Ok("ticket", id);
            }
            case CloneRequest.Cloned(var ticket, var pids):
            {
                if (_ledger.CheckRecord(session.Id, ticket, pids.Count) is { } refusal)
                    return CloneWire.Error(refusal.Errno, refusal.Text);
                var handles = new List<ClonePid>(pids.Count);
                foreach (var pid in pids)
                {
                    if (ClonePid.Open(pid, session.Pid, out var why) is { } handle)
                    {
                        handles.Add(handle);
                        continue;
                    }
                    handles.ForEach(h => h.Dispose());
                    return CloneWire.Error("EPERM", $"cloned: {why}");
                }
                _ledger.Record(ticket, handles);
                Log.ForDebugEvent().Message("pid {Pid}: ticket {Ticket}: clones {Clones}", session.Pid, ticket, string.Join(",", pids))
                    .Property("EventName", "ClonesRecorded").Log();
                return CloneWire.Ok();
            }
            case CloneRequest.Done(var ticket):
            {
                var clones = _ledger.Done(session.Id, ticket, out var refusal);
                foreach (var clone in clones)
                    clone.Dispose();
                if (refusal is not null)
                    return CloneWire.Error(refusal.Errno, refusal.Text);
                Log.ForDebugEvent().Message("pid {Pid}: ticket {Ticket} done", session.Pid, ticket).Property("EventName", "CloneTicketDone").Log();
                return CloneWire.Ok();
            }
            default:
                return CloneWire.Error("EPROTO", "hello twice");
        }
    }

    /// <summary>The process is gone or done with the agent: clones it did not join or kill die now.</summary>
    private void Closed(Session session)
    {
        lock (_sessions)
            _sessions.Remove(session);
        session.Socket.Dispose();
        foreach (var (ticket, clones) in _ledger.Abandon(session.Id))
        {
            var killed = KillAll(clones);
            if (killed > 0)
                Log.ForDebugEvent().Message("pid {Pid} left ticket {Ticket}: killed {Count} clones", session.Pid, ticket, killed)
                    .Property("EventName", "CloneTicketAbandoned").Log();
        }
    }

    private static int KillAll(IEnumerable<ClonePid> clones)
    {
        var killed = 0;
        foreach (var clone in clones)
        {
            try
            {
                if (clone.Kill())
                    killed++;
            }
            catch (IOException e)
            {
                Log.ForWarnEvent().Message("cannot kill clone {Pid}: {Error}", clone.Pid, e.Message).Property("EventName", "CloneKillFailed").Log();
            }
            clone.Dispose();
        }
        return killed;
    }

    /// <summary>Stops serving, kills every clone still recorded, removes the socket and its folder.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stop.Cancel();
        _listener.Dispose();
        await _accepting.ConfigureAwait(false);
        Task[] sessions;
        lock (_sessions)
            sessions = [.. _sessionTasks];
        await Task.WhenAll(sessions).ConfigureAwait(false);
        _work.Writer.TryComplete();
        await _dispatching.ConfigureAwait(false);
        var killed = KillAll(_ledger.ReleaseAll());
        if (killed > 0)
            Log.ForDebugEvent().Message("job {JobId}: killed {Count} clones at teardown", _jobId, killed).Property("EventName", "ClonesKilled").Log();
        AgentDirectory.Remove(_directory);
        _stop.Dispose();
    }
}
