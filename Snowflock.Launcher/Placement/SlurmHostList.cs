using System.Globalization;
using System.Text;

namespace Snowflock.Launcher.Placement;

/// <summary>
/// Slurm's compressed notations: host lists such as <c>node[01-04,07],gpu[1-2]</c> (zero padding
/// kept, as in <c>scontrol show hostnames</c>) and task counts such as <c>2(x3),1</c>.
/// </summary>
public static class SlurmHostList
{
    public static IReadOnlyList<string> Expand(string list)
    {
        var hosts = new List<string>();
        foreach (var item in SplitTopLevel(list))
        {
            var open = item.IndexOf('[');
            if (open < 0)
            {
                hosts.Add(item);
                continue;
            }
            var close = item.IndexOf(']', open);
            if (close < 0)
                throw new PlacementException($"Slurm host list '{list}': '[' without ']' in '{item}'");
            var prefix = item[..open];
            var suffix = item[(close + 1)..];
            if (suffix.Contains('['))
                throw new PlacementException($"Slurm host list '{list}': more than one range in '{item}' is not supported");
            foreach (var range in item[(open + 1)..close].Split(','))
            {
                var dash = range.IndexOf('-');
                var from = dash < 0 ? range : range[..dash];
                var to = dash < 0 ? range : range[(dash + 1)..];
                if (!int.TryParse(from, NumberStyles.None, CultureInfo.InvariantCulture, out var a) ||
                    !int.TryParse(to, NumberStyles.None, CultureInfo.InvariantCulture, out var b) || b < a || b - a > 100_000)
                    throw new PlacementException($"Slurm host list '{list}': bad range '{range}'");
                for (var n = a; n <= b; n++)
                    hosts.Add(prefix + n.ToString(CultureInfo.InvariantCulture).PadLeft(from.Length, '0') + suffix);
            }
        }
        return hosts;
    }

    /// <summary>Expands <c>SLURM_TASKS_PER_NODE</c>, e.g. <c>2(x3),1</c> → 2,2,2,1.</summary>
    public static IReadOnlyList<int> ExpandCounts(string counts)
    {
        var result = new List<int>();
        foreach (var item in counts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var paren = item.IndexOf("(x", StringComparison.Ordinal);
            var countText = paren < 0 ? item : item[..paren];
            var repeatText = paren < 0 ? "1" : item[(paren + 2)..].TrimEnd(')');
            if (!int.TryParse(countText, NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count <= 0 ||
                !int.TryParse(repeatText, NumberStyles.None, CultureInfo.InvariantCulture, out var repeat) || repeat <= 0)
                throw new PlacementException($"SLURM_TASKS_PER_NODE '{counts}': cannot read '{item}'");
            result.AddRange(Enumerable.Repeat(count, repeat));
        }
        return result;
    }

    private static IEnumerable<string> SplitTopLevel(string list)
    {
        var depth = 0;
        var current = new StringBuilder();
        foreach (var c in list)
        {
            if (c == ',' && depth == 0)
            {
                if (current.Length > 0)
                    yield return current.ToString().Trim();
                current.Clear();
                continue;
            }
            depth += c == '[' ? 1 : c == ']' ? -1 : 0;
            current.Append(c);
        }
        if (current.Length > 0)
            yield return current.ToString().Trim();
    }
}
