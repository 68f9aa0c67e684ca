using Snowflock.Engine.Guest.Internal;

namespace Snowflock.Engine.Engines.Qemu.Internal;

/// <summary>One rank's place in a VM clone: the VM's agent channel and the rank's slot in it.</summary>
internal sealed class QemuClone(CloneIdentity identity, QemuVm vm, ushort slot) : IClone
{
    public CloneIdentity Identity { get; } = identity;

    public Task<IRankProcess> StartRankAsync(RankStart start, CancellationToken ct)
    {
        var agent = vm.Agent ?? throw new RankStartException($"rank {start.Rank}: {vm.Name} has no agent channel");
        return agent.StartRankAsync(slot, start, ct);
    }
}
