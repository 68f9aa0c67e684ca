using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Serialization;
using MPI;

namespace Snowflock.Mpi.DotNet;

/// <summary>MPI.NET's serializer for non-primitive messages (classes, records, strings, arrays of
/// them), in place of BinaryFormatter, which .NET 10 removed. Each object is written as a 4-byte
/// little-endian length and that many bytes of UTF-8 JSON: MPI.NET packs several objects into one
/// buffer for collectives (Gather, Allgather, Alltoall) and reads them back one after another, so
/// each must end where the next begins.
/// <para>What crosses is what System.Text.Json sees: public properties and fields (fields are
/// included), constructor parameters for records; not private state, not the runtime type behind
/// an interface or base class. NaN and infinities round-trip.</para>
/// <para>Large objects: MPI.NET streams them through a <c>BufferedStream</c> over its
/// <c>ActionStream</c>, one MPI message per block of <c>Serialization.BufferSize</c> bytes, and
/// that only holds if no single read or write reaches the block size (BufferedStream would then
/// bypass its buffer and hand MPI.NET a block too big for the receiver's, or a rented array it
/// rejects). So bytes go in chunks: half a block when writing, just under a block when reading.</para></summary>
public sealed class JsonMessageSerializer : ISerializer
{
    private const int LengthBytes = sizeof(int);

    /// <summary>The serializer <see cref="MpiNet"/> installs.</summary>
    public static JsonMessageSerializer Default { get; } = new();

    private readonly JsonSerializerOptions _options;

    /// <param name="options">null for the defaults above; pass options with a source-generated
    /// <c>TypeInfoResolver</c> to avoid reflection. Every rank must use equivalent options.</param>
    public JsonMessageSerializer(JsonSerializerOptions? options = null)
    {
        _options = options ?? new JsonSerializerOptions
        {
            IncludeFields = true,
            NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        };
        _options.MakeReadOnly(populateMissingResolver: true);
    }

    public void Serialize<T>(Stream stream, T value)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var json = JsonSerializer.SerializeToUtf8Bytes(value, _options);
        Span<byte> length = stackalloc byte[LengthBytes];
        BinaryPrimitives.WriteInt32LittleEndian(length, json.Length);
        stream.Write(length);
        var chunk = stream is BufferedStream buffered ? Math.Max(1, buffered.BufferSize / 2) : json.Length;
        for (var offset = 0; offset < json.Length; offset += chunk)
            stream.Write(json, offset, Math.Min(chunk, json.Length - offset));
    }

    public T Deserialize<T>(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> lengthBytes = stackalloc byte[LengthBytes];
        stream.ReadExactly(lengthBytes);
        var length = BinaryPrimitives.ReadInt32LittleEndian(lengthBytes);
        if (length < 0)
            throw new InvalidDataException($"MPI.NET message: negative JSON length {length}; were both sides using {nameof(JsonMessageSerializer)}?");
        var json = new byte[length];
        var chunk = stream is BufferedStream buffered ? Math.Max(1, buffered.BufferSize - 1) : json.Length;
        for (var offset = 0; offset < json.Length; offset += chunk)
            stream.ReadExactly(json, offset, Math.Min(chunk, json.Length - offset));
        DrainStreamedMessage(stream);
        return JsonSerializer.Deserialize<T>(json, _options)!;
    }

    /// <summary>When MPI.NET streams a large object (a <c>BufferedStream</c> over its
    /// <c>ActionStream</c>), a payload that fills its last block exactly is followed by an empty
    /// block that ends it; read up to that end so the next message starts clean. Other streams hold
    /// several objects back to back and are left where this one ended.</summary>
    private static void DrainStreamedMessage(Stream stream)
    {
        if (stream is not BufferedStream { UnderlyingStream: ActionStream })
            return;
        Span<byte> rest = stackalloc byte[1];
        if (stream.Read(rest) != 0)
            throw new InvalidDataException("MPI.NET message: bytes after the JSON object; were both sides using JsonMessageSerializer?");
    }
}
