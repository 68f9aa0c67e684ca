namespace Snowflock.Launcher.Hosts;

/// <summary>How sfrun reaches the other hosts of a multi-host job (hydra's <c>-launcher</c>,
/// <c>-launcher-exec</c>, <c>-iface</c>), read once from the command line.</summary>
public sealed record HostLaunchOptions
{
    /// <summary><c>-launcher</c>/<c>-bootstrap</c>: ssh, slurm, fork or manual; null chooses as hydra does
    /// (slurm inside a Slurm allocation, else ssh).</summary>
    public string? Launcher { get; init; }

    /// <summary><c>-launcher-exec</c>: the launcher's program (an ssh or srun of the site's own); null: from PATH.</summary>
    public string? LauncherExec { get; init; }

    /// <summary><c>-iface</c>: the interface whose address the agents dial back to; null: this host's name.</summary>
    public string? Interface { get; init; }

    /// <summary>The launchers sfrun knows.</summary>
    public static readonly IReadOnlyList<string> Names = ["ssh", "slurm", "fork", "manual"];
}
