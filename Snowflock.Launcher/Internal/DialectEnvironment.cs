namespace Snowflock.Launcher.Internal;

/// <summary>
/// The rank identity both launchers' users read, for every rank whatever its MPI: Open MPI's
/// mpirun sets OMPI_COMM_WORLD_* and PMIX_RANK, hydra PMI_RANK/PMI_SIZE and MPI_LOCALRANKID/
/// MPI_LOCALNRANKS, and wrapper scripts (a GPU per local rank) read whichever they were written
/// for. Derived from the PMI wiring already in the environment, so it cannot disagree with it.
/// Measured harmless: MPICH ignores OMPI_* and PMIX_RANK; Open MPI 4.1 selects its PMIx client
/// by PMIX_NAMESPACE/PMIX_SERVER_URI*, never by PMIX_RANK, and reads OMPI_COMM_WORLD_* only as
/// output (an mpirun started from a rank with them set runs its own job unchanged).
/// </summary>
internal static class DialectEnvironment
{
    public static void AddTo(Dictionary<string, string> env)
    {
        if (!env.TryGetValue("PMI_RANK", out var rank) || !env.TryGetValue("PMI_SIZE", out var size))
            return;
        var localRank = env.GetValueOrDefault("MPI_LOCALRANKID", "0");
        var localSize = env.GetValueOrDefault("MPI_LOCALNRANKS", "1");
        env["OMPI_COMM_WORLD_RANK"] = rank;
        env["OMPI_COMM_WORLD_SIZE"] = size;
        env["OMPI_COMM_WORLD_LOCAL_RANK"] = localRank;
        env["OMPI_COMM_WORLD_LOCAL_SIZE"] = localSize;
        // One job on this host: a rank's node rank is its local rank, as mpirun numbers them.
        env["OMPI_COMM_WORLD_NODE_RANK"] = localRank;
        env["PMIX_RANK"] = rank;
    }
}
