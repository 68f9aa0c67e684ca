using NLog;
using Snowflock.Engine.Internal;

namespace Snowflock.Launcher.Internal;

/// <summary>
/// One job's directory for the files an MPI library leaves on the host: Open MPI's session directory
/// (<c>ompi.&lt;host&gt;.&lt;uid&gt;/jf.N/...</c>) and its vader shared-memory segments. Open MPI's own
/// mpirun removes them when a job ends; ranks killed after MPI_Abort or a crash cannot, so sfrun
/// points them here and deletes the directory at teardown. Created on first use, in /dev/shm
/// (where vader puts its segments anyway), with mkdtemp: private (0700) and unpredictable.
/// </summary>
internal sealed class MpiScratch(string jobId) : IDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Launcher");

    private bool _tried;
    private string? _path;

    /// <summary>The directory, or null if it cannot be made (the ranks then use Open MPI's defaults).</summary>
    public string? Path
    {
        get
        {
            if (_tried)
                return _path;
            _tried = true;
            var root = Directory.Exists("/dev/shm") ? "/dev/shm" : System.IO.Path.GetTempPath().TrimEnd('/');
            try
            {
                _path = PrivateDirectory.CreateUnique(root, $"sfrun-{jobId}-");
            }
            catch (IOException e)
            {
                Log.ForWarnEvent().Message("job {JobId}: no scratch folder in {Root} ({Error}); Open MPI files go to its defaults",
                    jobId, root, e.Message).Property("EventName", "ScratchFailed").Log();
                return null;
            }
            return _path;
        }
    }

    public void Dispose()
    {
        if (_path is null)
            return;
        try
        {
            SafeTree.Delete(_path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.ForWarnEvent().Message("job {JobId}: cannot remove {Path}: {Error}", jobId, _path, e.Message)
                .Property("EventName", "ScratchLeft").Log();
        }
        _path = null;
    }
}
