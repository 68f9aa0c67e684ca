using NLog;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>
/// The warm masters of one job: one per distinct program (executable and arguments, so MPMD
/// blocks each get their own), started on the first rank that needs it. Each connects through a
/// socket in a per-job 0700 directory (in the per-user folder) that exists only while a master is connecting (teardown
/// removes it in any case). Where a program cannot be a master, says why once at -v and answers
/// null: that program's ranks start cold.
/// </summary>
internal sealed class WarmMasters : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Process");

    /// <summary>Variables that differ between ranks: kept out of the master's environment (a master
    /// that ran main() by mistake must not join the job) and sent last to each clone.</summary>
    internal static readonly HashSet<string> PerRankVariables = new(StringComparer.Ordinal)
    {
        "PMI_FD", "PMI_PORT", "PMI_ID", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "MPI_APPNUM", "PMI_SPAWNED",
        "SFWARM_ISOLATE",
    };

    private readonly string _jobId;
    private readonly string _library;
    private readonly TimeSpan _connectWithin;
    private readonly Dictionary<string, Task<WarmMaster?>> _masters = new(StringComparer.Ordinal);
    private readonly object _gate = new();
    private string? _directory;
    private bool _disposed;
    /// <summary>With <c>--vm</c>: the warm VM's master, which every rank of the job forks from.</summary>
    private readonly Task<WarmMaster?>? _attached;

    public WarmMasters(string jobId, string library, TimeSpan connectWithin)
    {
        _jobId = jobId;
        _library = library;
        _connectWithin = connectWithin;
    }

    /// <summary>The masters of a job that forks every rank from a warm VM's master (already connected).</summary>
    public WarmMasters(string jobId, WarmMaster attached)
        : this(jobId, "", TimeSpan.Zero)
    {
        _attached = Task.FromResult<WarmMaster?>(attached);
        _masters[""] = _attached;
    }

    /// <summary>The master for <paramref name="start"/>'s program, started if needed; null: start it cold.</summary>
    public Task<WarmMaster?> ForAsync(RankStart start, CancellationToken ct)
    {
        if (_attached is not null)
            return _attached;
        var key = start.Executable + "\0" + string.Join("\0", start.Arguments);
        lock (_gate)
        {
            if (_disposed)
                return Task.FromResult<WarmMaster?>(null);
            if (!_masters.TryGetValue(key, out var master))
            {
                master = StartAsync(start, _masters.Count, ct);
                _masters[key] = master;
            }
            return master;
        }
    }

    private async Task<WarmMaster?> StartAsync(RankStart first, int index, CancellationToken ct)
    {
        if (WarmEligibility.WhyNot(first.Executable) is { } why)
            return Cold(first.Executable, why);
        string? profile = null, preload = null;
        try
        {
            var socket = Path.Combine(Directory(), $"m{index}.sock");
            var env = first.Environment.Where(kv => !PerRankVariables.Contains(kv.Key)).ToDictionary(StringComparer.Ordinal);
            // Room for each clone's own environment in the area /proc/PID/environ shows (libsfwarm
            // rewrites it there when it fits): the per-rank variables plus some slack.
            env["SFWARM_PAD"] = new string('.', 4096);
            profile = WarmProfile.PathFor(first.Executable);
            preload = WarmProfile.PreloadList(profile);
            if (!string.IsNullOrEmpty(preload))
                env["SFWARM_PRELOAD"] = preload;
            var master = await WarmMaster.StartAsync(_library, socket, first, env, _connectWithin, ct).ConfigureAwait(false);
            if (preload is null && WarmProfile.PrepareToRecord(profile))
                master.RecordProfileTo(profile);
            Log.ForDebugEvent().Message("warm master {Pid} of {Program} is ready ({Profile})", master.Pid, first.Executable,
                    preload is null ? "recording its warm profile" : $"warm profile: {preload.Split(':', StringSplitOptions.RemoveEmptyEntries).Length} libraries preloaded")
                .Property("EventName", "WarmMasterReady").Log();
            return master;
        }
        catch (Exception e) when (e is WarmUnavailableException or IOException or UnauthorizedAccessException)
        {
            if (!string.IsNullOrEmpty(preload) && profile is not null)
                WarmProfile.Forget(profile);
            return Cold(first.Executable, e.Message);
        }
        finally
        {
            // The socket is only needed until the master connects: with the directory gone at
            // once, even a job whose sfrun and masters were all SIGKILLed leaves nothing behind.
            RemoveDirectory();
        }
    }

    private void RemoveDirectory()
    {
        lock (_gate)
        {
            if (_directory is null)
                return;
            try
            {
                // The master may have removed it as it exited; SafeTree follows no link put there.
                SafeTree.Delete(_directory);
            }
            catch (IOException e)
            {
                Log.ForWarnEvent().Message("cannot remove {Dir}: {Error}", _directory, e.Message).Property("EventName", "WarmDirectoryLeft").Log();
            }
            _directory = null;
        }
    }

    /// <summary>The clone's environment in the order the master got it, per-rank variables last:
    /// strings that library constructors may have kept pointers to stay where they were.</summary>
    public static IEnumerable<KeyValuePair<string, string>> CloneEnvironment(IReadOnlyDictionary<string, string> environment) =>
        environment.Where(kv => !PerRankVariables.Contains(kv.Key)).Concat(environment.Where(kv => PerRankVariables.Contains(kv.Key)));

    private static WarmMaster? Cold(string program, string why)
    {
        Log.ForDebugEvent().Message("warm fork off for {Program}, ranks start cold: {Reason}", program, why)
            .Property("EventName", "WarmForkUnavailable").Log();
        return null;
    }

    /// <summary>The job's socket directory: a fresh 0700 folder warm-JOB-XXXXXX in the per-user
    /// folder, which no other user can enter, make first or swap.</summary>
    private string Directory()
    {
        lock (_gate)
        {
            if (_directory is not null)
                return _directory;
            if (!OperatingSystem.IsLinux())
                throw new IOException("warm fork needs Linux");
            _directory = PrivateDirectory.CreateUnique(PrivateDirectory.PerUser, $"warm-{_jobId}-");
            return _directory;
        }
    }

    /// <summary>Ends every master (each kills and reaps its clones) and removes the socket directory.</summary>
    public async ValueTask DisposeAsync()
    {
        Task<WarmMaster?>[] masters;
        lock (_gate)
        {
            _disposed = true;
            masters = [.. _masters.Values];
        }
        foreach (var task in masters)
        {
            WarmMaster? master;
            try
            {
                master = await task.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                continue;
            }
            if (master is not null)
                await master.DisposeAsync().ConfigureAwait(false);
        }
        RemoveDirectory();
    }
}
