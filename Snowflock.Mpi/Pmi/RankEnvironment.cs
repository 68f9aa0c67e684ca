using System.Net;

namespace Snowflock.Mpi.Pmi;

/// <summary>The environment that connects one rank to the job's PMI server, as hydra sets it.</summary>
public static class RankEnvironment
{
    /// <summary>Variables MPICH's PMI-1 client reads (PMI_PORT + PMI_ID select the TCP handshake),
    /// plus the ones hydra sets that programs and libraries look at.</summary>
    public static IReadOnlyDictionary<string, string> For(string pmiHost, int pmiPort, int rank, int size,
        int localRank, int localSize, int appnum)
    {
        var host = IPAddress.TryParse(pmiHost, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? $"[{pmiHost}]" : pmiHost;
        return new Dictionary<string, string>
        {
            ["PMI_PORT"] = $"{host}:{pmiPort}",
            ["PMI_ID"] = rank.ToString(),
            ["PMI_RANK"] = rank.ToString(),
            ["PMI_SIZE"] = size.ToString(),
            ["MPI_LOCALRANKID"] = localRank.ToString(),
            ["MPI_LOCALNRANKS"] = localSize.ToString(),
            ["MPI_APPNUM"] = appnum.ToString(),
        };
    }

    /// <summary>The same for a rank that inherits its connection (hydra's PMI_FD + PMI_RANK +
    /// PMI_SIZE): no PMI_PORT and no PMI_ID; the engine that hands the fd on sets PMI_FD.</summary>
    public static IReadOnlyDictionary<string, string> ForInherited(int rank, int size, int localRank, int localSize, int appnum) =>
        new Dictionary<string, string>
        {
            ["PMI_RANK"] = rank.ToString(),
            ["PMI_SIZE"] = size.ToString(),
            ["MPI_LOCALRANKID"] = localRank.ToString(),
            ["MPI_LOCALNRANKS"] = localSize.ToString(),
            ["MPI_APPNUM"] = appnum.ToString(),
        };

    /// <summary>Names this module sets, so the launcher can drop stale ones inherited from a parent job.</summary>
    public static readonly IReadOnlyList<string> Inherited = ["PMI_FD", "PMI_PORT", "PMI_ID", "PMI_RANK", "PMI_SIZE",
        "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "MPI_APPNUM", "PMI_SPAWNED"];

    /// <summary>What an outer job's process manager leaves in the environment that would make a
    /// rank of this job join the outer one instead (sfrun inside a Flux or Open MPI/PMIx job, or
    /// an srun step with PMIx): exact names, and prefixes of families.</summary>
    public static readonly IReadOnlyList<string> OuterJob = ["FLUX_JOB_ID", "FLUX_PMI_LIBRARY_PATH", "OMPI_MCA_orte_hnp_uri",
        "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"];

    public static readonly IReadOnlyList<string> OuterJobPrefixes = ["PMIX_"];

    /// <summary>True for a variable a rank must not inherit from whatever started sfrun.</summary>
    public static bool IsStaleWiring(string name) =>
        Inherited.Contains(name) || OuterJob.Contains(name) || OuterJobPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal));
}
