using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using NLog;
using Snowflock.Mpi.Pmi.Internal;

namespace Snowflock.Mpi.Pmi;

/// <summary>
/// The PMI-1 wire-protocol server of one job. Ranks connect over TCP (<c>PMI_PORT</c> +
/// <c>PMI_ID</c>); each connection's lines are parsed by its session and handed to one dispatcher
/// that owns the key-value space and the barrier, so no state is shared between threads.
/// </summary>
public sealed class Pmi1Server : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Mpi.Pmi");

    private readonly PmiJobLayout _layout;
    private readonly Channel<PmiEvent> _events = Channel.CreateUnbounded<PmiEvent>();
    private readonly CancellationTokenSource _stop = new();
    private Socket? _listener;
    private PmiDispatcher? _dispatcher;
    private Task _acceptLoop = Task.CompletedTask;

    public Pmi1Server(PmiJobLayout layout) => _layout = layout;

    /// <summary>Where ranks connect; valid after <see cref="Start"/>.</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)(_listener ?? throw new InvalidOperationException("not started")).LocalEndPoint!;

    /// <summary>Rank life-cycle events: initialized, barrier, finalized, abort, protocol violation.</summary>
    public ChannelReader<PmiEvent> Events => _events.Reader;

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
        _dispatcher = new PmiDispatcher(_layout, _events.Writer, _stop.Token);
        _acceptLoop = AcceptLoopAsync(listener, _dispatcher, _stop.Token);
        Log.ForDebugEvent().Message("PMI server listening on {EndPoint} for {Size} ranks", LocalEndPoint, _layout.Size)
            .Property("EventName", "PmiListening").Log();
    }

    private static async Task AcceptLoopAsync(Socket listener, PmiDispatcher dispatcher, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            client.NoDelay = true;
            dispatcher.Attach(new PmiSession(client));
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener?.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        if (_dispatcher is not null)
            await _dispatcher.DisposeAsync().ConfigureAwait(false);
        _events.Writer.TryComplete();
        _stop.Dispose();
    }
}
