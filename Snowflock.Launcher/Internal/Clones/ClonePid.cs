using System.Runtime.InteropServices;

namespace Snowflock.Launcher.Internal.Clones;

/// <summary>
/// One recorded clone, held by a pidfd: a pid can be reused once its process is reaped, a pidfd
/// cannot, so killing it at teardown never hits a stranger. Opened while the clone is still
/// unreaped (its parent waits for the agent's reply before it can join), and only if it really is
/// a child of the process that reported it.
/// </summary>
internal sealed partial class ClonePid : IDisposable
{
    private const int ESRCH = 3, SIGKILL = 9;

    [LibraryImport("libc", EntryPoint = "pidfd_open", SetLastError = true)]
    private static partial int PidfdOpen(int pid, uint flags);

    [LibraryImport("libc", EntryPoint = "pidfd_send_signal", SetLastError = true)]
    private static partial int PidfdSendSignal(int pidfd, int signal, nint info, uint flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    public static partial uint EffectiveUid();

    private int _fd;

    private ClonePid(int pid, int fd)
    {
        Pid = pid;
        _fd = fd;
    }

    public int Pid { get; }

    /// <summary>A handle on <paramref name="pid"/>, or null with <paramref name="why"/> if it is not
    /// (or no longer) a child of <paramref name="parent"/>.</summary>
    public static ClonePid? Open(int pid, int parent, out string? why)
    {
        var fd = PidfdOpen(pid, 0);
        if (fd < 0)
        {
            why = $"pid {pid}: pidfd_open failed: errno {Marshal.GetLastPInvokeError()}";
            return null;
        }
        // Checked after the open: from here on the pid cannot be reused under us.
        if (ParentOf(pid) != parent)
        {
            Close(fd);
            why = $"pid {pid} is not a child of pid {parent}";
            return null;
        }
        why = null;
        return new ClonePid(pid, fd);
    }

    /// <summary>SIGKILL; false if the clone had already ended.</summary>
    public bool Kill()
    {
        if (_fd < 0)
            return false;
        if (PidfdSendSignal(_fd, SIGKILL, 0, 0) == 0)
            return true;
        var errno = Marshal.GetLastPInvokeError();
        return errno == ESRCH ? false : throw new IOException($"pidfd_send_signal(pid {Pid}) failed: errno {errno}");
    }

    public void Dispose()
    {
        if (_fd >= 0)
            Close(_fd);
        _fd = -1;
    }

    /// <summary>The parent pid of a process (field 4 of /proc/PID/stat), or -1 if it is gone.</summary>
    public static int ParentOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields.Length > 1 && int.TryParse(fields[1], out var ppid) ? ppid : -1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    /// <summary>True if <paramref name="pid"/> is <paramref name="ancestor"/> or descends from it.</summary>
    public static bool DescendsFrom(int pid, int ancestor)
    {
        for (var depth = 0; depth < 128 && pid > 1; depth++)
        {
            if (pid == ancestor)
                return true;
            pid = ParentOf(pid);
        }
        return false;
    }
}
