namespace Snowflock.Engine.Internal;

/// <summary>Where the engines keep what they learn or build once and reuse across jobs (machine
/// topology, warm profiles, guest images): $XDG_CACHE_HOME/snowflock, else ~/.cache/snowflock.</summary>
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
