using System.Threading.Channels;

namespace Snowflock.Launcher.Internal;

/// <summary>
/// One destination of rank output (sfrun's stdout, stderr, or a pattern file). Its writer task is
/// the only code touching the stream, so lines from many ranks never interleave mid-line. What is
/// queued is bounded in bytes: when the destination is slower than the ranks, writers wait, their
/// pipes fill, and the ranks block in write() — backpressure, as with hydra — instead of sfrun
/// holding all of the output in memory.
/// </summary>
internal sealed class OutputSink : IAsyncDisposable
{
    /// <summary>Bytes queued before writers wait: enough to keep a fast destination busy, small
    /// next to the memory a job's output could otherwise take.</summary>
    public const long MaxQueuedBytes = 1 << 20;

    private readonly Channel<byte[]> _lines = Channel.CreateUnbounded<byte[]>(new() { SingleReader = true });
    private readonly Stream _stream;
    private readonly bool _ownsStream;
    private readonly Task _writer;
    private readonly object _gate = new();
    private long _queued;
    private long _written;
    private TaskCompletionSource? _room;

    public OutputSink(Stream stream, bool ownsStream)
    {
        _stream = stream;
        _ownsStream = ownsStream;
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>True once the destination failed (e.g. stdout is a closed pipe); output is then dropped.</summary>
    public bool Broken { get; private set; }

    /// <summary>Bytes taken off the queue so far: grows while the destination makes progress.</summary>
    public long Written => Interlocked.Read(ref _written);

    /// <summary>Queues a chunk, waiting while <see cref="MaxQueuedBytes"/> are already queued (a
    /// chunk is let in whole when the queue is below the bound, so one long line never blocks for ever).</summary>
    public async ValueTask WriteAsync(byte[] chunk, CancellationToken ct)
    {
        while (true)
        {
            Task wait;
            lock (_gate)
            {
                if (_queued < MaxQueuedBytes || Broken)
                {
                    _queued += chunk.Length;
                    _lines.Writer.TryWrite(chunk);
                    return;
                }
                _room ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _room.Task;
            }
            await wait.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    private void Took(int length)
    {
        TaskCompletionSource? room = null;
        lock (_gate)
        {
            _queued -= length;
            if (_queued < MaxQueuedBytes)
                (room, _room) = (_room, null);
        }
        Interlocked.Add(ref _written, length);
        room?.TrySetResult();
    }

    private async Task WriteLoopAsync()
    {
        var buffered = new BufferedStream(_stream, 64 * 1024);
        var reader = _lines.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out var chunk))
            {
                if (!Broken)
                {
                    try
                    {
                        await buffered.WriteAsync(chunk).ConfigureAwait(false);
                    }
                    catch (IOException)
                    {
                        Broken = true;
                    }
                }
                Took(chunk.Length);
            }
            // Flush whenever the queue runs dry: interactive output appears at once, bursts batch.
            if (!Broken)
            {
                try
                {
                    await buffered.FlushAsync().ConfigureAwait(false);
                }
                catch (IOException)
                {
                    Broken = true;
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _lines.Writer.TryComplete();
        await _writer.ConfigureAwait(false);
        if (_ownsStream)
            await _stream.DisposeAsync().ConfigureAwait(false);
    }
}
