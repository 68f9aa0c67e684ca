using System.Runtime.InteropServices;

namespace Snowflock.Engine.Internal;

/// <summary>The few libc calls .NET has no API for.</summary>
internal static partial class Posix
{
    private const int ESRCH = 3;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

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
}
