using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Snowflock.Mpi.Pmi.Internal;

/// <summary>
/// Asks the kernel (NETLINK_SOCK_DIAG, an exact lookup by address and port, what <c>ss</c> uses)
/// who owns one TCP socket of this network namespace: its uid and inode. One request per
/// connection, whatever the number of sockets on the host — reading /proc/net/tcp instead would
/// cost time in proportion to every connection open, which a flood makes large.
/// </summary>
internal static unsafe partial class SockDiag
{
    private const int AfNetlink = 16, SockDgram = 2, SockCloexec = 0x80000, NetlinkSockDiag = 4;
    private const ushort SockDiagByFamily = 20, NlmsgError = 2, NlmFRequest = 1;
    private const int RequestLength = 72, UidOffset = 80, InodeOffset = 84;

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static partial nint Send(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static partial nint Recv(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    /// <summary>The owner of the TCP socket whose own end is <paramref name="socketEnd"/> and whose
    /// peer is <paramref name="peerEnd"/>; null when the kernel knows no such socket (it is not on
    /// this host, or gone), or cannot be asked.</summary>
    public static (int Uid, long Inode)? Owner(IPEndPoint socketEnd, IPEndPoint peerEnd)
    {
        var own = socketEnd.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(socketEnd.Address.MapToIPv4(), socketEnd.Port) : socketEnd;
        var peer = peerEnd.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(peerEnd.Address.MapToIPv4(), peerEnd.Port) : peerEnd;
        if (own.AddressFamily != peer.AddressFamily)
            return null;
        var fd = Socket(AfNetlink, SockDgram | SockCloexec, NetlinkSockDiag);
        if (fd < 0)
            return null;
        try
        {
            var request = stackalloc byte[RequestLength];
            var r = new Span<byte>(request, RequestLength);
            r.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(r, RequestLength);
            BinaryPrimitives.WriteUInt16LittleEndian(r[4..], SockDiagByFamily);
            BinaryPrimitives.WriteUInt16LittleEndian(r[6..], NlmFRequest);
            BinaryPrimitives.WriteUInt32LittleEndian(r[8..], 1);
            r[16] = (byte)(own.AddressFamily == AddressFamily.InterNetwork ? 2 : 10);
            r[17] = (byte)ProtocolType.Tcp;
            BinaryPrimitives.WriteUInt32LittleEndian(r[20..], uint.MaxValue); // every state
            // struct inet_diag_sockid: the socket's own end is "src", its peer "dst" (network order).
            BinaryPrimitives.WriteUInt16BigEndian(r[24..], (ushort)own.Port);
            BinaryPrimitives.WriteUInt16BigEndian(r[26..], (ushort)peer.Port);
            own.Address.GetAddressBytes().CopyTo(r[28..]);
            peer.Address.GetAddressBytes().CopyTo(r[44..]);
            BinaryPrimitives.WriteUInt32LittleEndian(r[64..], uint.MaxValue); // INET_DIAG_NOCOOKIE
            BinaryPrimitives.WriteUInt32LittleEndian(r[68..], uint.MaxValue);
            if (Send(fd, request, RequestLength, 0) != RequestLength)
                return null;
            var reply = stackalloc byte[512];
            var n = Recv(fd, reply, 512, 0);
            var a = new ReadOnlySpan<byte>(reply, n > 0 ? (int)n : 0);
            if (a.Length < InodeOffset + 4 || BinaryPrimitives.ReadUInt16LittleEndian(a[4..]) == NlmsgError
                || BinaryPrimitives.ReadUInt16LittleEndian(a[4..]) != SockDiagByFamily)
                return null;
            return ((int)BinaryPrimitives.ReadUInt32LittleEndian(a[UidOffset..]), BinaryPrimitives.ReadUInt32LittleEndian(a[InodeOffset..]));
        }
        finally
        {
            Close(fd);
        }
    }
}
