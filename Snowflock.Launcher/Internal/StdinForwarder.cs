namespace Snowflock.Launcher.Internal;

/// <summary>Copies sfrun's stdin to rank 0 and closes rank 0's stdin at EOF, as hydra does.</summary>
internal static class StdinForwarder
{
    public static async Task ForwardAsync(Stream source, Stream rank0, CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            if (!Terminal.StdinReadWouldStop())
            {
                while (true)
                {
                    var n = await source.ReadAsync(buffer, ct).ConfigureAwait(false);
                    if (n == 0)
                        break;
                    await rank0.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                    await rank0.FlushAsync(ct).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // Rank 0 gone or job over: nothing left to feed.
        }
        finally
        {
            try
            {
                rank0.Dispose();
            }
            catch (IOException)
            {
            }
        }
    }
}
