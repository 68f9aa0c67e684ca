namespace Snowflock.Engine.Engines.Qemu.Internal;

/// <summary>One rank's place in a VM clone: the VM's agent channel and the rank's slot in it.</summary>
internal sealed class QemuClone(CloneIdentity identity, QemuVm vm, ushort slot, int ranksInVm) : IClone
{
    public CloneIdentity Identity { get; } = identity;

    public Task<IRankProcess> StartRankAsync(RankStart start, CancellationToken ct)
    {
        var agent = vm.Agent ?? throw new RankStartException($"rank {start.Rank}: {vm.Name} has no agent channel");
        return agent.StartRankAsync(slot, start with { Environment = WithTransportHint(start.Environment) }, ct);
    }

    /// <summary>What the engine knows and UCX would otherwise probe for at every MPI_Init (slowly,
    /// under TCG: ~15% of it): a clone's only devices are virtio, so ranks in other VMs are reached
    /// by TCP and ranks in the same VM by shared memory. The user's own UCX_TLS wins.</summary>
    private IReadOnlyDictionary<string, string> WithTransportHint(IReadOnlyDictionary<string, string> env)
    {
        if (env.ContainsKey("UCX_TLS"))
            return env;
        return new Dictionary<string, string>(env) { ["UCX_TLS"] = ranksInVm > 1 ? "self,sm,tcp" : "self,tcp" };
    }
}
