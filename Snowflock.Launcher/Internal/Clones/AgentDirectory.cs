using System.Runtime.InteropServices;

namespace Snowflock.Launcher.Internal.Clones;

/// <summary>
/// The job's private folder for the agent socket: <c>$XDG_RUNTIME_DIR/sfrun/sf-JOB</c> or
/// <c>/tmp/sfrun-UID/sf-JOB</c>, mode 0700 in a 0700 parent, so only the user's own processes can
/// connect. Teardown removes it; folders of jobs whose sfrun died (SIGKILL) are swept by the next
/// job, as their names carry sfrun's pid.
/// </summary>
internal static partial class AgentDirectory
{
    private const int ENOENT = 2;

    [LibraryImport("libc", EntryPoint = "mkdir", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MakeDirectory(string path, uint mode);

    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const string Prefix = "sf-";

    /// <exception cref="IOException">The parent is unsafe (a link, or open to others) or cannot be made.</exception>
    public static string Create(string jobId)
    {
        if (!OperatingSystem.IsLinux())
            throw new IOException("the clone agent needs Linux");
        var runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        var parent = runtime is { Length: > 0 } && Directory.Exists(runtime)
            ? Path.Combine(runtime, "sfrun")
            : Path.Combine(Path.GetTempPath(), $"sfrun-{ClonePid.EffectiveUid()}");
        var dir = Path.Combine(parent, Prefix + jobId);
        // Directory.CreateDirectory would silently remake a parent that another job just removed
        // (it was empty), with the umask's mode: mkdir(2) fails instead, and the parent is made again.
        for (var attempt = 0; ; attempt++)
        {
            Directory.CreateDirectory(parent, Private);
            if (MakeDirectory(dir, 0b111_000_000) == 0)
                break;
            var errno = Marshal.GetLastPInvokeError();
            if (errno != ENOENT || attempt == 3)
                throw new IOException($"mkdir({dir}) failed: errno {errno}");
        }
        var info = new DirectoryInfo(parent);
        if (info.LinkTarget is not null || (File.GetUnixFileMode(parent) & ~Private) != 0)
        {
            Directory.Delete(dir);
            throw new IOException($"{parent} is a link or open to other users; remove it");
        }
        SweepStale(parent);
        return dir;
    }

    public static void Remove(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
        try
        {
            Directory.Delete(Path.GetDirectoryName(dir)!); // unless another job still uses it
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Removes folders named <c>sf-PID-...</c> whose sfrun is gone.</summary>
    private static void SweepStale(string parent)
    {
        foreach (var dir in Directory.EnumerateDirectories(parent, Prefix + "*"))
        {
            var name = Path.GetFileName(dir);
            var dash = name.IndexOf('-', Prefix.Length);
            if (dash < 0 || !int.TryParse(name.AsSpan(Prefix.Length, dash - Prefix.Length), out var pid) || Directory.Exists($"/proc/{pid}"))
                continue;
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }
}
