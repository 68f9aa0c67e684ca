using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace Snowflock.Tests.Integration.Xen;

/// <summary>One frame of native/agent/protocol.h.</summary>
internal readonly record struct AgentFrameData(byte Type, ushort Channel, byte[] Payload)
{
    public string Text => Encoding.UTF8.GetString(Payload);
}

/// <summary>
/// The host end of the agent's control channel as these tests speak it, straight from
/// native/agent/protocol.h (8-byte little-endian header, then the payload), so the real agent in
/// a real Xen clone is checked independently of sfrun's own implementation.
/// </summary>
internal sealed class AgentPeer(TcpClient client) : IDisposable
{
    public const byte Ping = 0x01, Identity = 0x02, Start = 0x04, Quit = 0x07;
    public const byte Hello = 0x81, IdentityAck = 0x82, Started = 0x83, Stdout = 0x84, Stderr = 0x85, Exit = 0x86, Error = 0x88;

    private readonly NetworkStream _stream = client.GetStream();

    public async Task SendAsync(byte type, ushort channel, byte[] payload, CancellationToken ct)
    {
        var frame = new byte[8 + payload.Length];
        frame[0] = type;
        BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan(2), channel);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(4), (uint)payload.Length);
        payload.CopyTo(frame, 8);
        await _stream.WriteAsync(frame, ct);
    }

    public Task SendTextAsync(byte type, string text, CancellationToken ct) => SendAsync(type, 0, Encoding.UTF8.GetBytes(text), ct);

    /// <summary>START: executable, working directory, then "A"+argument and "E"+NAME=VALUE, each NUL-terminated.</summary>
    public Task StartAsync(ushort slot, string exe, string cwd, IEnumerable<string> args, IEnumerable<string> env, CancellationToken ct)
    {
        var parts = new[] { exe, cwd }.Concat(args.Select(a => "A" + a)).Concat(env.Select(e => "E" + e));
        return SendAsync(Start, slot, Encoding.UTF8.GetBytes(string.Concat(parts.Select(p => p + "\0"))), ct);
    }

    public async Task<AgentFrameData> ReadAsync(CancellationToken ct)
    {
        var header = new byte[8];
        await _stream.ReadExactlyAsync(header, ct);
        var length = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4));
        if (length > 65536)
            throw new InvalidDataException($"agent sent a frame of {length} bytes");
        var payload = new byte[length];
        await _stream.ReadExactlyAsync(payload, ct);
        return new AgentFrameData(header[0], BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(2)), payload);
    }

    /// <summary>Reads frames until one of <paramref name="type"/> arrives; the ones before are returned too.</summary>
    public async Task<(AgentFrameData Frame, List<AgentFrameData> Before)> ReadUntilAsync(byte type, CancellationToken ct)
    {
        var before = new List<AgentFrameData>();
        while (true)
        {
            var f = await ReadAsync(ct);
            if (f.Type == type)
                return (f, before);
            before.Add(f);
        }
    }

    public void Dispose() => client.Dispose();
}
