using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Snowflock.Engine.Guest.Internal;

/// <summary>Frame types of the control channel to the guest agent; the numbers are
/// native/agent/protocol.h's and must change with it.</summary>
internal enum AgentFrameType : byte
{
    Ping = 0x01,
    Identity = 0x02,
    Entropy = 0x03,
    Start = 0x04,
    Stdin = 0x05,
    Signal = 0x06,
    Quit = 0x07,
    Job = 0x08,
    Challenge = 0x09,
    PmiData = 0x10,
    Hello = 0x81,
    IdentityAck = 0x82,
    Started = 0x83,
    Stdout = 0x84,
    Stderr = 0x85,
    Exit = 0x86,
    PmiOpen = 0x87,
    Error = 0x88,
}

/// <summary>One frame as read: its header and payload (the payload is only valid while the
/// reader's buffer is).</summary>
internal readonly record struct AgentFrameHeader(AgentFrameType Type, ushort Channel, int Length);

/// <summary>The channel's framing (8-byte little-endian header: type, reserved, channel, length),
/// in one place: a pure parser over buffered bytes and the payload encoders.</summary>
internal static class AgentFrame
{
    public const int HeaderSize = 8;
    public const int MaxPayload = 65536;

    /// <summary>Cuts one whole frame off the front of <paramref name="buffer"/>. False when more
    /// bytes are needed; throws <see cref="AgentProtocolException"/> when the bytes cannot be frames.</summary>
    public static bool TryRead(ref ReadOnlySequence<byte> buffer, out AgentFrameHeader header, out ReadOnlySequence<byte> payload)
    {
        header = default;
        payload = default;
        if (buffer.Length < HeaderSize)
            return false;
        Span<byte> h = stackalloc byte[HeaderSize];
        buffer.Slice(0, HeaderSize).CopyTo(h);
        var length = BinaryPrimitives.ReadUInt32LittleEndian(h[4..]);
        if (length > MaxPayload)
            throw new AgentProtocolException($"frame of {length} bytes exceeds the {MaxPayload}-byte limit");
        if (h[1] != 0)
            throw new AgentProtocolException($"frame header has reserved byte {h[1]}, not 0");
        if (buffer.Length < HeaderSize + length)
            return false;
        header = new AgentFrameHeader((AgentFrameType)h[0], BinaryPrimitives.ReadUInt16LittleEndian(h[2..]), (int)length);
        payload = buffer.Slice(HeaderSize, length);
        buffer = buffer.Slice(HeaderSize + length);
        return true;
    }

    /// <summary>Reads exactly one frame from <paramref name="stream"/> and nothing after it, so the
    /// stream can then be handed to an <see cref="AgentChannel"/>: how a connection that must prove
    /// who it is in its first frame (a Xen clone's HELLO with its token) is admitted. Null when the
    /// stream ends first.</summary>
    public static async Task<(AgentFrameHeader Header, byte[] Payload)?> ReadOneAsync(Stream stream, CancellationToken ct)
    {
        var head = new byte[HeaderSize];
        if (await stream.ReadAtLeastAsync(head, HeaderSize, throwOnEndOfStream: false, ct).ConfigureAwait(false) < HeaderSize)
            return null;
        var length = BinaryPrimitives.ReadUInt32LittleEndian(head.AsSpan(4));
        if (length > MaxPayload)
            throw new AgentProtocolException($"frame of {length} bytes exceeds the {MaxPayload}-byte limit");
        var whole = new byte[HeaderSize + length];
        head.CopyTo(whole, 0);
        if (await stream.ReadAtLeastAsync(whole.AsMemory(HeaderSize), (int)length, throwOnEndOfStream: false, ct).ConfigureAwait(false) < length)
            return null;
        var buffer = new ReadOnlySequence<byte>(whole);
        return TryRead(ref buffer, out var header, out var payload) ? (header, payload.ToArray()) : null;
    }

    public static byte[] Encode(AgentFrameType type, ushort channel, ReadOnlySpan<byte> payload)
    {
        if (payload.Length > MaxPayload)
            throw new ArgumentOutOfRangeException(nameof(payload), $"a frame carries at most {MaxPayload} bytes");
        var frame = new byte[HeaderSize + payload.Length];
        frame[0] = (byte)type;
        BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan(2), channel);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(4), (uint)payload.Length);
        payload.CopyTo(frame.AsSpan(HeaderSize));
        return frame;
    }

    /// <summary>START's payload: NUL-terminated executable, working directory, then "A"+argument
    /// and "E"+NAME=VALUE entries.</summary>
    public static byte[] StartPayload(string executable, string workingDirectory, IEnumerable<string> arguments,
        IEnumerable<KeyValuePair<string, string>> environment)
    {
        var text = new StringBuilder();
        text.Append(executable).Append('\0').Append(workingDirectory).Append('\0');
        foreach (var a in arguments)
            text.Append('A').Append(a).Append('\0');
        foreach (var (k, v) in environment)
            text.Append('E').Append(k).Append('=').Append(v).Append('\0');
        var bytes = Encoding.UTF8.GetBytes(text.ToString());
        if (bytes.Length > MaxPayload)
            throw new RankStartException($"cannot start {executable}: its arguments and environment take {bytes.Length} bytes, more than a VM rank may have ({MaxPayload})");
        return bytes;
    }

    /// <summary>IDENTITY's payload: key=value lines.</summary>
    public static byte[] IdentityPayload(IEnumerable<KeyValuePair<string, string>> identity) =>
        Encoding.UTF8.GetBytes(string.Concat(identity.Select(kv => $"{kv.Key}={kv.Value}\n")));

    public static uint U32(ReadOnlySequence<byte> payload, int index)
    {
        Span<byte> b = stackalloc byte[4];
        if (payload.Length < 4 * (index + 1))
            throw new AgentProtocolException($"frame payload of {payload.Length} bytes is too short");
        payload.Slice(4 * index, 4).CopyTo(b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }
}

/// <summary>The guest agent sent bytes that are not frames of the protocol.</summary>
internal sealed class AgentProtocolException(string message) : Exception(message);
