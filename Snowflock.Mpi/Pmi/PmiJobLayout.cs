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

    /// <summary>Bytes of keys and values one rank may hold in the KVS. MPICH puts a business card
    /// of a few hundred bytes per rank, Open MPI a few KB; a megabyte is far beyond either.</summary>
    public long MaxKvsBytesPerRank { get; init; } = 1L << 20;

    /// <summary>Bytes of keys and values the whole job may hold in the KVS.</summary>
    public long MaxKvsBytes { get; init; } = 64L << 20;

    /// <summary>TCP connections open at once (<c>PMI_PORT</c>); more are closed as they come, so
    /// a flood of connections costs sfrun a bounded number of fds. Room for two per rank (a rank's
    /// relay and one still closing), never fewer than 256.</summary>
    public int MaxConnections { get; init; } = Math.Max(256, 2 * NodeOfRank.Count);

    /// <summary>How long a TCP connection may stay without identifying itself (<c>initack</c>).</summary>
    public TimeSpan IdentifyWithin { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Decides whether a TCP connection may stay (checked at accept, with rank -1) and
    /// claim a rank (checked again at <c>initack</c>): returns null to admit, or the reason to
    /// refuse. Null: any peer that names a free rank is admitted. Connections made with
    /// <see cref="Pmi1Server.ConnectRank"/> are the rank's by construction and not checked.</summary>
    public PmiAdmission? Admission { get; init; }

    public static PmiJobLayout SingleBlock(string kvsName, IReadOnlyList<int> nodeOfRank) =>
        new(kvsName, nodeOfRank, new int[nodeOfRank.Count]);
}

/// <summary>Admission check for a connection from <paramref name="remote"/> to the server's
/// <paramref name="local"/> end that claims <paramref name="rank"/> (-1: not yet known, at accept):
/// null admits, else the reason.</summary>
public delegate string? PmiAdmission(System.Net.IPEndPoint local, System.Net.IPEndPoint remote, int rank);
