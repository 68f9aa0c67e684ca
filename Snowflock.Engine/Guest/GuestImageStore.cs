using System.Globalization;
using Snowflock.Engine.Guest.Internal;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Guest;

/// <summary>One image in the cache, as its manifest describes it.</summary>
public sealed record CachedGuestImage(string Hash, string KernelVersion, string KernelPath, string InitramfsPath,
    long InitramfsBytes, DateTime Built, IReadOnlyList<string> Programs);

/// <summary>The images <see cref="GuestImageBuilder"/> has cached: what <c>sfrun image list</c> and
/// <c>sfrun image rm</c> see.</summary>
public static class GuestImageStore
{
    public static string Directory => ImageSources.Host.CacheDirectory;

    public static IReadOnlyList<CachedGuestImage> List() => List(Directory);

    internal static IReadOnlyList<CachedGuestImage> List(string cacheDirectory)
    {
        if (!System.IO.Directory.Exists(cacheDirectory))
            return [];
        var images = new List<CachedGuestImage>();
        foreach (var dir in System.IO.Directory.GetDirectories(cacheDirectory))
        {
            var manifest = Path.Combine(dir, GuestImageBuilder.ManifestName);
            if (Path.GetFileName(dir).StartsWith('.') || !File.Exists(manifest))
                continue;
            var fields = File.ReadAllLines(manifest).Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToList();
            string One(string key) => fields.FirstOrDefault(f => f[0] == key)?[1] ?? "";
            images.Add(new CachedGuestImage(Path.GetFileName(dir), One("kernel-version"), One("kernel"),
                Path.Combine(dir, GuestImageBuilder.InitramfsName),
                long.TryParse(One("initramfs-bytes"), out var bytes) ? bytes : 0,
                DateTime.TryParse(One("built"), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var built) ? built : default,
                fields.Where(f => f[0] == "program").Select(f => f[1]).ToList()));
        }
        return images.OrderBy(i => i.Built).ToList();
    }

    /// <summary>Removes the images whose hash starts with <paramref name="hashPrefix"/> (at least 4
    /// digits, so a typo cannot remove everything); the number removed.</summary>
    public static int Remove(string hashPrefix) => Remove(Directory, hashPrefix);

    internal static int Remove(string cacheDirectory, string hashPrefix)
    {
        if (hashPrefix.Length < 4 || !hashPrefix.All(char.IsAsciiHexDigitLower))
            throw new GuestImageException($"'{hashPrefix}' is not an image hash (at least 4 lower-case hex digits; see sfrun image list)");
        var matches = List(cacheDirectory).Where(i => i.Hash.StartsWith(hashPrefix, StringComparison.Ordinal)).ToList();
        foreach (var image in matches)
            RemoveFolder(Path.Combine(cacheDirectory, image.Hash));
        return matches.Count;
    }

    /// <summary>Removes every image, unfinished build and extracted kernel; the number of images removed.</summary>
    public static int RemoveAll() => RemoveAll(Directory);

    internal static int RemoveAll(string cacheDirectory)
    {
        var count = List(cacheDirectory).Count;
        SafeTree.Delete(cacheDirectory);
        return count;
    }

    /// <summary>Renamed aside first, so a concurrent sfrun never sees a half-deleted image.</summary>
    private static void RemoveFolder(string dir)
    {
        var aside = Path.Combine(Path.GetDirectoryName(dir)!, $".tmp-rm-{Guid.NewGuid():N}");
        System.IO.Directory.Move(dir, aside);
        SafeTree.Delete(aside);
    }
}
