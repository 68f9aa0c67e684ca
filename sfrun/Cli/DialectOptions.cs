using System.Globalization;
using Snowflock.Launcher.Placement;

namespace Snowflock.Cli;

/// <summary>The values of the options both launchers spell their own way (<c>-ppn</c>/<c>-N</c>/
/// <c>--map-by ppr:N:node</c>, <c>--bind-to</c>/<c>-binding</c>, <c>--stdin</c>), read into sfrun's terms.</summary>
internal static class DialectOptions
{
    /// <summary>Ranks per host: the last of -ppn, -N and --map-by ppr:N:node that is given. --map-by
    /// slot, core, hwthread and node place ranks in rank order on this one host, as they do there.</summary>
    public static int? PerNode(string? ppn, string? openMpiN, string? mapBy)
    {
        int? perNode = ppn is not null ? SfrunCommandLine.PositiveCount(ppn, "-ppn") : null;
        if (openMpiN is not null)
            perNode = SfrunCommandLine.PositiveCount(openMpiN, "-N");
        if (mapBy is null)
            return perNode;
        var parts = mapBy.ToLowerInvariant().Split(':');
        if (parts is ["ppr", var n, "node", ..])
            return SfrunCommandLine.PositiveCount(n, "--map-by ppr:N:node");
        if (parts[0] is "slot" or "core" or "hwthread" or "node" or "socket" or "numa" or "l3cache" or "board")
            return perNode;
        throw new UsageException($"--map-by {mapBy}: sfrun maps by slot, core, hwthread, socket, node or ppr:N:node");
    }

    /// <summary>--bind-to / -bind-to / -binding: core, socket, hwthread or none (modifiers after ':' are ignored).</summary>
    public static BindingPolicy Binding(string? bindTo) => bindTo?.ToLowerInvariant().Split(':')[0] switch
    {
        null or "none" => BindingPolicy.None,
        "core" or "cores" => BindingPolicy.Core,
        "socket" or "sockets" or "package" => BindingPolicy.Socket,
        "hwthread" or "hwthreads" or "cpu" => BindingPolicy.HwThread,
        _ => throw new UsageException($"--bind-to {bindTo}: sfrun binds to core, socket, hwthread or none"),
    };

    /// <summary>--stdin: a rank, or none; "all" is not supported yet.</summary>
    public static int? StdinRank(string? value) => value switch
    {
        null => 0,
        "none" => null,
        "all" => throw new UsageException("--stdin all is not supported yet; sfrun gives stdin to one rank (--stdin RANK, default 0)"),
        _ when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var r) => r,
        _ => throw new UsageException($"--stdin needs a rank, all or none, got '{value}'"),
    };
}
