using System.Buffers;
using System.IO.Pipelines;
using System.Text;

namespace Snowflock.Launcher.Internal;

/// <summary>
/// Re-assembles one rank stream into whole lines (MPICH makes rank stdout unbuffered, so a line
/// may arrive in many writes) and hands each line, with its <c>[rank] </c> tag if asked, to a sink.
/// Bytes pass through unchanged: no decoding, binary output survives.
/// </summary>
internal static class LineForwarder
{
    /// <summary>A line longer than this is passed on in pieces rather than held without bound.</summary>
    public const int MaxHeldLine = 16 * 1024 * 1024;

    public static async Task ForwardAsync(Stream source, OutputSink sink, byte[]? tag, CancellationToken ct)
    {
        var reader = PipeReader.Create(source, new StreamPipeReaderOptions(bufferSize: 64 * 1024, leaveOpen: true));
        var midLine = false;
        try
        {
            while (true)
            {
                ReadResult result;
                try
                {
                    result = await reader.ReadAsync(ct).ConfigureAwait(false);
                }
                catch (IOException)
                {
                    return;
                }
                var buffer = result.Buffer;
                while (buffer.PositionOf((byte)'\n') is { } newline)
                {
                    var end = buffer.GetPosition(1, newline);
                    await sink.WriteAsync(Frame(tag, midLine, buffer.Slice(0, end)), ct).ConfigureAwait(false);
                    midLine = false;
                    buffer = buffer.Slice(end);
                }
                if (buffer.Length > 0 && (result.IsCompleted || buffer.Length >= MaxHeldLine))
                {
                    await sink.WriteAsync(Frame(tag, midLine, buffer), ct).ConfigureAwait(false);
                    midLine = true;
                    buffer = buffer.Slice(buffer.End);
                }
                reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                    return;
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    public static byte[] TagFor(int rank) => Encoding.ASCII.GetBytes($"[{rank}] ");

    private static byte[] Frame(byte[]? tag, bool continuation, ReadOnlySequence<byte> line)
    {
        var prefix = tag is null || continuation ? 0 : tag.Length;
        var bytes = new byte[prefix + line.Length];
        if (prefix > 0)
            tag!.CopyTo(bytes, 0);
        line.CopyTo(bytes.AsSpan(prefix));
        return bytes;
    }
}
