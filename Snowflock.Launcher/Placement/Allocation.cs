using System.Net;

namespace Snowflock.Launcher.Placement;

/// <summary>
/// Where a job's ranks go, decided as mpiexec does: <c>-hosts</c> or <c>-f</c> if given; else the
/// batch system's allocation (Slurm: <c>SLURM_JOB_NODELIST</c> + <c>SLURM_TASKS_PER_NODE</c>;
/// PBS: <c>PBS_NODEFILE</c>); else this host. <c>-ppn</c> overrides the slots of every host.
/// Ranks fill each host's slots in order, then wrap around (hydra's default).
/// </summary>
public sealed record Allocation(IReadOnlyList<HostSlots> Hosts, string Source, bool Explicit)
{
    public int TotalSlots => Hosts.Sum(h => h.Slots);

    public static Allocation Resolve(string? hostList, string? hostFile, int? perNode, Func<string, string?> getEnv)
    {
        Allocation a;
        if (hostList is not null)
            a = new(HostFile.ParseList(hostList), "-hosts", true);
        else if (hostFile is not null)
            a = new(HostFile.Read(hostFile), $"host file {hostFile}", true);
        else if (getEnv("SLURM_JOB_NODELIST") is { Length: > 0 } nodes)
            a = new(Slurm(nodes, getEnv("SLURM_TASKS_PER_NODE")), "Slurm allocation", true);
        else if (getEnv("PBS_NODEFILE") is { Length: > 0 } pbs)
            a = new(HostFile.Read(pbs), "PBS allocation", true);
        else
            a = new([new HostSlots("localhost", 1)], "this host", false);
        if (perNode is { } ppn)
            a = a with { Hosts = a.Hosts.Select(h => h with { Slots = ppn }).ToList() };
        return a;
    }

    private static List<HostSlots> Slurm(string nodeList, string? tasksPerNode)
    {
        var hosts = SlurmHostList.Expand(nodeList);
        var counts = tasksPerNode is { Length: > 0 } t ? SlurmHostList.ExpandCounts(t) : Enumerable.Repeat(1, hosts.Count).ToList();
        if (counts.Count != hosts.Count)
            throw new PlacementException($"SLURM_TASKS_PER_NODE '{tasksPerNode}' names {counts.Count} nodes, SLURM_JOB_NODELIST {hosts.Count}");
        var list = new List<HostSlots>();
        for (var i = 0; i < hosts.Count; i++)
            HostFile.Add(list, hosts[i], counts[i]);
        return list;
    }

    /// <summary>The host of each of <paramref name="ranks"/> ranks.</summary>
    public IReadOnlyList<string> HostOfRanks(int ranks)
    {
        var result = new List<string>(ranks);
        while (result.Count < ranks)
            foreach (var h in Hosts)
                for (var s = 0; s < h.Slots && result.Count < ranks; s++)
                    result.Add(h.Host);
        return result;
    }

    /// <summary><c>--map-by node</c>: rank r on host r mod hosts, each host up to its slots, then around again.</summary>
    public IReadOnlyList<string> HostOfRanksRoundRobin(int ranks)
    {
        var result = new List<string>(ranks);
        var used = new int[Hosts.Count];
        while (result.Count < ranks)
        {
            var placedOne = false;
            for (var i = 0; i < Hosts.Count && result.Count < ranks; i++)
                if (used[i] < Hosts[i].Slots)
                {
                    used[i]++;
                    result.Add(Hosts[i].Host);
                    placedOne = true;
                }
            if (!placedOne)
                Array.Clear(used); // every slot taken: oversubscribe, round again
        }
        return result;
    }

    /// <summary>True for names that mean the machine sfrun runs on.</summary>
    public static bool IsLocal(string host)
    {
        if (host is "localhost" || host.StartsWith("127.", StringComparison.Ordinal) || host == "::1")
            return true;
        var me = Dns.GetHostName();
        return string.Equals(host, me, StringComparison.OrdinalIgnoreCase) ||
               string.Equals(host, me.Split('.')[0], StringComparison.OrdinalIgnoreCase) ||
               string.Equals(host.Split('.')[0], me, StringComparison.OrdinalIgnoreCase);
    }
}
