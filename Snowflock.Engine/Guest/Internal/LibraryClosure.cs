using System.Text;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Guest.Internal;

/// <summary>
/// Adds programs to an <see cref="ImageLayout"/> with everything the dynamic loader will open for
/// them: each <c>DT_NEEDED</c> library, found as ld.so finds it (<c>DT_RPATH</c> of the object and
/// its loaders unless it has <c>DT_RUNPATH</c>, then <c>DT_RUNPATH</c>, then the directories of
/// /etc/ld.so.conf, which is what ld.so.cache indexes, then the default directories), the loader
/// named in <c>PT_INTERP</c>, and for scripts the <c>#!</c> interpreter. Symlinks stay symlinks.
/// </summary>
internal sealed class LibraryClosure(ImageLayout layout, IReadOnlyList<string> configuredDirectories)
{
    private const ushort EM_X86_64 = 62;

    public static readonly IReadOnlyList<string> DefaultDirectories =
        ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"];

    private static readonly string[] SearchPath = ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"];

    private readonly HashSet<string> _scanned = new(StringComparer.Ordinal);

    /// <summary>(who needs it, library name) for each library that was not found on the host.</summary>
    public List<(string Needer, string Library)> Missing { get; } = [];

    /// <summary>Every host file added so far, by its real path (no symlinks).</summary>
    public IEnumerable<string> Files => _scanned;

    public static LibraryClosure ForHost(ImageLayout layout) => new(layout, LdSoConf.Directories("/etc/ld.so.conf"));

    /// <summary>Adds the host file at <paramref name="hostPath"/> (and its symlinks) and, if it is ELF
    /// or a script, everything it loads.</summary>
    public void Add(string hostPath) => Add(hostPath, []);

    private void Add(string hostPath, IReadOnlyList<string> loaderRPaths)
    {
        var real = layout.AddHostPath(hostPath);
        if (!_scanned.Add(real) || Directory.Exists(real))
            return;
        var dynamic = ElfDependencies.DynamicOf(real);
        if (dynamic is null)
        {
            AddInterpreterOf(real);
            return;
        }
        if (dynamic.Interpreter is { } interpreter)
            Add(interpreter, []);

        var origin = Path.GetDirectoryName(real)!;
        var ownRPath = dynamic.RunPath is null ? Expand(dynamic.RPath, origin) : [];
        var rpaths = ownRPath.Concat(loaderRPaths).ToList();
        var runpath = Expand(dynamic.RunPath, origin);
        foreach (var name in dynamic.Needed)
        {
            if (Resolve(name, dynamic.RunPath is null ? ownRPath.Concat(loaderRPaths) : [], runpath) is { } found)
                Add(found, rpaths);
            else
                Missing.Add((real, name));
        }
    }

    private string? Resolve(string name, IEnumerable<string> rpaths, IEnumerable<string> runpath)
    {
        if (name.Contains('/'))
            return File.Exists(name) ? name : null;
        foreach (var dir in rpaths.Concat(runpath).Concat(configuredDirectories).Concat(DefaultDirectories))
        {
            var candidate = Path.Combine(dir, name);
            if (IsLoadable(candidate))
                return candidate;
        }
        return null;
    }

    /// <summary>ld.so skips a file of the wrong class or machine and keeps looking, so must we
    /// (/usr/lib may hold a 32-bit library of the same name).</summary>
    private static bool IsLoadable(string path)
    {
        try
        {
            using var f = File.OpenRead(path);
            Span<byte> head = stackalloc byte[20];
            return f.Read(head) == 20 && head[0] == 0x7F && head[1] == 'E' && head[2] == 'L' && head[3] == 'F'
                && head[4] == 2 && BitConverter.ToUInt16(head[18..]) == EM_X86_64;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>"$ORIGIN/../lib:/opt/x" → directories, with $ORIGIN and $LIB expanded as ld.so does.</summary>
    private static List<string> Expand(string? path, string origin) =>
        path is null
            ? []
            : path.Split(':', StringSplitOptions.RemoveEmptyEntries)
                .Select(d => d.Replace("${ORIGIN}", origin).Replace("$ORIGIN", origin)
                    .Replace("${LIB}", "lib/x86_64-linux-gnu").Replace("$LIB", "lib/x86_64-linux-gnu")
                    .Replace("${PLATFORM}", "x86_64").Replace("$PLATFORM", "x86_64"))
                .ToList();

    /// <summary>A script runs through its <c>#!</c> interpreter; <c>#!/usr/bin/env NAME</c> also
    /// needs NAME from the PATH.</summary>
    private void AddInterpreterOf(string path)
    {
        string firstLine;
        try
        {
            using var f = File.OpenRead(path);
            var head = new byte[256];
            var n = f.Read(head);
            if (n < 3 || head[0] != '#' || head[1] != '!')
                return;
            var end = Array.IndexOf(head, (byte)'\n', 0, n);
            firstLine = Encoding.UTF8.GetString(head, 2, (end < 0 ? n : end) - 2);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return;
        }
        var words = firstLine.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0 || !words[0].StartsWith('/'))
            return;
        if (!File.Exists(words[0]))
            throw new GuestImageException($"{path}: its interpreter {words[0]} does not exist on this host");
        Add(words[0]);
        if (Path.GetFileName(words[0]) == "env" && words.Skip(1).FirstOrDefault(w => !w.StartsWith('-')) is { } program
            && SearchPath.Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists) is { } found)
            Add(found);
    }
}
