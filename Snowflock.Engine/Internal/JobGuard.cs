using System.Diagnostics;
using NLog;
using SysProcess = System.Diagnostics.Process;

namespace Snowflock.Engine.Internal;

/// <summary>
/// Makes sure nothing of a job outlives it: its processes and the MPI segments they leave in
/// /dev/shm. The job gets a cgroup of its own (<c>snowflock/JOBID</c> below sfrun's own cgroup in
/// the cgroup2 hierarchy, where writable) which every rank and warm master joins before its
/// program runs (<see cref="Variable"/>), so a fork chain — each child forking its successor and
/// exiting — cannot leave it as it leaves a parent, a session and any scan of /proc. native/warm's
/// sfjob-guard, started here outside that cgroup with a pipe only sfrun holds, ends the job when
/// the pipe closes: at teardown, or when the kernel closes it because sfrun was SIGKILLed. It
/// kills the cgroup (<c>cgroup.kill</c>), removes it, removes the job's unused MPI segments, and
/// first sweeps the cgroups of dead jobs that no guard ended.
/// Without a writable cgroup2 (another user's cgroup, an old kernel, no cgroup2 mount) the job
/// has none and teardown falls back to killing the orphans sfrun, as subreaper, inherits.
/// </summary>
internal sealed class JobGuard : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Teardown");

    /// <summary>The variable sfwarm-exec and libsfwarm read: the cgroup a process joins before the program runs.</summary>
    public const string Variable = "SFWARM_CGROUP";

    /// <summary>How long the guard may take to end the job once sfrun lets go.</summary>
    private static readonly TimeSpan EndWithin = TimeSpan.FromSeconds(15);

    private readonly SysProcess? _guard;

    private JobGuard(string? cgroup, SysProcess? guard)
    {
        Cgroup = cgroup;
        _guard = guard;
    }

    /// <summary>The job's cgroup directory, or null where none could be made.</summary>
    public string? Cgroup { get; }

    /// <summary>Makes the job's cgroup and starts its guard; never fails the job (without either,
    /// teardown is what it was: kill the ranks and the orphans).</summary>
    public static JobGuard Start(string jobId)
    {
        var cgroup = CreateCgroup(jobId);
        var helper = NativeHelpers.Find("sfjob-guard");
        if (helper is null)
        {
            Log.ForDebugEvent().Message("job {JobId}: sfjob-guard not found; a SIGKILLed sfrun leaves the job's cgroup to the next job", jobId)
                .Property("EventName", "JobGuardUnavailable").Log();
            return new JobGuard(cgroup, null);
        }
        var psi = new ProcessStartInfo(helper) { UseShellExecute = false, RedirectStandardInput = true };
        psi.ArgumentList.Add(cgroup ?? "-");
        // The job's start, for telling its /dev/shm segments from older ones.
        var startNs = (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
        psi.ArgumentList.Add(startNs.ToString(System.Globalization.CultureInfo.InvariantCulture));
        try
        {
            var guard = SysProcess.Start(psi);
            Log.ForDebugEvent().Message("job {JobId}: guard {Pid} for cgroup {Cgroup}", jobId, guard?.Id, cgroup ?? "(none)")
                .Property("EventName", "JobGuardStarted").Log();
            return new JobGuard(cgroup, guard);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Log.ForDebugEvent().Message("job {JobId}: cannot start {Helper}: {Error}", jobId, helper, e.Message)
                .Property("EventName", "JobGuardUnavailable").Log();
            return new JobGuard(cgroup, null);
        }
    }

    /// <summary>Creates <c>snowflock/JOBID</c> under sfrun's own cgroup; null (said why at -v) where it cannot.</summary>
    private static string? CreateCgroup(string jobId)
    {
        if (Environment.GetEnvironmentVariable("SFRUN_CGROUP") == "0")
            return Unavailable(jobId, "SFRUN_CGROUP=0");
        string? own;
        try
        {
            own = OwnCgroupDirectory(File.ReadAllLines("/proc/self/mountinfo"), File.ReadAllLines("/proc/self/cgroup"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Unavailable(jobId, e.Message);
        }
        if (own is null)
            return Unavailable(jobId, "no cgroup2 mount shows sfrun's own cgroup");
        var job = Path.Combine(own, "snowflock", jobId);
        try
        {
            // The parent stays, as a per-user folder does: it is where guards sweep dead jobs.
            Directory.CreateDirectory(Path.Combine(own, "snowflock"));
            Directory.CreateDirectory(job);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Unavailable(jobId, e.Message);
        }
        if (!File.Exists(Path.Combine(job, "cgroup.kill")) && !File.Exists(Path.Combine(job, "cgroup.freeze")))
        {
            try
            {
                Directory.Delete(job);
            }
            catch (IOException)
            {
            }
            return Unavailable(jobId, "the kernel has neither cgroup.kill nor cgroup.freeze");
        }
        return job;
    }

    private static string? Unavailable(string jobId, string why)
    {
        Log.ForDebugEvent().Message("job {JobId}: no cgroup of its own ({Reason}); teardown kills orphans by scanning", jobId, why)
            .Property("EventName", "JobCgroupUnavailable").Log();
        return null;
    }

    /// <summary>sfrun's own cgroup as a directory: the cgroup2 mount (from mountinfo) joined with
    /// the path of the <c>0::</c> line of /proc/self/cgroup, relative to the mount's root. Null
    /// when there is no cgroup2 mount, or the mount does not show that cgroup.</summary>
    internal static string? OwnCgroupDirectory(IEnumerable<string> mountinfo, IEnumerable<string> cgroup)
    {
        var path = cgroup.FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal))?[3..];
        if (path is null || !path.StartsWith('/'))
            return null;
        foreach (var line in mountinfo)
        {
            // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
            var dash = line.IndexOf(" - ", StringComparison.Ordinal);
            if (dash < 0 || !line[(dash + 3)..].StartsWith("cgroup2 ", StringComparison.Ordinal))
                continue;
            var fields = line[..dash].Split(' ');
            if (fields.Length < 5)
                continue;
            var root = Unescape(fields[3]);
            var mount = Unescape(fields[4]);
            if (root == "/")
                return path == "/" ? mount : mount + path;
            if (path == root)
                return mount;
            if (path.StartsWith(root + "/", StringComparison.Ordinal))
                return mount + path[root.Length..];
        }
        return null;
    }

    /// <summary>mountinfo writes space, tab, newline and backslash as octal escapes.</summary>
    private static string Unescape(string field) =>
        field.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal)
            .Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);

    /// <summary>Ends the job: closes the guard's pipe and waits until it has killed the cgroup,
    /// removed it and the job's segments.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_guard is null)
            return;
        try
        {
            _guard.StandardInput.Close();
        }
        catch (IOException)
        {
        }
        using var bound = new CancellationTokenSource(EndWithin);
        try
        {
            await _guard.WaitForExitAsync(bound.Token).ConfigureAwait(false);
            if (_guard.ExitCode != 0)
                Log.ForWarnEvent().Message("the job's guard exited with code {Code}; see its message above", _guard.ExitCode)
                    .Property("EventName", "JobGuardFailed").Log();
        }
        catch (OperationCanceledException)
        {
            Log.ForWarnEvent().Message("the job's guard {Pid} did not end the job within {Seconds} s", _guard.Id, EndWithin.TotalSeconds)
                .Property("EventName", "JobGuardStalled").Log();
        }
        _guard.Dispose();
    }
}
