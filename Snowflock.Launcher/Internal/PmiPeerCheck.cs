using System.Net;
using System.Runtime.InteropServices;
using Snowflock.Mpi.Pmi;

namespace Snowflock.Launcher.Internal;

/// <summary>
/// Admission to the job's PMI server. MPICH's client sends only its rank number at
/// <c>initack</c> (it parses PMI_ID as a number), so no secret can ride the protocol; for a
/// loopback connection the kernel can tell who the peer is instead: it must run as sfrun's own
/// user and, where the engine knows the rank's pid, be that very process. Connections from other
/// hosts (VM clones) are identified by their engine's own channel, not here.
/// </summary>
internal sealed partial class PmiPeerCheck(int ranks)
{
    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();

    private readonly int[] _pids = new int[ranks];
    private readonly uint _euid = GetEuid();

    public void RankStarted(int rank, int? pid) => Volatile.Write(ref _pids[rank], pid ?? 0);

    public string? Admit(IPEndPoint local, IPEndPoint remote, int rank)
    {
        if (!IPAddress.IsLoopback(remote.Address))
            return null;
        if (LoopbackPeer.Find(local, remote) is not { } peer)
            return "its socket is not in the kernel's table";
        if (peer.Uid != _euid)
            return $"it runs as uid {peer.Uid}, not as sfrun's uid {_euid}";
        var pid = Volatile.Read(ref _pids[rank]);
        if (pid > 0 && !LoopbackPeer.IsHeldBy(pid, peer.Inode))
            return $"it is not rank {rank}'s process (pid {pid})";
        return null;
    }
}
