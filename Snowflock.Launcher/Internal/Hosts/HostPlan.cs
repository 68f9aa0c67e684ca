namespace Snowflock.Launcher.Internal.Hosts;

/// <summary>Where each rank of a multi-host job runs: the hosts in the order they were given
/// (their index is the node id MPI's process mapping sees), and each rank's host.</summary>
internal sealed record HostPlan(IReadOnlyList<string> Hosts, IReadOnlyList<int> HostOfRank, IReadOnlyList<bool> IsLocal, string Source)
{
    public int RanksOn(int host) => HostOfRank.Count(h => h == host);

    /// <summary>True when every rank runs on sfrun's own host: no agent is needed.</summary>
    public bool AllLocal => HostOfRank.All(h => IsLocal[h]);

    public static HostPlan From(IReadOnlyList<string> hostOfRank, Func<string, bool> isLocal, string source)
    {
        var hosts = hostOfRank.Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        var index = hosts.Select((h, i) => (h, i)).ToDictionary(x => x.h, x => x.i, StringComparer.OrdinalIgnoreCase);
        return new HostPlan(hosts, hostOfRank.Select(h => index[h]).ToList(), hosts.Select(isLocal).ToList(), source);
    }
}
