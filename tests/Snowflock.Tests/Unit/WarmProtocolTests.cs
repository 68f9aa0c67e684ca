using System.Buffers.Binary;
using System.Text;
using Snowflock.Engine;
using Snowflock.Engine.Engines.Process.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>The warm master's wire format (native/warm/protocol.h): frames as libsfwarm.so writes
/// them, fork requests as it parses them, raw wait statuses, and random bytes.</summary>
[Trait("Area", "unit")]
public sealed class WarmProtocolTests
{
    private static byte[] Frame(uint type, params int[] words)
    {
        var f = new byte[8 + 4 * words.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(f, (uint)(4 * words.Length));
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(4), type);
        for (var i = 0; i < words.Length; i++)
            BinaryPrimitives.WriteInt32LittleEndian(f.AsSpan(8 + 4 * i), words[i]);
        return f;
    }

    [Fact]
    public void Master_messages_parse_one_frame_at_a_time()
    {
        byte[] stream = [.. Frame(1, 1, 4242, 1), .. Frame(3, 7, 4243), .. Frame(4, 4243, 139 << 8)];
        var messages = new List<WarmMessage>();
        var at = 0;
        while (WarmProtocol.TryParse(stream.AsSpan(at), out var used) is { } m)
        {
            messages.Add(m);
            at += used;
        }
        Assert.Equal(stream.Length, at);
        Assert.Equal<WarmMessage>([new WarmMessage.Hello(1, 4242, 1), new WarmMessage.Forked(7, 4243), new WarmMessage.Exited(4243, 139 << 8)], messages);
    }

    [Fact]
    public void A_partial_frame_waits_for_more_bytes()
    {
        var f = Frame(4, 1, 2);
        for (var n = 0; n < f.Length; n++)
        {
            Assert.Null(WarmProtocol.TryParse(f.AsSpan(0, n), out var used));
            Assert.Equal(0, used);
        }
    }

    [Theory]
    [InlineData(2u, 8u)]   // a fork request comes from sfrun, never from the master
    [InlineData(9u, 8u)]
    [InlineData(4u, 12u)]
    [InlineData(1u, 0xffffffffu)]
    public void Unknown_types_and_wrong_lengths_are_rejected(uint type, uint length)
    {
        var f = new byte[8 + 16];
        BinaryPrimitives.WriteUInt32LittleEndian(f, length);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(4), type);
        Assert.Throws<InvalidDataException>(() => WarmProtocol.TryParse(f, out _));
    }

    [Fact]
    public void A_fork_request_carries_rank_directory_and_environment_in_order()
    {
        var f = WarmProtocol.EncodeFork(5, 3, "/work", [new("A", "1"), new("PMI_RANK", "3")]);
        Assert.Equal((uint)(f.Length - 8), BinaryPrimitives.ReadUInt32LittleEndian(f));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(4)));
        var p = f.AsSpan(8);
        Assert.Equal(5u, BinaryPrimitives.ReadUInt32LittleEndian(p));
        Assert.Equal(3, BinaryPrimitives.ReadInt32LittleEndian(p[4..]));
        Assert.Equal(5u, BinaryPrimitives.ReadUInt32LittleEndian(p[8..]));
        Assert.Equal("/work", Encoding.UTF8.GetString(p.Slice(12, 5)));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(p[17..]));
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32LittleEndian(p[21..]));
        Assert.Equal("A=1", Encoding.UTF8.GetString(p.Slice(25, 3)));
        Assert.Equal(10u, BinaryPrimitives.ReadUInt32LittleEndian(p[28..]));
        Assert.Equal("PMI_RANK=3", Encoding.UTF8.GetString(p.Slice(32, 10)));
        Assert.Equal(42, p.Length);
    }

    [Fact]
    public void Strings_with_NUL_cannot_be_sent()
    {
        Assert.Throws<ArgumentException>(() => WarmProtocol.EncodeFork(1, 0, "/", [new("A", "x\0y")]));
    }

    [Fact]
    public void Per_rank_variables_go_last_and_the_rest_keep_their_order()
    {
        var env = new Dictionary<string, string> { ["B"] = "1", ["PMI_ID"] = "0", ["A"] = "2", ["PMI_PORT"] = "h:1", ["C"] = "3" };
        Assert.Equal(["B", "A", "C", "PMI_ID", "PMI_PORT"], WarmMasters.CloneEnvironment(env).Select(kv => kv.Key));
    }

    [Theory]
    [InlineData(0, 0, null)]
    [InlineData(3 << 8, 3, null)]
    [InlineData(139 << 8, 139, null)]   // exit(139) is not SIGSEGV
    [InlineData(255 << 8, 255, null)]
    [InlineData(11, 139, 11)]           // killed by SIGSEGV
    [InlineData(11 | 0x80, 139, 11)]    // ... with a core dump
    [InlineData(9, 137, 9)]
    public void Raw_wait_statuses_decode_exactly(int status, int exitCode, int? signal)
    {
        Assert.Equal(new RankExit(exitCode, signal), WarmProtocol.ToRankExit(status));
    }

    [Fact]
    public void Random_bytes_never_crash_the_parser()
    {
        var random = new Random(1234);
        for (var i = 0; i < 20000; i++)
        {
            var bytes = new byte[random.Next(0, 40)];
            random.NextBytes(bytes);
            if (bytes.Length >= 8 && random.Next(2) == 0)
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), (uint)random.Next(1, 5));
            try
            {
                var m = WarmProtocol.TryParse(bytes, out var used);
                Assert.True(m is null ? used == 0 : used > 0 && used <= bytes.Length);
            }
            catch (InvalidDataException)
            {
            }
        }
    }
}
