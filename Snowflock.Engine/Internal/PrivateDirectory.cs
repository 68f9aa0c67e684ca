using System.Runtime.InteropServices;

namespace Snowflock.Engine.Warm.Internal;

/// <summary>
/// A directory only this user can enter, made (mode 0700) if missing. One that exists must be a
/// real directory (no symlink), owned by us and closed to others: in a shared /tmp another user
/// could have made it first to read or replace our sockets.
/// </summary>
internal static unsafe partial class PrivateDirectory
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    [LibraryImport("libc", EntryPoint = "lstat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LStat(string path, byte* buffer);

    [LibraryImport("libc", EntryPoint = "getuid")]
    public static partial uint GetUid();

    /// <exception cref="IOException">It cannot be made, or is not private to us.</exception>
    public static void Ensure(string path)
    {
        if (!OperatingSystem.IsLinux())
            throw new IOException("warm VMs need Linux");
        Directory.CreateDirectory(path, Private);
        var (mode, uid) = Stat(path);
        const uint S_IFMT = 0xF000, S_IFDIR = 0x4000;
        if ((mode & S_IFMT) != S_IFDIR)
            throw new IOException($"{path} is not a directory (a link?); remove it");
        if (uid != GetUid())
            throw new IOException($"{path} belongs to another user (uid {uid}); remove it or set XDG_RUNTIME_DIR");
        if ((mode & 0x3F) != 0)
            throw new IOException($"{path} is open to other users (mode {Convert.ToString(mode & 0x1FF, 8)}); make it 0700");
    }

    /// <summary>st_mode and st_uid of <paramref name="path"/> itself (not what a link points to).</summary>
    private static (uint Mode, uint Uid) Stat(string path)
    {
        var buffer = stackalloc byte[256];
        if (LStat(path, buffer) != 0)
            throw new IOException($"lstat({path}) failed: errno {Marshal.GetLastPInvokeError()}");
        // struct stat: x86-64 has st_nlink (8 bytes) before st_mode; the generic layout of arm64 after it.
        return RuntimeInformation.ProcessArchitecture == Architecture.X64
            ? (*(uint*)(buffer + 24), *(uint*)(buffer + 28))
            : (*(uint*)(buffer + 16), *(uint*)(buffer + 24));
    }
}
