using System.Text;

namespace Snowflock.Engine.Internal;

/// <summary>
/// Where the engines keep what they learn or build once and reuse across jobs (machine topology,
/// warm profiles, guest images, templates): $XDG_CACHE_HOME/snowflock, else $HOME/.cache/snowflock,
/// else (no absolute HOME: a service, a uid with no passwd entry) the per-user folder's cache/. Never a
/// relative path, which would put it in whatever folder sfrun was started from (another user's,
/// or a world-writable one, where anyone could plant a warm profile). The folder is 0700 and ours,
/// everything in it 0600/0700: guest images hold copies of the user's programs and the template
/// RAM files what their VMs had in memory. A cache found open (made by an older sfrun) is closed.
/// </summary>
internal static class UserCache
{
    private const UnixFileMode PrivateFolder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    internal const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const int ENOSPC = 28, EROFS = 30, EDQUOT = 122, EACCES = 13, EPERM = 1;
    private static string? _checked;

    /// <exception cref="UserCacheException">It cannot be made, or is another user's.</exception>
    public static string Directory
    {
        get
        {
            var dir = Locate();
            if (_checked == dir)
                return dir;
            try
            {
                PrivateDirectory.Ensure(dir, fixMode: true);
            }
            catch (Exception e) when (IsFault(e))
            {
                throw Fault(dir, e);
            }
            catch (IOException e)
            {
                // PrivateDirectory's own words: another user's folder, a link, and so on.
                throw new UserCacheException($"the cache folder {dir}: {e.Message}", e);
            }
            _checked = dir;
            return dir;
        }
    }

    private static string Locate()
    {
        // The XDG base directory spec: a relative XDG_CACHE_HOME is invalid and ignored.
        if (Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x && Path.IsPathRooted(x))
            return Path.Combine(x, "snowflock");
        if (Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } home && Path.IsPathRooted(home))
            return Path.Combine(home, ".cache", "snowflock");
        return Path.Combine(PrivateDirectory.PerUser, "cache");
    }

    /// <summary>Makes a folder in the cache, 0700.</summary>
    public static void CreateDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
            throw new PlatformNotSupportedException("sfrun needs Linux");
        try
        {
            System.IO.Directory.CreateDirectory(path, PrivateFolder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Fault(path, e);
        }
    }

    /// <summary>A new file in the cache, 0600 whatever the umask.</summary>
    public static FileStream CreateFile(string path, FileMode mode = FileMode.Create)
    {
        if (OperatingSystem.IsWindows())
            throw new PlatformNotSupportedException("sfrun needs Linux");
        return new(path, new FileStreamOptions
        {
            Mode = mode, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 1 << 16,
            Options = FileOptions.Asynchronous, UnixCreateMode = PrivateFile,
        });
    }

    public static void WriteAllText(string path, string text)
    {
        using var file = CreateFile(path);
        file.Write(Encoding.UTF8.GetBytes(text));
    }

    /// <summary>Whether <paramref name="e"/> is the cache's disk being full, read-only or not ours to write.</summary>
    public static bool IsFault(Exception e) =>
        e is UnauthorizedAccessException or UserCacheException || (e is IOException && e.HResult is ENOSPC or EDQUOT or EROFS or EACCES or EPERM);

    /// <summary>One line naming the cache folder and what to do (never a .NET resource key: the
    /// AOT build's runtime messages are only keys, so the errno decides the words).</summary>
    public static UserCacheException Fault(string where, Exception e)
    {
        if (e is UserCacheException already)
            return already;
        var folder = Locate();
        const string Elsewhere = "set XDG_CACHE_HOME to another folder";
        var message = e.HResult switch
        {
            _ when e is UnauthorizedAccessException || e.HResult is EACCES or EPERM =>
                $"the cache folder {folder} is not writable ({where}: permission denied); fix its permissions or {Elsewhere}",
            ENOSPC or EDQUOT => $"the cache folder {folder} is full (no space left for {where}); free space there or {Elsewhere}",
            EROFS => $"the cache folder {folder} is on a read-only file system; {Elsewhere}",
            _ => $"the cache folder {folder}: cannot write {where} (errno {e.HResult}); {Elsewhere}",
        };
        return new UserCacheException(message, e);
    }
}
