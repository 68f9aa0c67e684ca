using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>A rank forked from a warm master. Its stdio are pipes sfrun made; it ends when the
/// master reports its raw wait status, so an <c>exit(139)</c> and a SIGSEGV read differently.</summary>
internal sealed class WarmRankProcess : IRankProcess
{
    private readonly int _pid;
    private readonly Func<string> _location;

    public WarmRankProcess(int rank, int pid, Func<string> location, Stream input, Stream output, Stream error, Task<int> status)
    {
        Rank = rank;
        _pid = pid;
        _location = location;
        StandardInput = input;
        StandardOutput = output;
        StandardError = error;
        Exited = status.ContinueWith(t => WarmProtocol.ToRankExit(t.Result), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    public int Rank { get; }
    /// <summary>Read when the job reports: by then it may say that the rank's warm VM died.</summary>
    public string Location => _location();
    public int? HostPid => _pid;
    public Stream StandardInput { get; }
    public Stream StandardOutput { get; }
    public Stream StandardError { get; }
    public Task<RankExit> Exited { get; }

    public void Signal(int signal)
    {
        // The pid stays ours until the master reaps the clone; only between that reap and its report
        // (microseconds) could a signal reach a recycled pid.
        if (Exited.IsCompleted)
            return;
        Posix.TrySignal(_pid, signal);
    }

    public async ValueTask DisposeAsync()
    {
        Signal(Signals.SIGKILL);
        await Exited.ConfigureAwait(false);
        await StandardInput.DisposeAsync().ConfigureAwait(false);
        await StandardOutput.DisposeAsync().ConfigureAwait(false);
        await StandardError.DisposeAsync().ConfigureAwait(false);
    }
}
