using System.Runtime.InteropServices;
using System.Text;

namespace Snowflock.Engine.Internal;

/// <summary>
/// Removes and tightens folder trees by file descriptor: every step is openat/unlinkat relative to
/// a folder already opened with O_NOFOLLOW|O_DIRECTORY, so no path is walked twice. A path walked
/// again (what Directory.Delete(recursive) does) lets whoever can write a folder on the way swap
/// it for a symlink between the check and the delete, and root then deletes the symlink's target.
/// Here a symlink met anywhere is removed as a link, never entered; a folder on another file
/// system (a mount point) is left alone.
/// </summary>
internal static unsafe partial class SafeTree
{
    private const int AT_FDCWD = -100, AT_REMOVEDIR = 0x200, AT_SYMLINK_NOFOLLOW = 0x100;
    private const int ENOENT = 2, EISDIR = 21, ENOTDIR = 20, ELOOP = 40;
    private const uint S_IFMT = 0xF000, S_IFDIR = 0x4000, S_IFLNK = 0xA000;
    private static readonly bool Arm64 = RuntimeInformation.ProcessArchitecture == Architecture.Arm64;
    // O_DIRECTORY and O_NOFOLLOW differ between x86-64 and arm64 (asm-generic vs arm64's own fcntl.h).
    private static readonly int O_DIRECTORY = Arm64 ? 0x4000 : 0x10000, O_NOFOLLOW = Arm64 ? 0x8000 : 0x20000;
    private const int O_RDONLY = 0, O_CLOEXEC = 0x80000;
    private static int OpenDirFlags => O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "openat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int OpenAt(int dirfd, string name, int flags);

