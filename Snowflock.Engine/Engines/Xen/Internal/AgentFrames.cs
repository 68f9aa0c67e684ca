using System.Buffers.Binary;

namespace Snowflock.Engine.Engines.Xen.Internal;

/// <summary>One frame of native/agent/protocol.h.</summary>
internal readonly record struct AgentFrame(byte Type, ushort Channel, byte[] Payload);

/// <summary>
/// The frame codec of native/agent/protocol.h (8-byte little-endian header: type, 0, channel,
/// length; then the payload). The xen engine's own copy until the qemu engine's host side of
/// the protocol is shared; the constants must match protocol.h.
/// </summary>
internal static class AgentFrames
{
    public const int Version = 1;
    public const int HeaderSize = 8;
    public const int MaxPayload = 65536;

    public const byte Ping = 0x01, Identity = 0x02, Entropy = 0x03, Start = 0x04, Stdin = 0x05, Signal = 0x06, Quit = 0x07;
    public const byte PmiData = 0x10;
    public const byte Hello = 0x81, IdentityAck = 0x82, Started = 0x83, Stdout = 0x84, Stderr = 0x85, Exit = 0x86, PmiOpen = 0x87, Error = 0x88;

    public static byte[] Encode(byte type, ushort channel, ReadOnlySpan<byte> payload)
    {
        if (payload.Length > MaxPayload)
            throw new ArgumentException($"frame payload of {payload.Length} bytes exceeds {MaxPayload}");
        var frame = new byte[HeaderSize + payload.Length];
        frame[0] = type;
        BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan(2), channel);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(4), (uint)payload.Length);
        payload.CopyTo(frame.AsSpan(HeaderSize));
        return frame;
    }

    /// <summary>Reads one frame; null at a clean end of the stream between frames.</summary>
    public static async Task<AgentFrame?> ReadAsync(Stream stream, CancellationToken ct)
    {
        var header = new byte[HeaderSize];
        var got = await stream.ReadAtLeastAsync(header, HeaderSize, throwOnEndOfStream: false, ct);
        if (got == 0)
            return null;
        if (got < HeaderSize)
            throw new InvalidDataException("agent channel ended inside a frame header");
        var length = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4));
        if (length > MaxPayload)
            throw new InvalidDataException($"agent sent a frame of {length} bytes (limit {MaxPayload})");
        var payload = new byte[length];
        await stream.ReadExactlyAsync(payload, ct);
        return new AgentFrame(header[0], BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(2)), payload);
    }

    /// <summary>START's payload: executable, working directory, then "A"+argument and "E"+NAME=VALUE, each NUL-terminated.</summary>
    public static byte[] StartPayload(string executable, string workingDirectory, IEnumerable<string> arguments, IEnumerable<KeyValuePair<string, string>> environment)
    {
        var parts = new[] { executable, workingDirectory }.Concat(arguments.Select(a => "A" + a)).Concat(environment.Select(e => $"E{e.Key}={e.Value}"));
        var bytes = System.Text.Encoding.UTF8.GetBytes(string.Concat(parts.Select(p => p + "\0")));
        return bytes.Length <= MaxPayload ? bytes
            : throw new RankStartException($"{executable}: arguments and environment take {bytes.Length} bytes, more than a clone accepts ({MaxPayload})");
    }
}
