using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Snowflock.Mpi.Pmi.Internal;

/// <summary>A connected pair of unix stream sockets (socketpair(2)), what hydra hands each rank as
/// PMI_FD: no address, so nothing another process can connect to. Both ends are close-on-exec;
/// the engine that gives one end to a rank decides how it crosses into the rank.</summary>
internal static unsafe partial class SocketPair
{
    private const int AfUnix = 1, SockStream = 1, SockCloexec = 0x80000;

    [LibraryImport("libc", EntryPoint = "socketpair", SetLastError = true)]
    private static partial int Create(int domain, int type, int protocol, int* fds);

    /// <exception cref="SocketException">The kernel refused (e.g. EMFILE).</exception>
    public static (Socket Server, Socket Rank) Open()
    {
        int* fds = stackalloc int[2];
        if (Create(AfUnix, SockStream | SockCloexec, 0, fds) != 0)
            throw new SocketException(Marshal.GetLastPInvokeError());
        return (new Socket(new SafeSocketHandle(fds[0], ownsHandle: true)), new Socket(new SafeSocketHandle(fds[1], ownsHandle: true)));
    }
}