    [LibraryImport("libc", EntryPoint = "unlinkat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int UnlinkAt(int dirfd, string name, int flags);

    [LibraryImport("libc", EntryPoint = "fstatat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int FStatAt(int dirfd, string name, byte* buffer, int flags);

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static partial int FStat(int fd, byte* buffer);

    [LibraryImport("libc", EntryPoint = "fchmod", SetLastError = true)]
    private static partial int FChmod(int fd, uint mode);

    [LibraryImport("libc", EntryPoint = "fchmodat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int FChmodAt(int dirfd, string name, uint mode, int flags);

    [LibraryImport("libc", EntryPoint = "fdopendir", SetLastError = true)]
    private static partial nint FdOpenDir(int fd);

    [LibraryImport("libc", EntryPoint = "readdir64", SetLastError = true)]
    private static partial nint ReadDir(nint dir);

    [LibraryImport("libc", EntryPoint = "closedir")]
    private static partial int CloseDir(nint dir);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    public static partial uint EffectiveUid();

    /// <summary>st_dev, st_mode and st_uid, read from a struct stat.</summary>
    internal readonly record struct Stat(ulong Device, uint Mode, uint Uid)
    {
        public bool IsDirectory => (Mode & S_IFMT) == S_IFDIR;
        public bool IsSymlink => (Mode & S_IFMT) == S_IFLNK;
        public uint Permissions => Mode & 0xFFF;

        internal static Stat From(byte* b) => Arm64
            ? new(*(ulong*)b, *(uint*)(b + 16), *(uint*)(b + 24))   // asm-generic: st_mode before st_nlink
            : new(*(ulong*)b, *(uint*)(b + 24), *(uint*)(b + 28));  // x86-64: st_nlink (8 bytes) first
    }

    /// <summary>lstat of <paramref name="path"/>; null if it does not exist.</summary>
    public static Stat? LStat(string path)
    {
        var buffer = stackalloc byte[256];
        if (FStatAt(AT_FDCWD, path, buffer, AT_SYMLINK_NOFOLLOW) == 0)
            return Stat.From(buffer);
        var errno = Marshal.GetLastPInvokeError();
        return errno is ENOENT or ENOTDIR ? null : throw Failure($"lstat({path})", errno);
    }

    /// <summary>
    /// Removes <paramref name="path"/> and everything under it. With <paramref name="onlyIfOurs"/>
    /// (sweeps of names anyone could have made), an entry owned by another user is left alone.
    /// The parent folder is trusted: it is walked once, to open it. False if nothing was removed.
    /// </summary>
    /// <exception cref="IOException">An entry could not be removed.</exception>
    public static bool Delete(string path, bool onlyIfOurs = false)
    {
        var full = Path.GetFullPath(path).TrimEnd('/');
        var name = Path.GetFileName(full);
        if (name.Length == 0 || name is "." or "..")
            throw new IOException($"refusing to remove {path}");
        var parent = Open(Path.GetDirectoryName(full)!, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (parent < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno is ENOENT or ENOTDIR ? false : throw Failure($"open({Path.GetDirectoryName(full)})", errno);
        }
        try
        {
            return DeleteEntry(parent, name, full, onlyIfOurs, device: null);
        }
        finally
        {
            Close(parent);
        }
    }

    /// <summary>Removes the entry <paramref name="name"/> of the open folder <paramref name="dirfd"/>.</summary>
    private static bool DeleteEntry(int dirfd, string name, string shown, bool onlyIfOurs, ulong? device)
    {
        var fd = OpenAt(dirfd, name, OpenDirFlags);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == ENOENT)
                return false;
            if (errno is not (ELOOP or ENOTDIR))
                throw Failure($"open({shown})", errno);
            // Not a folder (a file, or a symlink: the link itself goes, never what it points to).
            if (onlyIfOurs && StatAt(dirfd, name, shown) is { } s && s.Uid != EffectiveUid())
                return false;
            return Unlink(dirfd, name, shown, 0);
        }
        var close = true;
        try
        {
            var stat = FdStat(fd, shown);
            if (onlyIfOurs && stat.Uid != EffectiveUid())
                return false;
            if (device is { } d && stat.Device != d)
                throw new IOException($"cannot remove {shown}: another file system is mounted there");
            close = false;
            EmptyAndClose(fd, shown, stat.Device);
        }
        finally
        {
            if (close)
                Close(fd);
        }
        return Unlink(dirfd, name, shown, AT_REMOVEDIR);
    }

    /// <summary>Removes every entry of the open folder <paramref name="fd"/>, then closes it.</summary>
    private static void EmptyAndClose(int fd, string shown, ulong device)
    {
        var names = ReadNamesAndClose(fd, shown, out var dup);
        foreach (var name in names)
        {
            try
            {
                var child = shown + "/" + name;
                if (UnlinkAt(dup, name, 0) == 0)
                    continue;
                var errno = Marshal.GetLastPInvokeError();
                if (errno == ENOENT)
                    continue;
                if (errno != EISDIR)
                    throw Failure($"unlink({child})", errno);
                DeleteEntry(dup, name, child, onlyIfOurs: false, device);
            }
            catch
            {
                Close(dup);
                throw;
            }
        }
        Close(dup);
    }

    /// <summary>The names in the open folder <paramref name="fd"/> (read whole before anything is
    /// removed); <paramref name="fd"/> is consumed, <paramref name="dup"/> is the same folder still open.</summary>
    private static List<string> ReadNamesAndClose(int fd, string shown, out int dup)
    {
        // closedir closes the fd fdopendir took: keep a second descriptor of the same folder.
        dup = OpenAt(fd, ".", OpenDirFlags);
        if (dup < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Close(fd);
            throw Failure($"open({shown})", errno);
        }
        var dir = FdOpenDir(fd);
        if (dir == 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Close(fd);
            Close(dup);
            throw Failure($"fdopendir({shown})", errno);
        }
        var names = new List<string>();
        try
        {
            for (nint entry; (entry = ReadDir(dir)) != 0;)
            {
                // struct dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
                var name = Marshal.PtrToStringUTF8(entry + 19)!;
                if (name is not ("." or ".."))
                    names.Add(name);
            }
        }
        finally
        {
            CloseDir(dir);
        }
        return names;
    }

    /// <summary>
    /// Takes group and other permissions off <paramref name="path"/> and everything under it that
    /// this user owns (0755 → 0700, 0644 → 0600), entering no symlink: for caches made before they
    /// were private. The number of entries changed.
    /// </summary>
    public static int MakePrivate(string path)
    {
        var fd = Open(path, OpenDirFlags);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno == ENOENT ? 0 : throw Failure($"open({path})", errno);
        }
        return MakePrivate(fd, path, FdStat(fd, path).Device);
    }

    private static int MakePrivate(int fd, string shown, ulong device)
    {
        var changed = 0;
        try
        {
            var stat = FdStat(fd, shown);
            if (stat.Uid != EffectiveUid() || stat.Device != device)
                return 0;
            if ((stat.Permissions & 0x3F) != 0)
            {
                if (FChmod(fd, stat.Permissions & ~0x3Fu) != 0)
                    throw Failure($"chmod({shown})", Marshal.GetLastPInvokeError());
                changed++;
            }
            var names = ReadNamesAndClose(OpenAt(fd, ".", OpenDirFlags), shown, out var dup);
            foreach (var name in names)
            {
                try
                {
                    var child = shown + "/" + name;
                    if (StatAt(dup, name, child) is not { } s || s.IsSymlink || s.Uid != EffectiveUid())
                        continue;
                    if (s.IsDirectory)
                    {
                        var sub = OpenAt(dup, name, OpenDirFlags);
                        if (sub >= 0)
                            changed += MakePrivate(sub, child, device);
                    }
                    else if ((s.Permissions & 0x3F) != 0)
                    {
                        // By name in a folder only this user can write: nobody else can swap it.
                        if (FChmodAt(dup, name, s.Permissions & ~0x3Fu, 0) != 0)
                            throw Failure($"chmod({child})", Marshal.GetLastPInvokeError());
                        changed++;
                    }
                }
                catch
                {
                    Close(dup);
                    throw;
                }
            }
            Close(dup);
        }
        finally
        {
            Close(fd);
        }
        return changed;
    }

    private static Stat FdStat(int fd, string shown)
    {
        var buffer = stackalloc byte[256];
        return FStat(fd, buffer) == 0 ? Stat.From(buffer) : throw Failure($"fstat({shown})", Marshal.GetLastPInvokeError());
    }

    private static Stat? StatAt(int dirfd, string name, string shown)
    {
        var buffer = stackalloc byte[256];
        if (FStatAt(dirfd, name, buffer, AT_SYMLINK_NOFOLLOW) == 0)
            return Stat.From(buffer);
        var errno = Marshal.GetLastPInvokeError();
        return errno == ENOENT ? null : throw Failure($"lstat({shown})", errno);
    }

    private static bool Unlink(int dirfd, string name, string shown, int flags)
    {
        if (UnlinkAt(dirfd, name, flags) == 0)
            return true;
        var errno = Marshal.GetLastPInvokeError();
        return errno == ENOENT ? false : throw Failure((flags & AT_REMOVEDIR) != 0 ? $"rmdir({shown})" : $"unlink({shown})", errno);
    }

    /// <summary>An IOException naming the call and the errno's text (not a .NET resource key).</summary>
    internal static IOException Failure(string call, int errno) =>
        new($"{call} failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
}
