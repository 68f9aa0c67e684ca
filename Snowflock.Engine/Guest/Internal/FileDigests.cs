using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Guest.Internal;

/// <summary>
/// SHA-256 of host files, remembered across runs in a small index file keyed by what changes when
/// a file's bytes do (device, inode, size, modification time in nanoseconds): an image of ~100 MB
/// of libraries is otherwise re-hashed by every job. The index is rewritten whole and renamed into
/// place, so concurrent sfruns at worst lose each other's new entries.
/// </summary>
internal sealed partial class FileDigests
{
    private const int AT_FDCWD = -100;
    private const uint STATX_BASIC_STATS = 0x7FF;
    private readonly string _indexPath;
    private readonly Dictionary<string, (string Key, string Digest)> _known = new(StringComparer.Ordinal);
    private bool _changed;

    public int Hashed { get; private set; }
    public int Remembered { get; private set; }

    public FileDigests(string indexPath)
    {
        _indexPath = indexPath;
        try
        {
            foreach (var line in File.ReadLines(indexPath))
            {
                // digest TAB key TAB path
                var parts = line.Split('\t', 3);
                if (parts.Length == 3 && parts[0].Length == 64)
                    _known[parts[2]] = (parts[1], parts[0]);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // No index yet, or unreadable: start empty.
        }
    }

    public string DigestOf(string path)
    {
        var key = StatKey(path);
        if (key is not null && _known.TryGetValue(path, out var known) && known.Key == key)
        {
            Remembered++;
            return known.Digest;
        }
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var digest = Convert.ToHexStringLower(SHA256.HashData(stream));
        Hashed++;
        if (key is not null)
        {
            _known[path] = (key, digest);
            _changed = true;
        }
        return digest;
    }

    public void Save()
    {
        if (!_changed)
            return;
        var text = new StringBuilder();
        foreach (var (path, (key, digest)) in _known.OrderBy(k => k.Key, StringComparer.Ordinal))
            if (!path.Contains('\n') && File.Exists(path))
                text.Append(digest).Append('\t').Append(key).Append('\t').Append(path).Append('\n');
        var temp = _indexPath + $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            UserCache.CreateDirectory(Path.GetDirectoryName(_indexPath)!);
            UserCache.WriteAllText(temp, text.ToString());
            File.Move(temp, _indexPath, overwrite: true);
            _changed = false;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A cache that cannot be saved only costs time next run (the image build that follows
            // says why, in one line, if the folder cannot be written at all).
            try
            {
                File.Delete(temp);
            }
            catch (Exception again) when (again is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>"dev:inode:size:mtime-ns" from statx(2), or null if the file cannot be stat'ed.
    /// statx has one layout on every architecture, unlike struct stat.</summary>
    internal static unsafe string? StatKey(string path)
    {
        var buffer = stackalloc byte[256];
        if (Statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, buffer) != 0)
            return null;
        var inode = *(ulong*)(buffer + 32);
        var size = *(ulong*)(buffer + 40);
        var mtimeSeconds = *(long*)(buffer + 112);
        var mtimeNanos = *(uint*)(buffer + 120);
        var devMajor = *(uint*)(buffer + 136);
        var devMinor = *(uint*)(buffer + 140);
        return string.Create(CultureInfo.InvariantCulture, $"{devMajor},{devMinor}:{inode}:{size}:{mtimeSeconds}.{mtimeNanos:D9}");
    }

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int Statx(int dirfd, string path, int flags, uint mask, byte* buffer);
}
