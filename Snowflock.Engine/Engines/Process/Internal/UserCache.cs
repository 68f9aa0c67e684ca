namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>Where the process engine keeps what it learns once and reuses across jobs (machine
/// topology, warm profiles): $XDG_CACHE_HOME/snowflock, else ~/.cache/snowflock.</summary>
internal static class UserCache
{
    public static string Directory
    {
        get
        {
            var cacheHome = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x
                ? x : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(cacheHome, "snowflock");
        }
    }
}
