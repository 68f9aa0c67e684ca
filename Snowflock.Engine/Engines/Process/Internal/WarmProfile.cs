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
internal static class WarmProfile
{
    public static string PathFor(string executable)
    {
        var info = new FileInfo(executable);
        var key = $"{info.FullName}\0{(info.Exists ? info.Length : 0)}\0{(info.Exists ? info.LastWriteTimeUtc.Ticks : 0)}";
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..24];
        return Path.Combine(UserCache.Directory, "warm-profiles", hash + ".txt");
    }

    /// <summary>The recorded libraries that still exist, ':'-joined for SFWARM_PRELOAD; null if
    /// there is no profile yet (the first clone then records one).</summary>
    public static string? PreloadList(string profile)
    {
        try
        {
            if (!File.Exists(profile))
                return null;
            var libs = File.ReadAllLines(profile)
                .Where(l => l.StartsWith('/') && !l.Contains(':') && File.Exists(l))
                .Take(512)
                .ToList();
            return string.Join(':', libs);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Makes sure the profile's folder exists so the first clone can write into it;
    /// false if it cannot (the job then simply runs without a profile).</summary>
    public static bool PrepareToRecord(string profile)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(profile)!);
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
