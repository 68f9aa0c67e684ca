using Snowflock.Launcher.Placement;

namespace Snowflock.Launcher.Internal;

/// <summary>Turns the user's hosts, host file or batch allocation into concrete rank counts and
/// checks that every rank can run where it is placed.</summary>
internal static class PlacementPlan
{
    public static (JobSpec Spec, Allocation Allocation) Apply(JobSpec spec, Func<string, string?> getEnv)
    {
        var allocation = Allocation.Resolve(spec.HostList, spec.HostFile, spec.PerNode, getEnv);
        // mpiexec without -n runs one rank per slot of an explicit allocation, else one rank.
        var defaultRanks = allocation.Explicit ? allocation.TotalSlots : 1;
        var blocks = spec.Blocks.Select(b => b.Ranks > 0 ? b : b with { Ranks = spec.Blocks.Count == 1 ? defaultRanks : 1 }).ToList();
        var placed = spec with { Blocks = blocks };

        var hosts = allocation.HostOfRanks(placed.TotalRanks);
        var local = hosts.Distinct().ToDictionary(h => h, Allocation.IsLocal);
        for (var rank = 0; rank < hosts.Count; rank++)
            if (!local[hosts[rank]])
                throw new PlacementException(
                    $"rank {rank} is placed on {hosts[rank]} ({allocation.Source}), but this sfrun runs ranks only on this host " +
                    "(scale-out agents are not built yet); use -hosts localhost or a one-node allocation");
        return (placed, allocation);
    }
}
