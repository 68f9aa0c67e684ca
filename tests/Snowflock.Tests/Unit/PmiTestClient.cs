using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Snowflock.Tests.Unit;

/// <summary>
/// A PMI-1 peer for tests, speaking the wire protocol over real TCP as MPICH's simple PMI client
/// does (<c>PMI_PORT</c> + <c>PMI_ID</c>). Every read takes a token, so a server that never answers
/// fails the test instead of hanging it.
/// </summary>
internal sealed class PmiTestClient : IAsyncDisposable
{
    private readonly TcpClient? _tcp;
    private readonly NetworkStream _stream;
    private readonly List<byte> _pending = [];
    private readonly byte[] _buffer = new byte[16 * 1024];
    private bool _eof;

    private PmiTestClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    private PmiTestClient(Socket socket) => _stream = new NetworkStream(socket, ownsSocket: true);

    /// <summary>A client over a connected socket (a rank's end of a socket pair); it owns it.</summary>
    public static PmiTestClient Over(Socket socket) => new(socket);

    /// <summary>Connects <paramref name="socket"/>, made by the caller (in a network namespace of
    /// its choosing), to <paramref name="server"/>; the client owns it from then on.</summary>
    public static async Task<PmiTestClient> ConnectAsync(Socket socket, IPEndPoint server, CancellationToken ct)
    {
        socket.NoDelay = true;
        try
        {
            await socket.ConnectAsync(server, ct);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new PmiTestClient(socket);
    }

    public static async Task<PmiTestClient> ConnectAsync(IPEndPoint server, CancellationToken ct)
    {
        var tcp = new TcpClient(server.AddressFamily) { NoDelay = true };
        try
        {
            await tcp.ConnectAsync(server, ct);
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
        return new PmiTestClient(tcp);
    }

    /// <summary>Connects and identifies as <paramref name="rank"/>; returns the server's four handshake lines.</summary>
    public static async Task<(PmiTestClient Client, IReadOnlyList<string> Handshake)> ConnectAsRankAsync(
        IPEndPoint server, int rank, CancellationToken ct)
    {
        var client = await ConnectAsync(server, ct);
        await client.SendLineAsync($"cmd=initack pmiid={rank}", ct);
        var lines = new List<string>();
        for (var i = 0; i < 4; i++)
            lines.Add(await client.ExpectLineAsync(ct));
        return (client, lines);
    }

    /// <summary>Sends <paramref name="line"/> and its newline in one write.</summary>
    public Task SendLineAsync(string line, CancellationToken ct) => SendAsync(Encoding.UTF8.GetBytes(line + "\n"), ct);

    /// <summary>Sends raw bytes, newlines and all, in one write.</summary>
    public async Task SendAsync(byte[] bytes, CancellationToken ct) => await _stream.WriteAsync(bytes, ct);

    /// <summary>Sends a request and returns the one reply line.</summary>
    public async Task<string> RequestAsync(string line, CancellationToken ct)
    {
        await SendLineAsync(line, ct);
        return await ExpectLineAsync(ct);
    }

    /// <summary>The next line without its newline, or null once the server closed the connection.</summary>
    public async Task<string?> ReadLineAsync(CancellationToken ct)
    {
        while (true)
        {
            var newline = _pending.IndexOf((byte)'\n');
            if (newline >= 0)
            {
                var line = Encoding.UTF8.GetString(_pending.GetRange(0, newline).ToArray());
                _pending.RemoveRange(0, newline + 1);
                return line;
            }
            if (_eof)
                return null;
            int n;
            try
            {
                n = await _stream.ReadAsync(_buffer, ct);
            }
            catch (IOException)
            {
                n = 0; // reset by the server: as good as closed
            }
            if (n == 0)
                _eof = true;
            else
                _pending.AddRange(_buffer.AsSpan(0, n));
        }
    }

    public async Task<string> ExpectLineAsync(CancellationToken ct) =>
        await ReadLineAsync(ct) ?? throw new InvalidOperationException("the PMI server closed the connection");

    /// <summary>Reads until the server closes the connection; returns what it still sent before that.</summary>
    public async Task<IReadOnlyList<string>> ReadUntilClosedAsync(CancellationToken ct)
    {
        var lines = new List<string>();
        while (await ReadLineAsync(ct) is { } line)
            lines.Add(line);
        if (_pending.Count > 0)
            lines.Add(Encoding.UTF8.GetString(_pending.ToArray()));
        _pending.Clear();
        return lines;
    }

    public ValueTask DisposeAsync()
    {
        _stream.Dispose();
        _tcp?.Dispose();
        return ValueTask.CompletedTask;
    }
}
