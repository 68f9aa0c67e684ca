using System.Buffers;
using System.IO.Pipelines;
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
    public async Task ReadLinesAsync(Func<PmiSession, PmiParseResult, ValueTask> onLine, CancellationToken ct)
    {
        var reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 4096, leaveOpen: true));
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(ct).ConfigureAwait(false);
                var buffer = result.Buffer;
                while (TryTakeLine(ref buffer, out var line))
                    await onLine(this, PmiWire.Parse(line.IsSingleSegment ? line.FirstSpan : line.ToArray())).ConfigureAwait(false);
                if (buffer.Length > PmiWire.MaxLineBytes)
                {
                    await onLine(this, PmiParseResult.Fail($"line longer than {PmiWire.MaxLineBytes} bytes")).ConfigureAwait(false);
                    return;
                }
                reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                    return;
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // A rank that dies mid-line, or teardown closing the socket: both end this session.
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private static bool TryTakeLine(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> line)
    {
        var newline = buffer.PositionOf((byte)'\n');
        if (newline is null)
        {
            line = default;
            return false;
        }
        line = buffer.Slice(0, newline.Value);
        buffer = buffer.Slice(buffer.GetPosition(1, newline.Value));
        return true;
    }

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
