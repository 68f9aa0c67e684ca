using Snowflock.Launcher.Placement;

namespace Snowflock.Launcher.Internal;

/// <summary>Turns the user's hosts, host file or batch allocation into concrete rank counts and
/// checks that every rank can run where it is placed.</summary>
internal static class PlacementPlan
{
    /// <returns>The spec with every block's rank count, and where the ranks go across hosts
    /// (<see cref="Hosts.HostPlan.AllLocal"/> when all of them run here).</returns>
    public static (JobSpec Spec, Allocation Allocation, Hosts.HostPlan Hosts) Apply(JobSpec spec, Func<string, string?> getEnv)
    {
        var allocation = Allocation.Resolve(spec.HostList, spec.HostFile, spec.PerNode, getEnv);
        // mpiexec without -n runs one rank per slot of an explicit allocation, else one rank.
        var defaultRanks = allocation.Explicit ? allocation.TotalSlots : 1;
        var blocks = spec.Blocks.Select(b => b.Ranks > 0 ? b : b with { Ranks = spec.Blocks.Count == 1 ? defaultRanks : 1 }).ToList();
        var placed = spec with { Blocks = blocks };

        var hosts = spec.MapByNode ? allocation.HostOfRanksRoundRobin(placed.TotalRanks) : allocation.HostOfRanks(placed.TotalRanks);
        var plan = Hosts.HostPlan.From(hosts, Allocation.IsLocal, allocation.Source);
        if (!plan.AllLocal)
        {
            // Other hosts run the process engine through their agents (VM clones across hosts are not built yet).
            if (spec.Engine != "process")
                throw new PlacementException($"ranks on other hosts ({allocation.Source}) run as processes; --engine {spec.Engine} works on one host only");
            if (spec.Isolate || spec.WarmVm is not null)
                throw new PlacementException($"{(spec.Isolate ? "--isolate" : "--vm")} works on one host only; ranks are placed on {string.Join(", ", plan.Hosts)}");
        }
        return (placed, allocation, plan);
    }
}
