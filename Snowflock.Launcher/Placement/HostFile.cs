using System.Globalization;

namespace Snowflock.Launcher.Placement;

/// <summary>
/// Host files as hydra (<c>host</c>, <c>host:slots</c>) and Open MPI (<c>host slots=N</c>) write
/// them, and <c>-hosts a,b:2</c>. A host named twice adds up its slots.
/// </summary>
public static class HostFile
{
    public static IReadOnlyList<HostSlots> Read(string path)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PlacementException($"host file {path}: {Snowflock.Engine.IoMessages.Describe(e, path)}");
        }
        return Parse(lines, $"host file {path}");
    }

    public static IReadOnlyList<HostSlots> Parse(IEnumerable<string> lines, string source)
    {
        var hosts = new List<HostSlots>();
        var number = 0;
        foreach (var raw in lines)
        {
            number++;
            var line = raw.Split('#')[0].Trim();
            if (line.Length == 0)
                continue;
            var words = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            var host = words[0];
            var slots = 1;
            var colon = host.LastIndexOf(':');
            if (colon >= 0)
            {
                slots = Count(host[(colon + 1)..], source, number);
                host = host[..colon];
            }
            foreach (var w in words.Skip(1))
            {
                if (w.StartsWith("slots=", StringComparison.Ordinal) || w.StartsWith("cpu=", StringComparison.Ordinal))
                    slots = Count(w[(w.IndexOf('=') + 1)..], source, number);
                else if (!w.StartsWith("max_slots=", StringComparison.Ordinal))
                    throw new PlacementException($"{source} line {number}: cannot read '{w}' (expected slots=N)");
            }
            CheckName(host, source, number);
            Add(hosts, host, slots);
        }
        if (hosts.Count == 0)
            throw new PlacementException($"{source}: no hosts");
        return hosts;
    }

    public static IReadOnlyList<HostSlots> ParseList(string list) =>
        Parse(list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), $"-hosts {list}");

    internal static void Add(List<HostSlots> hosts, string host, int slots)
    {
        var at = hosts.FindIndex(h => h.Host == host);
        if (at >= 0)
            hosts[at] = hosts[at] with { Slots = hosts[at].Slots + slots };
        else
            hosts.Add(new HostSlots(host, slots));
    }

    private static int Count(string text, string source, int line) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new PlacementException($"{source} line {line}: slot count '{text}' is not a positive number");

    private static void CheckName(string host, string source, int line)
    {
        if (host.Length == 0 || host.Length > 253 || host.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_')))
            throw new PlacementException($"{source} line {line}: '{host}' is not a host name");
    }
}
