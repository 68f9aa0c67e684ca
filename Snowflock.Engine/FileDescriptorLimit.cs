using System.Runtime.InteropServices;

namespace Snowflock.Engine;

/// <summary>
/// sfrun's own limit on open files. A job holds a few fds per rank (stdio pipes, PMI), more with
/// VM relays, and a stranger's connection flood must meet the server's own caps, not EMFILE: so
/// sfrun raises its soft RLIMIT_NOFILE to the hard limit at start, as the kernel lets any process
/// do. Ranks get the limit sfrun was started with back (programs that loop over every possible
/// fd, or use select(), expect the usual soft limit): each start passes it in
/// <see cref="RestoreVariable"/>, which sfwarm-exec and libsfwarm apply and remove.
/// </summary>
public static partial class FileDescriptorLimit
{
    /// <summary>The soft limit the ranks are to get, in decimal; only set when sfrun raised its own.</summary>
    public const string RestoreVariable = "SFWARM_NOFILE";

    private const int RlimitNofile = 7;

    [StructLayout(LayoutKind.Sequential)]
    private struct Rlimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRlimit(int resource, out Rlimit limit);

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static partial int SetRlimit(int resource, in Rlimit limit);

    /// <summary>The soft limit before <see cref="RaiseToHard"/> raised it; null if it did not.</summary>
    internal static ulong? Original { get; private set; }

    /// <summary>Raises the soft limit to the hard one; returns the limit now in force (0 if the
    /// kernel could not be asked). Idempotent.</summary>
    public static ulong RaiseToHard()
    {
        if (GetRlimit(RlimitNofile, out var limit) != 0)
            return 0;
        if (limit.Current >= limit.Maximum)
            return limit.Current;
        var raised = limit with { Current = limit.Maximum };
        if (SetRlimit(RlimitNofile, raised) != 0)
            return limit.Current;
        Original ??= limit.Current;
        return raised.Current;
    }

    /// <summary>Adds the rank's limit to an environment of a process sfrun starts.</summary>
    internal static void PassOn(IDictionary<string, string?> environment)
    {
        if (Original is { } soft)
            environment[RestoreVariable] = soft.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }
}
