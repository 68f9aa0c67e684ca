using MPI;
using Snowflock.Mpi.DotNet;

namespace Snowflock.Tests.Unit;

/// <summary>The JSON serializer MPI.NET programs get, on the streams MPI.NET really hands it: a
/// buffer of several objects back to back (collectives) and a BufferedStream over MPI.NET's
/// ActionStream cut into blocks (large point-to-point objects), emulated here message by message.</summary>
[Trait("Area", "unit")]
public sealed class JsonMessageSerializerTests
{
    private sealed record Sample(int Rank, string Text, double[] Values, Inner Nested);

    private sealed record Inner(long Id, string? Note);

    private struct Pair
    {
        public int A;
        public double B;
    }

    private static readonly JsonMessageSerializer Serializer = JsonMessageSerializer.Default;

    private static T RoundTrip<T>(T value)
    {
        var stream = new MemoryStream();
        Serializer.Serialize(stream, value);
        stream.Position = 0;
        var back = Serializer.Deserialize<T>(stream);
        Assert.Equal(stream.Length, stream.Position);
        return back;
    }

    [Fact]
    public void A_record_with_arrays_and_nested_records_round_trips()
    {
        var value = new Sample(3, "héllo, wörld \"quoted\"", [1.5, -0.1, 1e300], new Inner(1L << 40, null));
        var back = RoundTrip(value);
        Assert.Equal(value.Rank, back.Rank);
        Assert.Equal(value.Text, back.Text);
        Assert.Equal(value.Values, back.Values);
        Assert.Equal(value.Nested, back.Nested);
    }

    [Fact]
    public void Public_fields_of_a_struct_cross_too()
    {
        var back = RoundTrip(new Pair { A = 7, B = 0.1 + 0.2 });
        Assert.Equal(7, back.A);
        Assert.Equal(0.1 + 0.2, back.B);
    }

    [Fact]
    public void Doubles_keep_every_bit_and_nan_and_infinities_cross()
    {
        double[] values = [Math.PI, double.Epsilon, double.MaxValue, -0.0, double.NaN, double.PositiveInfinity, double.NegativeInfinity];
        var back = RoundTrip(values);
        Assert.Equal(values.Select(BitConverter.DoubleToInt64Bits), back.Select(BitConverter.DoubleToInt64Bits));
    }

    [Fact]
    public void Null_and_strings_round_trip()
    {
        Assert.Null(RoundTrip<string?>(null));
        Assert.Equal("", RoundTrip(""));
        Assert.Equal(new string('x', 100_000), RoundTrip(new string('x', 100_000)));
    }

    [Fact]
    public void Objects_written_back_to_back_are_read_back_one_at_a_time()
    {
        // Gather, Allgather and Alltoall put every rank's object in one buffer and read them from offsets.
        var stream = new MemoryStream();
        var offsets = new List<long>();
        for (var rank = 0; rank < 5; rank++)
        {
            offsets.Add(stream.Length);
            Serializer.Serialize(stream, new Sample(rank, $"rank {rank}", [rank], new Inner(rank, null)));
        }
        stream.Position = 0;
        for (var rank = 0; rank < 5; rank++)
        {
            Assert.Equal(offsets[rank], stream.Position);
            Assert.Equal($"rank {rank}", Serializer.Deserialize<Sample>(stream).Text);
        }
        Assert.Equal(stream.Length, stream.Position);
    }

    [Fact]
    public void A_cut_short_message_is_an_error_not_a_wrong_value()
    {
        var stream = new MemoryStream();
        Serializer.Serialize(stream, new Inner(1, "note"));
        var cut = new MemoryStream(stream.ToArray()[..^3]);
        Assert.Throws<EndOfStreamException>(() => Serializer.Deserialize<Inner>(cut));
    }

    // ---- MPI.NET's streamed protocol for large objects ----

    private const int Block = 64;

    /// <summary>Message sizes around block boundaries: the 4-byte length and a JSON string of n
    /// ASCII characters (n + 2 bytes) fill exactly k blocks when n = k * Block - 6.</summary>
    public static TheoryData<int> Lengths => new() { 0, 1, Block - 7, Block - 6, Block - 5, 2 * Block - 6, 10 * Block - 6, 10 * Block + 13, 5000 };

    [Theory]
    [MemberData(nameof(Lengths))]
    public void A_large_object_crosses_in_blocks_no_bigger_than_the_receivers(int length)
    {
        var wire = new Wire(Block);
        var text = Text(length);
        wire.Send(Serializer, text);
        Assert.All(wire.Blocks, b => Assert.True(b.Length <= Block, $"a {b.Length}-byte block does not fit the receiver's {Block}-byte buffer"));
        Assert.Equal(text, wire.Receive<string>(Serializer));
        Assert.Empty(wire.Blocks);
    }

    [Fact]
    public void One_receiving_stream_carries_message_after_message()
    {
        // MPI.NET's receive worker keeps one BufferedStream for all the messages it reads.
        var wire = new Wire(Block);
        int[] lengths = [Block - 6, 3, 4 * Block - 6, 300, Block - 6];
        foreach (var length in lengths)
            wire.Send(Serializer, Text(length));
        foreach (var length in lengths)
            Assert.Equal(Text(length), wire.Receive<string>(Serializer));
        Assert.Empty(wire.Blocks);
    }

    private static string Text(int length) => string.Create(length, 0, (span, _) =>
    {
        for (var i = 0; i < span.Length; i++)
            span[i] = (char)('a' + i % 26);
    });

    /// <summary>MPI.NET 1.4.0's send and receive workers (Serialization.StartSendWorker /
    /// StartReceiveWorker) with a queue of blocks in place of MPI messages: a block shorter than
    /// the block size ends an object; one that fills it exactly is followed by an empty block.</summary>
    private sealed class Wire
    {
        private readonly int _blockSize;
        private readonly BufferedStream _receiving;
        private bool _receiveDone;

        public Queue<byte[]> Blocks { get; } = new();

        public Wire(int blockSize)
        {
            _blockSize = blockSize;
            _receiving = new BufferedStream(new ActionStream(ReadBlock, null), blockSize);
        }

        public void Send<T>(ISerializer serializer, T value)
        {
            var done = false;
            using var sending = new BufferedStream(new ActionStream(null, bytes =>
            {
                if (bytes.Length < _blockSize)
                    done = true;
                Blocks.Enqueue(bytes.ToArray());
            }, () =>
            {
                if (!done)
                    Blocks.Enqueue([]);
                done = true;
            }), _blockSize);
            serializer.Serialize(sending, value);
            sending.Flush();
        }

        public T Receive<T>(ISerializer serializer)
        {
            _receiveDone = false;
            return serializer.Deserialize<T>(_receiving);
        }

        private int ReadBlock(byte[] buffer)
        {
            if (_receiveDone)
                return 0;
            Assert.True(Blocks.Count > 0, "the receiver asked for a block the sender never sent");
            var block = Blocks.Dequeue();
            Assert.True(block.Length <= buffer.Length, $"a {block.Length}-byte message into a {buffer.Length}-byte buffer: MPI_ERR_TRUNCATE");
            if (block.Length < _blockSize)
                _receiveDone = true;
            block.CopyTo(buffer, 0);
            return block.Length;
        }
    }
}
