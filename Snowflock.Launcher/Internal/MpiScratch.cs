using System.Runtime.InteropServices;
using NLog;

namespace Snowflock.Launcher.Internal;

/// <summary>
/// One job's directory for the files an MPI library leaves on the host: Open MPI's session directory
/// (<c>ompi.&lt;host&gt;.&lt;uid&gt;/jf.N/...</c>) and its vader shared-memory segments. Open MPI's own
/// mpirun removes them when a job ends; ranks killed after MPI_Abort or a crash cannot, so sfrun
/// points them here and deletes the directory at teardown. Created on first use, in /dev/shm
/// (where vader puts its segments anyway), with mkdtemp: private (0700) and unpredictable.
/// </summary>
internal sealed partial class MpiScratch(string jobId) : IDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Launcher");

    private bool _tried;
    private string? _path;

    [LibraryImport("libc", EntryPoint = "mkdtemp", SetLastError = true)]
    private static partial nint MkdTemp(byte[] template);

    /// <summary>The directory, or null if it cannot be made (the ranks then use Open MPI's defaults).</summary>
    public string? Path
    {
        get
        {
            if (_tried)
                return _path;
            _tried = true;
            var root = Directory.Exists("/dev/shm") ? "/dev/shm" : System.IO.Path.GetTempPath().TrimEnd('/');
            var template = System.Text.Encoding.UTF8.GetBytes($"{root}/sfrun-{jobId}-XXXXXX\0");
            if (MkdTemp(template) == 0)
            {
                Log.ForWarnEvent().Message("job {JobId}: mkdtemp in {Root} failed (errno {Errno}); Open MPI files go to its defaults",
                    jobId, root, Marshal.GetLastSystemError()).Property("EventName", "ScratchFailed").Log();
                return null;
            }
            _path = System.Text.Encoding.UTF8.GetString(template, 0, template.Length - 1);
            return _path;
        }
    }

    public void Dispose()
    {
        if (_path is null)
            return;
        try
        {
            Directory.Delete(_path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.ForWarnEvent().Message("job {JobId}: cannot remove {Path}: {Error}", jobId, _path, e.Message)
                .Property("EventName", "ScratchLeft").Log();
        }
        _path = null;
    }
}
