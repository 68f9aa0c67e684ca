using System.Net;
using NLog;
using Snowflock.Engine.Internal;
using Snowflock.Engine.Engines.Process.Internal;

namespace Snowflock.Engine.Engines.Process;

/// <summary>
/// The process engine: every clone is a slot on this host and every rank a local process, so
/// all clones share one node (and MPICH's shared-memory transport). It needs nothing but Linux.
/// The warm fork server (ranks forked from a master stopped before main) plugs in behind
/// <see cref="ProcessClone.StartRankAsync"/> without the launcher seeing a difference.
/// </summary>
public sealed class ProcessEngine : IEngine
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Process");

    private readonly List<ProcessClone> _clones = [];
    private readonly object _gate = new();

    public string Name => "process";

    public Task<EnginePreparation> PrepareAsync(WarmMasterSpec master, CancellationToken ct)
    {
        // Ranks may start children of their own; as subreaper sfrun inherits them when a rank
        // dies, and teardown kills them too.
        Posix.BecomeSubreaper();
        Log.ForDebugEvent().Message("job {JobId}: process engine ready for {Count} program(s)", master.JobId, master.Executables.Count)
            .Property("EventName", "EnginePrepared").Log();
        return Task.FromResult(new EnginePreparation(IPAddress.Loopback, IPAddress.Loopback.ToString()));
    }

    public Task<IReadOnlyList<IClone>> CloneAsync(int count, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var made = new List<IClone>(count);
        lock (_gate)
        {
            for (var i = 0; i < count; i++)
            {
                var clone = new ProcessClone(new CloneIdentity(_clones.Count, NodeId: 0, HostName: "localhost"));
                _clones.Add(clone);
                made.Add(clone);
            }
        }
        return Task.FromResult<IReadOnlyList<IClone>>(made);
    }

    public async Task TeardownAsync(CancellationToken ct)
    {
        ProcessClone[] clones;
        lock (_gate)
            clones = [.. _clones];
        await Task.WhenAll(clones.Select(c => c.DestroyAsync(ct))).ConfigureAwait(false);
        KillOrphans();
    }

    /// <summary>Kills what the ranks left behind: descendants that were reparented to sfrun.
    /// Repeated because a dying orphan may itself orphan children.</summary>
    private static void KillOrphans()
    {
        for (var round = 0; round < 10; round++)
        {
            var orphans = Posix.LiveChildren();
            if (orphans.Count == 0)
                return;
            foreach (var pid in orphans)
                Posix.TrySignal(pid, Signals.SIGKILL);
            Log.ForDebugEvent().Message("killed {Count} processes left behind by ranks", orphans.Count)
                .Property("EventName", "OrphansKilled").Log();
            Thread.Sleep(10);
        }
    }

    public async ValueTask DisposeAsync() => await TeardownAsync(CancellationToken.None).ConfigureAwait(false);
}
