using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Snowflock.Engine.Internal;

/// <summary>
/// The one place sfrun makes folders for itself: the per-user folder (<see cref="PerUser"/>), the
/// per-job folders in it (<see cref="CreateUnique"/>, mkdtemp: 0700, a name nobody can guess or make
/// first), and stable private folders such as the cache (<see cref="Ensure"/>). Every existing
/// folder it uses is checked with lstat: a real directory, owned by this user, closed to others. In a
/// shared /tmp another user could otherwise make the folder first, or swap a folder sfrun is about to
/// use, and read, replace or redirect sfrun's sockets and files.
/// </summary>
internal static partial class PrivateDirectory
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const uint Sticky = 0x200, GroupOrOtherWrite = 0x12, GroupOrOther = 0x3F;

    [LibraryImport("libc", EntryPoint = "mkdtemp", SetLastError = true)]
    private static partial nint MkdTemp(byte[] template);

    [LibraryImport("libc", EntryPoint = "mkdir", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MakeDirectory(string path, uint mode);

    [LibraryImport("libc", EntryPoint = "getuid")]
    public static partial uint GetUid();

    /// <summary>
    /// This user's folder for sockets and per-job folders: $XDG_RUNTIME_DIR/snowflock where
    /// XDG_RUNTIME_DIR is a folder of ours closed to others (pam_systemd's /run/user/UID), else
    /// /tmp/snowflock-UID. Made 0700 if missing; sfrun never removes it, so nobody else can make it
    /// between two jobs.
    /// </summary>
    /// <exception cref="IOException">It cannot be made, or is not private to us.</exception>
    public static string PerUser
    {
        get
        {
            var runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
            if (runtime is { Length: > 1 } && Path.IsPathRooted(runtime) && IsOursAndClosed(runtime))
            {
                var top = Path.Combine(runtime, "snowflock");
                Ensure(top);
                return top;
            }
            CheckSharedParent("/tmp");
            var tmp = $"/tmp/snowflock-{SafeTree.EffectiveUid()}";
            Ensure(tmp);
            return tmp;
        }
    }

    /// <summary>
    /// Makes <paramref name="path"/> (0700) unless it exists, then checks it is a directory of
    /// ours closed to others. With <paramref name="fixMode"/> a folder of ours that is open to
    /// others (a cache made before caches were private) is closed, with everything in it.
    /// </summary>
    /// <exception cref="IOException">It cannot be made, or belongs to someone else, or is open to others.</exception>
    public static void Ensure(string path, bool fixMode = false)
    {
        if (!OperatingSystem.IsLinux())
            throw new IOException("sfrun needs Linux");
        if (SafeTree.LStat(path) is null)
        {
            var parent = Path.GetDirectoryName(Path.GetFullPath(path));
            if (parent is not null && SafeTree.LStat(parent) is null)
                Directory.CreateDirectory(parent, Private);
            if (MakeDirectory(path, 0x1C0 /* 0700 */) != 0 && Marshal.GetLastPInvokeError() != 17 /* EEXIST: a concurrent sfrun */)
                throw SafeTree.Failure($"mkdir({path})", Marshal.GetLastPInvokeError());
        }
        var stat = SafeTree.LStat(path) ?? throw new IOException($"{path} vanished while it was being made");
        if (!stat.IsDirectory)
            throw new IOException($"{path} is not a directory (a link?); remove it");
        if (stat.Uid != SafeTree.EffectiveUid())
            throw new IOException($"{path} belongs to another user (uid {stat.Uid}); remove it, or set XDG_RUNTIME_DIR to a folder of yours");
        if ((stat.Permissions & GroupOrOther) != 0)
        {
            if (!fixMode)
                throw new IOException($"{path} is open to other users (mode {Convert.ToString(stat.Permissions, 8)}); make it 0700");
            SafeTree.MakePrivate(path);
        }
    }

    /// <summary>
    /// A new folder <paramref name="parent"/>/<paramref name="prefix"/>XXXXXX, mode 0700, made by
    /// mkdtemp (the random part means no one can make it first). The parent must be ours and closed
    /// to others, or a sticky folder such as /dev/shm where nobody can rename what we make.
    /// </summary>
    /// <exception cref="IOException">The parent is not safe, or the folder cannot be made.</exception>
    public static string CreateUnique(string parent, string prefix)
    {
        CheckSharedParent(parent);
        var template = Encoding.UTF8.GetBytes($"{parent.TrimEnd('/')}/{prefix}XXXXXX\0");
        if (MkdTemp(template) == 0)
            throw SafeTree.Failure($"mkdtemp({parent}/{prefix}XXXXXX)", Marshal.GetLastPInvokeError());
        return Encoding.UTF8.GetString(template, 0, template.Length - 1);
    }

    /// <summary>
    /// Removes the per-job folders <paramref name="prefix"/>PID-* in the per-user folder whose sfrun
    /// (PID, the start of every job id) is gone: a job whose sfrun was SIGKILLed leaves them. Only
    /// folders owned by this user, removed without following links.
    /// </summary>
    public static void SweepDeadJobs(string parent, string prefix)
    {
        foreach (var dir in Directory.EnumerateDirectories(parent, prefix + "*"))
        {
            var name = Path.GetFileName(dir);
            var dash = name.IndexOf('-', prefix.Length);
            if (dash < 0 || !int.TryParse(name.AsSpan(prefix.Length, dash - prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || pid == Environment.ProcessId || Directory.Exists($"/proc/{pid}"))
                continue;
            try
            {
                SafeTree.Delete(dir, onlyIfOurs: true);
            }
            catch (IOException)
            {
                // Another sfrun is sweeping it too.
            }
        }
    }

    /// <summary>Ours and closed to others, or (a shared folder like /tmp) root's and sticky where others may write.</summary>
    private static void CheckSharedParent(string parent)
    {
        // The parent itself may be reached through a link (/tmp -> /var/tmp): stat what it names.
        var stat = SafeTree.LStat(Path.GetFullPath(parent)) is { IsSymlink: true }
            ? SafeTree.LStat(new DirectoryInfo(parent).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? parent)
            : SafeTree.LStat(parent);
        if (stat is not { IsDirectory: true } s)
            throw new IOException($"{parent} is not a directory");
        var ours = s.Uid == SafeTree.EffectiveUid();
        if (!ours && s.Uid != 0)
            throw new IOException($"{parent} belongs to another user (uid {s.Uid}); set XDG_RUNTIME_DIR to a folder of yours");
        if ((s.Permissions & GroupOrOtherWrite) != 0 && (s.Permissions & Sticky) == 0)
            throw new IOException($"{parent} is writable by other users and not sticky (mode {Convert.ToString(s.Permissions, 8)}); chmod +t it or set XDG_RUNTIME_DIR");
    }

    private static bool IsOursAndClosed(string path) =>
        SafeTree.LStat(path) is { IsDirectory: true } s && s.Uid == SafeTree.EffectiveUid() && (s.Permissions & GroupOrOther) == 0;
}
