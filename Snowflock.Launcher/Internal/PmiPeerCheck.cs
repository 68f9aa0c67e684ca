using System.Net;
using System.Runtime.InteropServices;
using Snowflock.Mpi.Pmi;

namespace Snowflock.Launcher.Internal;

/// <summary>
/// Admission to the job's PMI listener, which exists only where ranks cannot inherit a PMI_FD
/// (VM guests, whose connections sfrun's own relay makes). MPICH's client sends only its rank
/// number at <c>initack</c> (it parses PMI_ID as a number), so no secret can ride the protocol;
/// the kernel tells who the peer is instead. Every connection is checked, whatever address it
/// comes from — a socket bound to the host's eth0 address can connect to 127.0.0.1 — and one the
/// kernel does not know as a socket of this host is refused: at accept, its socket must belong to
/// sfrun's own user; at <c>initack</c>, it must be held by the rank's process (for a rank whose
/// pid sfrun does not know yet, or that runs in a VM, by sfrun itself: its relay).
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
        if (LoopbackPeer.Find(local, remote) is not { } peer)
            return "the kernel knows no socket of this host at its end";
        // A peer that closed before we looked (orphaned, TIME_WAIT) has no owner left: the kernel
        // reports uid 0 and inode 0 for it, which must not pass for root.
        if (peer.Inode == 0)
            return "its socket is already closed";
        if (peer.Uid != _euid)
            return $"it runs as uid {peer.Uid}, not as sfrun's uid {_euid}";
        if (rank < 0)
            return null;
        var pid = Volatile.Read(ref _pids[rank]);
        if (pid <= 0)
            pid = Environment.ProcessId;
        if (!LoopbackPeer.IsHeldBy(pid, peer.Inode))
            return $"it is not rank {rank}'s process (pid {pid})";
        return null;
    }
}
