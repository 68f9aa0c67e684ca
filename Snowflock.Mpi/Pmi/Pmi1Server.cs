using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using NLog;
using Snowflock.Mpi.Pmi.Internal;

namespace Snowflock.Mpi.Pmi;

/// <summary>
/// The PMI-1 wire-protocol server of one job. A rank on sfrun's own host gets its end of a socket
/// pair (<see cref="ConnectRank"/>, hydra's <c>PMI_FD</c>), which only it holds, so no listener
/// exists that another user could reach. Where a rank cannot inherit an fd (a VM guest's relay),
/// <see cref="Start"/> opens a TCP listener (<c>PMI_PORT</c> + <c>PMI_ID</c>) whose connections
/// the layout's admission check must accept. Each connection's lines are parsed by its session and
/// handed to one dispatcher that owns the key-value space and the barrier, so no state is shared
/// between threads.
/// </summary>
public sealed class Pmi1Server : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Mpi.Pmi");

    /// <summary>How long the accept loop pauses when the process is out of fds (EMFILE): long
    /// enough not to spin, short enough that a rank's connection waits little once fds free up.</summary>
    private static readonly TimeSpan FdBackoff = TimeSpan.FromMilliseconds(50);

    private readonly PmiJobLayout _layout;
    private readonly Channel<PmiEvent> _events = Channel.CreateUnbounded<PmiEvent>();
    private readonly CancellationTokenSource _stop = new();
    private readonly PmiDispatcher _dispatcher;
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;

    public Pmi1Server(PmiJobLayout layout)
    {
        _layout = layout;
        _dispatcher = new PmiDispatcher(_layout, _events.Writer, _stop.Token);
    }

    /// <summary>Where TCP ranks connect; valid after <see cref="Start"/>.</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)(_listener ?? throw new InvalidOperationException("not started")).LocalEndPoint!;

    /// <summary>True once <see cref="Start"/> opened a TCP listener.</summary>
    public bool Listening => _listener is not null;

    /// <summary>Rank life-cycle events: initialized, barrier, finalized, abort, protocol violation.</summary>
    public ChannelReader<PmiEvent> Events => _events.Reader;

    /// <summary>TCP connections open now (for tests and the security figures).</summary>
    public int OpenConnections => _dispatcher.OpenTcpSessions;

    /// <summary>A new connection that is <paramref name="rank"/>'s from its first byte: the
    /// server keeps one end of a socket pair and returns the other, for the engine to hand to the
    /// rank as <c>PMI_FD</c> (the caller owns it and closes it once the rank has its copy). The
    /// rank starts with <c>cmd=init</c>; no <c>initack</c> and no admission check are needed,
    /// since nothing but the holder of this fd can speak on it.</summary>
    /// <exception cref="SocketException">No socket pair could be made (out of fds).</exception>
    public Socket ConnectRank(int rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, _layout.Size);
        var (server, client) = SocketPair.Open();
        _dispatcher.Attach(new PmiSession(server, $"PMI_FD of rank {rank}", tcp: false), rank);
        return client;
    }

    /// <summary>A host agent's aggregated PMI stream for <paramref name="ranks"/> (the ranks on
    /// that host): one end of a new socket pair, for the engine to join to that agent. Through it
    /// the agent hands on its ranks' puts in one batch and their barrier as one message, and gets
    /// back the key-value pairs of each barrier, so its ranks' gets are answered on their host.</summary>
    /// <exception cref="SocketException">No socket pair could be made (out of fds).</exception>
    public Socket ConnectHost(IReadOnlyCollection<int> ranks)
    {
        foreach (var rank in ranks)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(rank);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, _layout.Size);
        }
        var (server, client) = SocketPair.Open();
        _dispatcher.AttachHost(new PmiSession(server, $"host agent of ranks {string.Join(",", ranks.Take(8))}{(ranks.Count > 8 ? ",…" : "")}", tcp: false),
            ranks.ToHashSet());
        return client;
    }

    /// <summary>Listens on <paramref name="address"/> (loopback for local jobs) on a free port.</summary>
    public void Start(IPAddress address)
    {
        var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(new IPEndPoint(address, 0));
            listener.Listen(1024);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        _listener = listener;
        _acceptLoop = AcceptLoopAsync(listener, _stop.Token);
        Log.ForDebugEvent().Message("PMI server listening on {EndPoint} for {Size} ranks", LocalEndPoint, _layout.Size)
            .Property("EventName", "PmiListening").Log();
    }

    /// <summary>Accepts until disposed. Nothing a peer does ends it: out of fds it backs off and
    /// goes on (said once); over the connection cap or refused by the admission check, a
    /// connection is closed at once, before a byte of it is read.</summary>
    private async Task AcceptLoopAsync(Socket listener, CancellationToken ct)
    {
        var saidOutOfFds = false;
        var saidFull = false;
        while (!ct.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable
                                                or SocketError.ConnectionAborted or SocketError.ConnectionReset)
            {
                if (e.SocketErrorCode is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable && !saidOutOfFds)
                {
                    saidOutOfFds = true;
                    Log.ForWarnEvent().Message("PMI server out of file descriptors ({Error}); accepting again after a pause", e.Message)
                        .Property("EventName", "PmiAcceptOutOfFds").Log();
                }
                try
                {
                    await Task.Delay(FdBackoff, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            catch (SocketException)
            {
                if (ct.IsCancellationRequested)
                    return;
                continue;
            }
            if (_dispatcher.OpenTcpSessions >= _layout.MaxConnections)
            {
                if (!saidFull)
                {
                    saidFull = true;
                    Log.ForWarnEvent().Message("PMI server has {Max} connections open; closing further ones until some end", _layout.MaxConnections)
                        .Property("EventName", "PmiConnectionCap").Log();
                }
                client.Dispose();
                continue;
            }
            if (_layout.Admission is { } admit && client.LocalEndPoint is IPEndPoint local && client.RemoteEndPoint is IPEndPoint remote
                && admit(local, remote, -1) is { } refusal)
            {
                Log.ForWarnEvent().Message("PMI connection from {Peer} refused: {Error}", remote, refusal)
                    .Property("EventName", "PmiRejected").Log();
                client.Dispose();
                continue;
            }
            client.NoDelay = true;
            var session = new PmiSession(client, client.RemoteEndPoint?.ToString() ?? "unknown peer", tcp: true);
            _dispatcher.Attach(session, rank: null);
            _ = CloseIfSilentAsync(session, _layout.IdentifyWithin, ct);
        }
    }

    /// <summary>A connection that has not identified itself in time is closed: idle strangers
    /// (slowloris) cost a connection slot for a bounded time only.</summary>
    private static async Task CloseIfSilentAsync(PmiSession session, TimeSpan within, CancellationToken ct)
    {
        try
        {
            await Task.Delay(within, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        if (session.Rank < 0 && !session.Closed)
        {
            Log.ForDebugEvent().Message("PMI connection from {Peer} closed: no initack within {Seconds} s", session.Peer, within.TotalSeconds)
                .Property("EventName", "PmiIdentifyTimeout").Log();
            session.Close();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener?.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        await _dispatcher.DisposeAsync().ConfigureAwait(false);
        _events.Writer.TryComplete();
        _stop.Dispose();
    }
}
