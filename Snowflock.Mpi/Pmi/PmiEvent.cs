namespace Snowflock.Mpi.Pmi;

/// <summary>What the PMI server tells the job about its ranks, in the order it happened.</summary>
public abstract record PmiEvent(int Rank)
{
    /// <summary>When it happened (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>), which
    /// may be well before the job reads it.</summary>
    public long At { get; init; } = System.Diagnostics.Stopwatch.GetTimestamp();

    // Two events are the same event whatever instant they were taken at.
    public virtual bool Equals(PmiEvent? other) => other is not null && EqualityContract == other.EqualityContract && Rank == other.Rank;

    public override int GetHashCode() => HashCode.Combine(EqualityContract, Rank);
}

/// <summary>The rank identified itself (<c>initack</c>) and said <c>init</c>: it is inside MPI_Init.</summary>
public sealed record PmiRankInitialized(int Rank) : PmiEvent(Rank);

/// <summary>All ranks reached a barrier; <paramref name="Epoch"/> counts barriers from 1.</summary>
public sealed record PmiBarrierCompleted(int Epoch) : PmiEvent(-1)
{
    /// <summary>Barrier messages that reached sfrun for it: one per rank, or one per host where
    /// host agents aggregate.</summary>
    public int Arrivals { get; init; }

    /// <summary>PMI requests sfrun answered since the previous barrier.</summary>
    public int Requests { get; init; }

    // The same barrier whatever the counts that came with it, as events ignore their instant.
    public bool Equals(PmiBarrierCompleted? other) => base.Equals(other) && Epoch == other.Epoch;

    public override int GetHashCode() => HashCode.Combine(base.GetHashCode(), Epoch);
}

/// <summary>The rank called MPI_Finalize; exiting afterwards is a clean exit.</summary>
public sealed record PmiRankFinalized(int Rank) : PmiEvent(Rank);

/// <summary>The rank called MPI_Abort: the job must end now with <paramref name="ExitCode"/>.</summary>
public sealed record PmiAbortRequested(int Rank, int ExitCode, string? Message) : PmiEvent(Rank);

/// <summary>A rank of this job broke the protocol: its job cannot go on.</summary>
public sealed record PmiProtocolViolation(int Rank, string Message) : PmiEvent(Rank);
