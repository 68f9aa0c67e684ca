using System.Threading.Channels;

namespace Snowflock.Launcher.Internal;

/// <summary>
/// One destination of rank output (sfrun's stdout, stderr, or a pattern file). Its writer task is
/// the only code touching the stream, so lines from many ranks never interleave mid-line.
/// </summary>
internal sealed class OutputSink : IAsyncDisposable
{
    private readonly Channel<byte[]> _lines = Channel.CreateUnbounded<byte[]>(new() { SingleReader = true });
    private readonly Stream _stream;
    private readonly bool _ownsStream;
    private readonly Task _writer;

    public OutputSink(Stream stream, bool ownsStream)
    {
        _stream = stream;
        _ownsStream = ownsStream;
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>True once the destination failed (e.g. stdout is a closed pipe); output is then dropped.</summary>
    public bool Broken { get; private set; }

    public void Write(byte[] chunk) => _lines.Writer.TryWrite(chunk);

    private async Task WriteLoopAsync()
    {
        var buffered = new BufferedStream(_stream, 64 * 1024);
        var reader = _lines.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out var chunk))
            {
                if (Broken)
                    continue;
                try
                {
                    await buffered.WriteAsync(chunk).ConfigureAwait(false);
                }
                catch (IOException)
                {
                    Broken = true;
                }
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
