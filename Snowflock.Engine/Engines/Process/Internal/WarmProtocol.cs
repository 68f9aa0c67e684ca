using System.Buffers.Binary;
using System.Text;

namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>A message from a warm master (native/warm/protocol.h).</summary>
internal abstract record WarmMessage
{
    /// <summary>First message of a connection: who connected, and whether it may fork.</summary>
    public sealed record Hello(uint Version, int Pid, int Threads) : WarmMessage;

    /// <summary>Answer to fork request <paramref name="Seq"/>: the clone's pid, or -errno.</summary>
    public sealed record Forked(uint Seq, int Pid) : WarmMessage;

    /// <summary>A clone ended; <paramref name="Status"/> is the raw <c>waitpid</c> status.</summary>
    public sealed record Exited(int Pid, int Status) : WarmMessage;

    /// <summary>From a warm VM's master, right after its hello: how many jobs it has served and
    /// how many clones it has alive.</summary>
    public sealed record Stats(uint JobsServed, uint Clones) : WarmMessage;
}

/// <summary>
/// The warm master's wire format, parsed and built in one place: frames of a little-endian
/// u32 payload length and u32 type, then the payload (native/warm/protocol.h has the layout).
/// Pure functions over bytes, so they can be unit-tested and fuzzed without a master.
/// </summary>
internal static class WarmProtocol
{
    public const uint Version = 1;
    public const int HeaderLength = 8;
    public const int MaxPayload = 4 * 1024 * 1024;
    private const uint Hello = 1, Fork = 2, Pid = 3, Exit = 4, StatsType = 5;

    /// <summary>Encodes a fork request: the clone's rank, working directory and complete environment.</summary>
    public static byte[] EncodeFork(uint seq, int rank, string workingDirectory, IEnumerable<KeyValuePair<string, string>> environment)
    {
        var body = new MemoryStream();
        U32(body, seq);
        U32(body, (uint)rank);
        Str(body, workingDirectory);
        var entries = environment.Select(kv => kv.Key + "=" + kv.Value).ToList();
        U32(body, (uint)entries.Count);
        foreach (var e in entries)
            Str(body, e);
        if (body.Length > MaxPayload)
            throw new ArgumentException($"fork request of {body.Length} bytes exceeds the warm master's limit of {MaxPayload}");
        var frame = new byte[HeaderLength + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)body.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(4), Fork);
        body.GetBuffer().AsSpan(0, (int)body.Length).CopyTo(frame.AsSpan(HeaderLength));
        return frame;
    }

    private static void U32(MemoryStream body, uint v)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(word, v);
        body.Write(word);
    }

    private static void Str(MemoryStream body, string s)
    {
        if (s.Contains('\0'))
            throw new ArgumentException("a string sent to the warm master contains NUL");
        var bytes = Encoding.UTF8.GetBytes(s);
        U32(body, (uint)bytes.Length);
        body.Write(bytes);
    }

    /// <summary>Takes one message off the front of <paramref name="buffer"/>. Returns null when the
    /// buffer does not yet hold a whole frame (<paramref name="consumed"/> is then 0).</summary>
    /// <exception cref="InvalidDataException">The bytes are not a valid master message.</exception>
    public static WarmMessage? TryParse(ReadOnlySpan<byte> buffer, out int consumed)
    {
        consumed = 0;
        if (buffer.Length < HeaderLength)
            return null;
        var length = BinaryPrimitives.ReadUInt32LittleEndian(buffer);
        var type = BinaryPrimitives.ReadUInt32LittleEndian(buffer[4..]);
        var expected = type switch
        {
            Hello => 12u,
            Pid => 8u,
            Exit => 8u,
            StatsType => 8u,
            _ => throw new InvalidDataException($"warm master sent an unknown frame type {type}"),
        };
        if (length != expected)
            throw new InvalidDataException($"warm master sent a type {type} frame of {length} bytes, expected {expected}");
        if (buffer.Length < HeaderLength + length)
            return null;
        var p = buffer.Slice(HeaderLength, (int)length);
        var a = BinaryPrimitives.ReadInt32LittleEndian(p);
        var b = BinaryPrimitives.ReadInt32LittleEndian(p[4..]);
        consumed = HeaderLength + (int)length;
        return type switch
        {
            Hello => new WarmMessage.Hello((uint)a, b, BinaryPrimitives.ReadInt32LittleEndian(p[8..])),
            Pid => new WarmMessage.Forked((uint)a, b),
            StatsType => new WarmMessage.Stats((uint)a, (uint)b),
            _ => new WarmMessage.Exited(a, b),
        };
    }

    /// <summary>Decodes a raw wait status as the launcher reports it: death by signal N is exit code
    /// 128+N with the signal named; a normal exit is its code, whatever its value.</summary>
    public static RankExit ToRankExit(int status)
    {
        var low = status & 0x7f;
        if (low == 0)
            return new RankExit((status >> 8) & 0xff, null);
        if (low != 0x7f)
            return new RankExit(128 + low, low);
        return new RankExit(255, null); // stopped: not reported by waitpid without WUNTRACED
    }
}
