namespace Snowflock.Launcher.Internal.Hosts.Bootstrap;

/// <summary>Which launcher starts the agents, decided as hydra decides: the one the user named;
/// else slurm when the hosts are a Slurm allocation's, else ssh (PBS's hosts too). The head's own
/// host always gets its agent by fork.</summary>
internal static class BootstrapChoice
{
    public static IBootstrap For(Snowflock.Launcher.Hosts.HostLaunchOptions options, string allocationSource, Func<string, string?> getEnv)
    {
        var name = options.Launcher
            ?? (allocationSource == "Slurm allocation" && getEnv("SLURM_JOB_ID") is { Length: > 0 } ? "slurm" : "ssh");
        return name switch
        {
            "ssh" or "rsh" => new SshBootstrap(options.LauncherExec ?? (name == "rsh" ? "rsh" : "ssh")),
            "slurm" => new SlurmBootstrap(options.LauncherExec ?? "srun"),
            "fork" => new ForkBootstrap(),
            "manual" => new ManualBootstrap(Console.Error),
            _ => throw new PlacementException($"-launcher {name}: sfrun starts agents with ssh, slurm, fork or manual"),
        };
    }
}
