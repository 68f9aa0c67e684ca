namespace Snowflock.Launcher.Internal;

/// <summary>Copies sfrun's stdin to rank 0 and closes rank 0's stdin at EOF, as hydra does.</summary>
internal static class StdinForwarder
{
    /// <summary>How often a terminal stdin is looked at: the delay a keystroke can take to reach rank
    /// 0, and how soon sfrun notices it was brought to the foreground (`fg`).</summary>
    private const int TerminalPollMs = 100;

    public static async Task ForwardAsync(Stream source, Stream rank0, CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            if (Terminal.IsTerminal(0))
                await Task.Factory.StartNew(() => ForwardTerminal(source, rank0, buffer, ct), ct, TaskCreationOptions.LongRunning,
                    TaskScheduler.Default).ConfigureAwait(false);
            else
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

    /// <summary>A terminal is read only while sfrun is in its foreground process group and input is
    /// waiting: a read() from the background stops sfrun with SIGTTIN ("Stopped (tty input)"), so
    /// after Ctrl-Z and `bg` a blocked read would stop the job again. In the background sfrun
    /// waits, as the shell's other background jobs do, and reads again once brought back (`fg`).</summary>
    private static void ForwardTerminal(Stream source, Stream rank0, byte[] buffer, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            if (Terminal.StdinReadWouldStop())
            {
                ct.WaitHandle.WaitOne(TerminalPollMs);
                continue;
            }
            if (!Terminal.WaitReadable(0, TerminalPollMs) || Terminal.StdinReadWouldStop())
                continue;
            var n = source.Read(buffer);
            if (n == 0)
                break;
            rank0.Write(buffer, 0, n);
            rank0.Flush();
        }
    }
}
