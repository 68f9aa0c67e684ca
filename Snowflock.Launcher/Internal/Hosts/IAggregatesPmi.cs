using System.Net.Sockets;

namespace Snowflock.Launcher.Internal.Hosts;

/// <summary>An engine whose clones are hosts with an agent that aggregates its ranks' PMI (hydra's
/// proxies): the job hands it one extra PMI connection per host, which speaks for that host's ranks.</summary>
internal interface IAggregatesPmi
{
    /// <param name="connectHost">Makes the PMI server's connection for a host's ranks.</param>
    void JoinHostPmi(Func<IReadOnlyCollection<int>, Socket> connectHost);
}
