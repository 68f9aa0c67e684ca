using System.IO.Pipelines;
using NLog;

namespace Snowflock.Engine.Engines.Xen.Internal;

/// <summary>
/// A watchdog in dom0 for one job, so that nothing of it survives sfrun, not even a SIGKILL: a
/// shell in dom0 (over ssh when remote) that reads its stdin until the end, then destroys every
/// domain named after the job and removes the job's folder. Its stdin is a pipe only this sfrun holds, so it ends when the
/// engine stops the guard after its own teardown, or when this process dies (the kernel closes
/// the pipe; ssh passes the end on). Normally there is nothing left for it to do.
/// </summary>
internal sealed class Dom0Guard : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Xen");

    /// <summary>$1: the job's domain-name prefix; $2: its folder in dom0. Not "wait for the job's
    /// xl processes": xl create/restore leave a monitor process with the same command line for the
    /// domain's whole life. A domain exists from the first moment of its create or restore, so
    /// sweeping three times, two seconds apart, also catches one that an xl command already on
    /// its way when sfrun died adds.</summary>
    private const string Script =
        "exec >/dev/null 2>&1; cat; for round in 1 2 3; do " +
        "for d in $(xl list | awk -v p=\"$1-\" 'index($1, p) == 1 { print $1 }'); do xl destroy \"$d\"; done; sleep 2; done; rm -rf \"$2\"";

    private readonly Pipe _stdin = new();
    private readonly Task _running;

    private Dom0Guard(Dom0Shell shell, string prefix, string folder)
    {
        _running = shell.RunAsync(["sh", "-c", Script, "sh", prefix, folder], Timeout.InfiniteTimeSpan, CancellationToken.None,
            _stdin.Reader.AsStream());
    }

    /// <summary>Starts the guard for domains named <paramref name="prefix"/>-* and the folder <paramref name="folder"/>.</summary>
    public static Dom0Guard Start(Dom0Shell shell, string prefix, string folder) => new(shell, prefix, folder);

    /// <summary>Ends the guard's stdin and waits (bounded) for its sweep, which finds nothing after a clean teardown.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stdin.Writer.CompleteAsync().ConfigureAwait(false);
        try
        {
            await _running.WaitAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or EngineUnavailableException or IOException)
        {
            Log.ForWarnEvent().Message("xen engine: the dom0 guard did not finish: {Error}", e.Message).Property("EventName", "XenGuardFailed").Log();
        }
    }
}
