namespace Snowflock.Engine;

/// <summary>
/// Turns one warm master into N clones that each run ranks. The launcher calls
/// <see cref="PrepareAsync"/> once, <see cref="CloneAsync"/> once per job, starts ranks in the
/// clones, and always calls <see cref="TeardownAsync"/> (also after failures and signals).
/// Engines: process (clones are local processes), qemu and xen (clones are VMs).
/// </summary>
public interface IEngine : IAsyncDisposable
{
    /// <summary>The name users pass to <c>--engine</c>.</summary>
    string Name { get; }

    /// <summary>Makes the warm master ready (boot or find the template VM, take its descriptor)
    /// and says how clones reach the launcher's PMI server.</summary>
    Task<EnginePreparation> PrepareAsync(WarmMasterSpec master, CancellationToken ct);

    /// <summary>Creates <paramref name="count"/> clones of the warm master. On failure the clones
    /// made so far are destroyed before the exception leaves.</summary>
    Task<IReadOnlyList<IClone>> CloneAsync(int count, CancellationToken ct);

    /// <summary>Destroys every clone, rank and resource of the job. Safe to call more than once.</summary>
    Task TeardownAsync(CancellationToken ct);
}

/// <summary>What the master holds warm: the programs the ranks will run.</summary>
public sealed record WarmMasterSpec(string JobId, IReadOnlyList<string> Executables)
{
    /// <summary>False (<c>--no-warm</c>): no warm master, every rank starts cold from its executable.</summary>
    public bool Warm { get; init; } = true;

    /// <summary>Ranks per clone (<c>-ppn</c>); null lets the engine choose (VM engines: one rank per VM).</summary>
    public int? RanksPerClone { get; init; }

    /// <summary><c>--vm NAME</c>: fork every rank from this warm VM's long-lived master (the
    /// launcher has checked with <see cref="WarmVms.ForJob"/> that it holds the job's program).</summary>
    public string? WarmVm { get; init; }

    /// <summary><c>--isolate</c>: each clone gets its own pid, uts, mount and network namespace
    /// and an address of its own, so that it looks like a machine of its own to MPI.</summary>
    public bool Isolate { get; init; }
}

/// <summary>How ranks inside clones reach the launcher: bind the PMI server on
/// <paramref name="PmiListenAddress"/>, and tell ranks to connect to <paramref name="PmiHostForClones"/>.</summary>
public sealed record EnginePreparation(System.Net.IPAddress PmiListenAddress, string PmiHostForClones)
{
    /// <summary>Set when the clones live in a network of their own (<c>--isolate</c>): runs an
    /// action there, so that the PMI server's socket, made by it, is where clones can reach it.</summary>
    public Action<Action>? RunInClonesNetwork { get; init; }

    /// <summary>True when every rank runs on sfrun's own host and inherits an fd: the launcher
    /// then gives each rank a socket pair end (<see cref="RankStart.PmiSocket"/>, hydra's
    /// <c>PMI_FD</c>) and opens no PMI listener at all.</summary>
    public bool RanksInheritPmiFd { get; init; }

    /// <summary>How many rank starts the launcher may have in flight at once: 1 where a start is
    /// a fork on this host; more where each is a round trip to an agent that starts ranks concurrently.</summary>
    public int StartsInFlight { get; init; } = 1;
}
