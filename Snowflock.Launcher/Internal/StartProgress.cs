namespace Snowflock.Launcher.Internal;

/// <summary>
/// "sfrun: started 37/64 ranks" on stderr while a large job starts, once start-up has taken more
/// than a second, and only when stderr is a terminal (never in logs or batch output). The line is
/// rewritten in place and erased when start-up is done.
/// </summary>
internal sealed class StartProgress(int total, Timeline timeline, TextWriter stderr)
{
    private static readonly double ShowAfterMs = 1000, EveryMs = 100;
    private readonly bool _enabled = Terminal.IsTerminal(2);
    private readonly double _began = timeline.Now;
    private double _lastShown = double.NegativeInfinity;
    private bool _shown;

    public void Started(int count)
    {
        var now = timeline.Now;
        if (!_enabled || now - _began < ShowAfterMs || now - _lastShown < EveryMs)
            return;
        _lastShown = now;
        _shown = true;
        stderr.Write($"\rsfrun: started {count}/{total} ranks ({(now - _began) / 1000:0.0} s)");
        stderr.Flush();
    }

    public void Done()
    {
        if (!_shown)
            return;
        stderr.Write("\r\u001b[K");
        stderr.Flush();
    }
}
