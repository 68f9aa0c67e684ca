namespace Snowflock.Engine.Guest.Internal;

/// <summary>One entry of the guest's root file system.</summary>
internal abstract record LayoutEntry(string Path);

internal sealed record DirectoryEntry(string Path, uint Mode) : LayoutEntry(Path);

internal sealed record SymlinkEntry(string Path, string Target) : LayoutEntry(Path);

/// <summary>A file copied from the host (<paramref name="HostPath"/>) when the archive is written.</summary>
internal sealed record HostFileEntry(string Path, uint Mode, string HostPath) : LayoutEntry(Path);

/// <summary>A file whose bytes the builder generates (/etc/passwd, the module list).</summary>
internal sealed record ContentEntry(string Path, uint Mode, byte[] Content) : LayoutEntry(Path);

/// <summary>
/// The guest's root file system before it is written: a set of entries by absolute path. Paths
/// are canonical: a directory component that is a symlink here (on a merged-/usr host, /bin and
/// /lib point into /usr) is followed, so each file exists once, at the place the host keeps it,
/// and reachable through the same symlinks as on the host. The first entry at a path wins.
/// </summary>
internal sealed class ImageLayout
{
    private const int MaxSymlinkHops = 40;
    private readonly Dictionary<string, LayoutEntry> _entries = new(StringComparer.Ordinal);

    public IEnumerable<LayoutEntry> Entries => _entries.Values.OrderBy(e => e.Path, StringComparer.Ordinal);

    public LayoutEntry? this[string path] => _entries.GetValueOrDefault(Canonical(path));

    public bool Contains(string path) => _entries.ContainsKey(Canonical(path));

    /// <summary>Adds the entry at its canonical path, with any missing parent directories; false if
    /// something is already there.</summary>
    public bool TryAdd(LayoutEntry entry)
    {
        var path = Canonical(entry.Path);
        if (_entries.ContainsKey(path))
            return false;
        AddParents(path);
        _entries[path] = entry with { Path = path };
        return true;
    }

    public void AddDirectory(string path, uint mode = 0x1ED /* 0755 */) => TryAdd(new DirectoryEntry(path, mode));

    /// <summary>
    /// Mirrors a host path into the image the way the kernel resolves it: every symlink met on the
    /// way (in a directory component or at the end) is added as a symlink, and the file it finally
    /// names is added as a copy. Returns the host path of that file, with no symlinks in it.
    /// </summary>
    public string AddHostPath(string hostPath)
    {
        var hops = 0;
        var current = Walk(hostPath, (next, _) =>
        {
            if (new FileInfo(next).LinkTarget is not { } link)
                return null;
            if (++hops > MaxSymlinkHops)
                throw new GuestImageException($"{hostPath}: too many levels of symbolic links");
            TryAdd(new SymlinkEntry(next, link));
            return link;
        });
        if (Directory.Exists(current))
        {
            AddDirectory(current);
            return current;
        }
        if (!File.Exists(current))
            throw new GuestImageException($"{hostPath}: no such file");
        var mode = OperatingSystem.IsWindows() ? 0x1ED : (uint)File.GetUnixFileMode(current) & 0xFFF;
        TryAdd(new HostFileEntry(current, mode, current));
        return current;
    }

    /// <summary>The path with each directory component that is a symlink in the layout followed.</summary>
    public string Canonical(string path)
    {
        var hops = 0;
        // The last component stays as it is: an entry at a symlink's own path is the symlink.
        return Walk(path, (next, last) =>
            !last && _entries.GetValueOrDefault(next) is SymlinkEntry link && hops++ < MaxSymlinkHops ? link.Target : null);
    }

    /// <summary>Resolves <paramref name="path"/> from "/" one component at a time ("." and ".." as
    /// the kernel does). At each component, <paramref name="symlinkAt"/> gets the path so far and
    /// whether it is the last component, and returns the target of a symlink to follow there, or
    /// null to keep the component as it is. Returns where the walk ends.</summary>
    private static string Walk(string path, Func<string, bool, string?> symlinkAt)
    {
        var pending = new List<string>(Components(path));
        var current = "/";
        while (pending.Count > 0)
        {
            var part = pending[0];
            pending.RemoveAt(0);
            if (part is "" or ".")
                continue;
            if (part == "..")
            {
                current = Parent(current);
                continue;
            }
            var next = Join(current, part);
            if (symlinkAt(next, pending.Count == 0) is not { } target)
            {
                current = next;
                continue;
            }
            pending.InsertRange(0, Components(target));
            if (target.StartsWith('/'))
                current = "/";
        }
        return current;
    }

    private void AddParents(string path)
    {
        for (var dir = Parent(path); dir != "/" && !_entries.ContainsKey(dir); dir = Parent(dir))
            _entries[dir] = new DirectoryEntry(dir, 0x1ED);
    }

    private static string[] Components(string path) => path.Split('/');

    private static string Join(string dir, string name) => dir == "/" ? "/" + name : dir + "/" + name;

    private static string Parent(string path)
    {
        var slash = path.LastIndexOf('/');
        return slash <= 0 ? "/" : path[..slash];
    }
}
