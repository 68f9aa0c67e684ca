using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;

namespace Snowflock.Mpi.Pmi.Internal;

/// <summary>Cuts a PMI connection's bytes into lines: for the head's sessions and for a host
/// agent's proxy alike.</summary>
internal static class PmiLineReader
{
    /// <summary>Hands each line (without its newline) to <paramref name="onLine"/> until EOF,
    /// cancellation, or more than <see cref="PmiWire.MaxLineBytes"/> without a newline, which goes
    /// to <paramref name="onTooLong"/> and ends the reading. A peer that dies mid-line, or a
    /// socket closed by teardown, ends it quietly. The stream stays open.</summary>
    public static async Task ReadAsync(Stream stream, Func<ReadOnlySequence<byte>, ValueTask> onLine,
        Func<ReadOnlySequence<byte>, ValueTask> onTooLong, CancellationToken ct)
    {
        var reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 4096, leaveOpen: true));
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(ct).ConfigureAwait(false);
                var buffer = result.Buffer;
                while (buffer.PositionOf((byte)'\n') is { } newline)
                {
                    await onLine(buffer.Slice(0, newline)).ConfigureAwait(false);
                    buffer = buffer.Slice(buffer.GetPosition(1, newline));
                }
                if (buffer.Length > PmiWire.MaxLineBytes)
                {
                    await onTooLong(buffer).ConfigureAwait(false);
                    return;
                }
                reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                    return;
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }
}
