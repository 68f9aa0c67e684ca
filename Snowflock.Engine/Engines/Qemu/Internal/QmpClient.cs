using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Snowflock.Engine.Engines.Qemu.Internal;

/// <summary>Interim QMP client (replaced by the full client with its parser and tests).</summary>
internal sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly NetworkStream _stream;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private int _id;

    private QmpClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    public static async Task<QmpClient> ConnectAsync(string path, CancellationToken ct)
    {
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct).ConfigureAwait(false);
                var client = new QmpClient(socket);
                await client._reader.ReadLineAsync(ct).ConfigureAwait(false);
                await client.ExecuteAsync("qmp_capabilities", null, ct).ConfigureAwait(false);
                return client;
            }
            catch (SocketException)
            {
                socket.Dispose();
                await Task.Delay(5, ct).ConfigureAwait(false);
            }
        }
    }

    public async Task<JsonElement> ExecuteAsync(string command, Action<Utf8JsonWriter>? arguments, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var id = ++_id;
            using var buffer = new MemoryStream();
            using (var w = new Utf8JsonWriter(buffer))
            {
                w.WriteStartObject();
                w.WriteString("execute", command);
                if (arguments is not null)
                {
                    w.WriteStartObject("arguments");
                    arguments(w);
                    w.WriteEndObject();
                }
                w.WriteNumber("id", id);
                w.WriteEndObject();
            }
            buffer.WriteByte((byte)'\n');
            await _stream.WriteAsync(buffer.ToArray(), ct).ConfigureAwait(false);
            while (true)
            {
                var line = await _reader.ReadLineAsync(ct).ConfigureAwait(false) ?? throw new IOException($"QMP: connection closed during {command}");
                using var doc = JsonDocument.Parse(line);
                var root = doc.RootElement;
                if (root.TryGetProperty("event", out _))
                    continue;
                if (root.TryGetProperty("error", out var error))
                    throw new IOException($"QMP {command}: {error.GetProperty("desc").GetString()}");
                if (root.TryGetProperty("return", out var ret))
                    return ret.Clone();
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
        _reader.Dispose();
    }
}
