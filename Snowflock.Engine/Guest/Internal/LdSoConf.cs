namespace Snowflock.Engine.Guest.Internal;

/// <summary>The library directories /etc/ld.so.conf names (with its <c>include</c> globs), in
/// order: what ldconfig indexes into ld.so.cache beyond the default directories.</summary>
internal static class LdSoConf
{
    public static IReadOnlyList<string> Directories(string conf)
    {
        var dirs = new List<string>();
        Read(conf, dirs, depth: 0);
        return dirs.Distinct().ToList();
    }

    private static void Read(string conf, List<string> dirs, int depth)
    {
        if (depth > 8 || !File.Exists(conf))
            return;
        foreach (var raw in File.ReadAllLines(conf))
        {
            var line = raw.Split('#')[0].Trim();
            if (line.Length == 0)
                continue;
            if (line.StartsWith("include ", StringComparison.Ordinal) || line.StartsWith("include\t", StringComparison.Ordinal))
            {
                var pattern = line[8..].Trim();
                if (!pattern.StartsWith('/'))
                    pattern = Path.Combine(Path.GetDirectoryName(conf)!, pattern);
                var dir = Path.GetDirectoryName(pattern)!;
                if (!System.IO.Directory.Exists(dir))
                    continue;
                foreach (var file in System.IO.Directory.GetFiles(dir, Path.GetFileName(pattern)).Order(StringComparer.Ordinal))
                    Read(file, dirs, depth + 1);
                continue;
            }
            dirs.Add(line);
        }
    }
}
