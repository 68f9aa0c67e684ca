namespace Snowflock.Mpi.Pmi;

/// <summary>What the PMI server must know of a job before the first rank connects.</summary>
/// <param name="KvsName">The job's key-value space name, unique per job.</param>
/// <param name="NodeOfRank">The node (clone or host) each rank runs on, for PMI_process_mapping.</param>
/// <param name="AppnumOfRank">The MPMD block each rank belongs to (MPI_APPNUM).</param>
public sealed record PmiJobLayout(string KvsName, IReadOnlyList<int> NodeOfRank, IReadOnlyList<int> AppnumOfRank)
{
    public int Size => NodeOfRank.Count;

    /// <summary>Bound on stored keys: MPICH puts a handful per rank; a flood is a bug or an attack.</summary>
    public int MaxKeys { get; init; } = 1_000_000;

    /// <summary>Decides whether a connection may claim a rank (checked at <c>initack</c>): returns
    /// null to admit, or the reason to refuse. Null: any peer that names a free rank is admitted.</summary>
    public PmiAdmission? Admission { get; init; }

    public static PmiJobLayout SingleBlock(string kvsName, IReadOnlyList<int> nodeOfRank) =>
        new(kvsName, nodeOfRank, new int[nodeOfRank.Count]);
}

/// <summary>Admission check for a connection from <paramref name="remote"/> to the server's
/// <paramref name="local"/> end that claims <paramref name="rank"/>: null admits, else the reason.</summary>
public delegate string? PmiAdmission(System.Net.IPEndPoint local, System.Net.IPEndPoint remote, int rank);
