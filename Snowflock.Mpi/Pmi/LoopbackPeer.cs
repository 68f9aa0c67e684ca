using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Snowflock.Mpi.Pmi;

/// <summary>
/// Who is on the other end of a TCP connection made inside this host (to any of its addresses,
/// loopback or not). TCP has no SO_PEERCRED, but the kernel knows the peer socket's owner uid and
/// inode (sock_diag; /proc/net/tcp* where that cannot be asked), and /proc/PID/fd says which
/// process holds that inode. A connection from another host has no such socket here: null.
/// </summary>
public static class LoopbackPeer
{
    /// <summary>The peer socket of the connection <paramref name="local"/>↔<paramref name="remote"/>
    /// as seen from this end; null if the kernel knows no such socket on this host.</summary>
    public static (int Uid, long Inode)? Find(IPEndPoint local, IPEndPoint remote) =>
        Internal.SockDiag.Owner(remote, local) ?? FindInTable(local, remote);

    private static (int Uid, long Inode)? FindInTable(IPEndPoint local, IPEndPoint remote)
    {
        // The peer's own row has local_address = our remote end, rem_address = our local end.
        var wantLocal = Hex(remote);
        var wantRemote = Hex(local);
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            IEnumerable<string> lines;
            try
            {
                lines = File.ReadLines(table).Skip(1).ToList();
            }
            catch (IOException)
            {
                continue;
            }
            foreach (var line in lines)
            {
                var c = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (c.Length < 10)
                    continue;
                if (Same(c[1], wantLocal) && Same(c[2], wantRemote) &&
                    int.TryParse(c[7], NumberStyles.None, CultureInfo.InvariantCulture, out var uid) &&
                    long.TryParse(c[9], NumberStyles.None, CultureInfo.InvariantCulture, out var inode))
                    return (uid, inode);
            }
        }
        return null;
    }

    /// <summary>True if process <paramref name="pid"/> holds the socket <paramref name="inode"/>.</summary>
    public static bool IsHeldBy(int pid, long inode)
    {
        var want = $"socket:[{inode}]";
        try
        {
            foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
            {
                var target = new FileInfo(fd).LinkTarget;
                if (target == want)
                    return true;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return false;
    }

    /// <summary>An endpoint as the kernel table spells it: address bytes as native-endian 32-bit
    /// words in hex, then the port; IPv4 peers of an IPv6 socket appear as ::ffff:a.b.c.d.</summary>
    private static (string V4, string V6) Hex(IPEndPoint ep)
    {
        var port = ep.Port.ToString("X4", CultureInfo.InvariantCulture);
        var v6 = ep.Address.AddressFamily == AddressFamily.InterNetwork ? ep.Address.MapToIPv6() : ep.Address;
        var v4 = ep.Address.IsIPv4MappedToIPv6 ? ep.Address.MapToIPv4() : ep.Address;
        return (v4.AddressFamily == AddressFamily.InterNetwork ? Words(v4.GetAddressBytes()) + ":" + port : "",
            Words(v6.GetAddressBytes()) + ":" + port);
    }

    private static string Words(byte[] bytes)
    {
        var s = new System.Text.StringBuilder();
        for (var i = 0; i < bytes.Length; i += 4)
            s.Append(BitConverter.ToUInt32(bytes, i).ToString("X8", CultureInfo.InvariantCulture));
        return s.ToString();
    }

    private static bool Same(string column, (string V4, string V6) want) =>
        string.Equals(column, want.V4, StringComparison.OrdinalIgnoreCase) || string.Equals(column, want.V6, StringComparison.OrdinalIgnoreCase);
}
