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

    /// <summary>Names this module sets, so the launcher can drop stale ones inherited from a parent job.</summary>
    public static readonly IReadOnlyList<string> Inherited = ["PMI_FD", "PMI_PORT", "PMI_ID", "PMI_RANK", "PMI_SIZE",
        "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "MPI_APPNUM", "PMI_SPAWNED"];
}
