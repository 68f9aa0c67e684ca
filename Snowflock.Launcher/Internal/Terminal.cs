using System.Runtime.InteropServices;

namespace Snowflock.Launcher.Internal;

/// <summary>Terminal facts needed to forward stdin without being stopped by SIGTTIN.</summary>
internal static partial class Terminal
{
    [LibraryImport("libc", EntryPoint = "isatty")]
    private static partial int IsATty(int fd);

    [LibraryImport("libc", EntryPoint = "tcgetpgrp")]
    private static partial int TcGetPgrp(int fd);

    [LibraryImport("libc", EntryPoint = "getpgrp")]
    private static partial int GetPgrp();

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int Poll(ref PollFd fds, nuint count, int timeoutMs);

    private const short POLLIN = 1;

    public static bool IsTerminal(int fd) => IsATty(fd) == 1;

    /// <summary>True when reading stdin would stop sfrun: stdin is a terminal and sfrun runs in
    /// the background (`sfrun ... &amp;`, or Ctrl-Z then `bg`), the case of MPICH issue #1029.</summary>
    public static bool StdinReadWouldStop() => IsTerminal(0) && TcGetPgrp(0) != GetPgrp();

    /// <summary>Waits up to <paramref name="timeoutMs"/> for <paramref name="fd"/> to be readable (or
    /// hung up, or failed: a read then says which). poll() of a terminal never stops a background
    /// process, unlike read().</summary>
    public static bool WaitReadable(int fd, int timeoutMs)
    {
        var p = new PollFd { Fd = fd, Events = POLLIN };
        var n = Poll(ref p, 1, timeoutMs);
        // EINTR (a signal such as SIGCONT after `bg`): the caller looks again.
        return n > 0;
    }
}
