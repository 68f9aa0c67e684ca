using System.Security.Cryptography;
using System.Text;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>
/// The libraries a program loads at run time (what MPI_Init dlopens), recorded by the first clone
/// of that program and loaded by every later master before it forks. One file per executable
/// version: $XDG_CACHE_HOME (or ~/.cache)/snowflock/warm-profiles/HASH.txt, HASH over the
/// program's path, size and modification time, so a rebuilt program records a new profile.
/// </summary>
internal static partial class WarmProfile
{
    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static partial nint RealPath(string path, nint resolved);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint pointer);

    public static string PathFor(string executable)
    {
        var info = new FileInfo(executable);
        var key = $"{info.FullName}\0{(info.Exists ? info.Length : 0)}\0{(info.Exists ? info.LastWriteTimeUtc.Ticks : 0)}";
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..24];
        return Path.Combine(UserCache.Directory, "warm-profiles", hash + ".txt");
    }

    /// <summary>The recorded libraries that still exist and can be trusted, ':'-joined for
    /// SFWARM_PRELOAD; null if there is no profile yet (the first clone then records one). The
    /// master dlopens them, running their constructors as this user (root, often): a profile that is
    /// not ours, or a library that someone else could have written or swapped, is not loaded.</summary>
    public static string? PreloadList(string profile)
    {
        try
        {
            if (SafeTree.LStat(profile) is not { } stat)
                return null;
            if (stat.IsDirectory || stat.IsSymlink || stat.Uid != SafeTree.EffectiveUid() || (stat.Permissions & 0x12) != 0)
                return ""; // not a profile we wrote: no preload, and none recorded over it either
            var libs = File.ReadAllLines(profile)
                .Where(l => l.StartsWith('/') && !l.Contains(':'))
                .Select(Trusted)
                .OfType<string>()
                .Take(512)
                .ToList();
            return string.Join(':', libs);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// The real path of <paramref name="library"/> if it and every folder above it belong to this
    /// user or root and no one else can write them (a folder others may write must be sticky, as
    /// /tmp: then nobody else can rename what is in it); else null. The real path is what gets
    /// loaded, so a symlink on the way cannot be re-pointed after this check.
    /// </summary>
    internal static string? Trusted(string library)
    {
        var resolved = RealPath(library, 0);
        if (resolved == 0)
            return null;
        var real = System.Runtime.InteropServices.Marshal.PtrToStringUTF8(resolved)!;
        Free(resolved);
        var me = SafeTree.EffectiveUid();
        if (SafeTree.LStat(real) is not { IsDirectory: false, IsSymlink: false } file || (file.Uid != me && file.Uid != 0) || (file.Permissions & 0x12) != 0)
            return null;
        for (var dir = Path.GetDirectoryName(real); dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if (SafeTree.LStat(dir) is not { } d)
                return null;
            if (d.IsSymlink)
                return null; // swapped in since realpath
            if ((d.Uid != me && d.Uid != 0) || ((d.Permissions & 0x12) != 0 && (d.Permissions & 0x200) == 0))
                return null;
        }
        return real;
    }

    /// <summary>Makes sure the profile's folder exists so the first clone can write into it;
    /// false if it cannot (the job then simply runs without a profile).</summary>
    public static bool PrepareToRecord(string profile)
    {
        try
        {
            UserCache.CreateDirectory(Path.GetDirectoryName(profile)!);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Forgets a profile that kept a master from serving (e.g. a library it loads starts
    /// a thread), so the next job records a new one instead of running cold for ever.</summary>
    public static void Forget(string profile)
    {
        try
        {
            File.Delete(profile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
