using System.Runtime.InteropServices;

namespace Snowflock.Engine.Internal;

/// <summary>The few libc calls .NET has no API for.</summary>
internal static partial class Posix
{
    private const int ESRCH = 3;
    private const int PR_SET_CHILD_SUBREAPER = 36;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int arg);

    private const int F_SETFD = 2, FD_CLOEXEC = 1, F_DUPFD_CLOEXEC = 1030;

    /// <summary>A second, close-on-exec descriptor of the same open socket, owned by the caller.</summary>
    /// <exception cref="IOException">fcntl failed (out of fds).</exception>
    public static System.Net.Sockets.Socket DuplicateSocket(System.Net.Sockets.Socket socket)
    {
        var fd = Fcntl((int)socket.Handle, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            throw new IOException($"fcntl(F_DUPFD_CLOEXEC) failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        return new System.Net.Sockets.Socket(new System.Net.Sockets.SafeSocketHandle(fd, ownsHandle: true));
    }

    /// <summary>Sets or clears close-on-exec on <paramref name="fd"/>.</summary>
    /// <exception cref="IOException">fcntl failed (the fd is not open).</exception>
    public static void SetCloseOnExec(int fd, bool on)
    {
        if (Fcntl(fd, F_SETFD, on ? FD_CLOEXEC : 0) != 0)
            throw new IOException($"fcntl(F_SETFD) of fd {fd} failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
    }

    /// <summary>Sends a signal; false if the process no longer exists.</summary>
    public static bool TrySignal(int pid, int signal)
    {
        if (Kill(pid, signal) == 0)
            return true;
        var errno = Marshal.GetLastPInvokeError();
        if (errno == ESRCH)
            return false;
        throw new IOException($"kill({pid}, {signal}) failed: errno {errno}");
    }

    /// <summary>Makes orphaned descendants (a rank's own children) reparent to this process
    /// instead of init, so teardown can find and kill them.</summary>
    public static void BecomeSubreaper()
    {
        if (Prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
            throw new IOException($"prctl(PR_SET_CHILD_SUBREAPER) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Live (non-zombie) children of this process, read from /proc.</summary>
    public static List<int> LiveChildren()
    {
        var self = Environment.ProcessId;
        var children = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
                continue;
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }
            // Fields after the parenthesised command name: state ppid ...
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (fields.Length > 1 && fields[0] != "Z" && int.TryParse(fields[1], out var ppid) && ppid == self)
                children.Add(pid);
        }
        return children;
    }
}
