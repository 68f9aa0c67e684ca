using System.Buffers;
using System.Net.Sockets;

namespace Snowflock.Mpi.Pmi.Internal;

/// <summary>One rank's connection: turns the byte stream into parsed lines and sends replies.
/// Only the dispatcher writes, so writes need no lock.</summary>
internal sealed class PmiSession : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;

    private int _rank = -1;
    private volatile bool _closed;

    /// <param name="tcp">A TCP connection (PMI_PORT), which must identify itself and pass the
    /// admission check; else one end of a socket pair that is a rank's from the start.</param>
    public PmiSession(Socket socket, string peer, bool tcp)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        IsTcp = tcp;
        Local = tcp ? socket.LocalEndPoint as System.Net.IPEndPoint : null;
        Remote = tcp ? socket.RemoteEndPoint as System.Net.IPEndPoint : null;
        Peer = peer;
    }

    public string Peer { get; }
    public bool IsTcp { get; }
    public System.Net.IPEndPoint? Local { get; }
    public System.Net.IPEndPoint? Remote { get; }

    /// <summary>Rank this connection is: bound at creation (PMI_FD) or by <c>initack</c>; -1 until then.
    /// Written by the dispatcher only; read also by the identify timer.</summary>
    public int Rank
    {
        get => Volatile.Read(ref _rank);
        set => Volatile.Write(ref _rank, value);
    }

    public bool Finalized { get; set; }

    /// <summary>Set for a host agent's aggregated stream: the ranks it speaks for.</summary>
    public IReadOnlySet<int>? HostRanks { get; set; }

    /// <summary>Set when the server refused this connection; whatever it sent after is ignored.</summary>
    public bool Rejected { get; set; }
    public bool Closed => _closed;

    /// <summary>Reads lines until EOF, an over-long line, or cancellation, handing each to <paramref name="onLine"/>.</summary>
    public Task ReadLinesAsync(Func<PmiSession, PmiParseResult, ValueTask> onLine, CancellationToken ct) =>
        PmiLineReader.ReadAsync(_stream,
            line => onLine(this, PmiWire.Parse(line.IsSingleSegment ? line.FirstSpan : line.ToArray())),
            _ => onLine(this, PmiParseResult.Fail($"line longer than {PmiWire.MaxLineBytes} bytes")), ct);

    /// <summary>Sends reply lines; a rank that is already gone is not an error of the server.</summary>
    public async ValueTask SendAsync(byte[] bytes, CancellationToken ct)
    {
        if (_closed)
            return;
        try
        {
            await _stream.WriteAsync(bytes, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            _closed = true;
        }
    }

    public void Close()
    {
        _closed = true;
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _closed = true;
        await _stream.DisposeAsync().ConfigureAwait(false);
    }
}
