using System.Runtime.InteropServices;

namespace Snowflock.Cli;

/// <summary>Ends sfrun killed by a signal rather than by exit(128 + s), where that is what hydra
/// does: `sfrun ... | head -1` must look to the shell and to a parent's waitpid() exactly like
/// `mpiexec ... | head -1`, killed by SIGPIPE (which .NET ignores, so sfrun learns of the closed
/// pipe from EPIPE and re-enacts the signal).</summary>
internal static partial class SignalExit
{
    [LibraryImport("libc", EntryPoint = "signal", SetLastError = true)]
    private static partial nint SetDisposition(int signal, nint handler);

    [LibraryImport("libc", EntryPoint = "raise")]
    private static partial int Raise(int signal);

    private const nint SIG_DFL = 0, SIG_ERR = -1;

    /// <summary>Dies by <paramref name="signal"/> with its default action; returns only if that
    /// could not be done, and the caller then exits with 128 + the signal instead.</summary>
    public static void Die(int signal)
    {
        if (SetDisposition(signal, SIG_DFL) == SIG_ERR)
            return;
        Raise(signal);
    }
}
