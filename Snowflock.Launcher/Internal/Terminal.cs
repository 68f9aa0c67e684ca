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

    public static bool IsTerminal(int fd) => IsATty(fd) == 1;

    /// <summary>True when reading stdin would stop sfrun: stdin is a terminal and sfrun runs in
    /// the background (`sfrun ... &amp;`), the case of MPICH issue #1029.</summary>
    public static bool StdinReadWouldStop() => IsTerminal(0) && TcGetPgrp(0) != GetPgrp();
}
