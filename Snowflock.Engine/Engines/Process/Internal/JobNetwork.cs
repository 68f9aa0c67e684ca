using System.Net;
using System.Runtime.InteropServices;
using NLog;

namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>
/// The network of an isolated job (<c>--isolate</c>): a network namespace of its own holding a
/// bridge, <see cref="Bridge"/>, with address <see cref="Gateway"/>/16; each clone gets a veth into
/// it (native/warm/isolate.c) and an address of its own. sfrun's own network is not touched: the
/// PMI server's socket is made inside this namespace (<see cref="Run"/>), and the kernel frees the
/// namespace, the bridge and every veth when the last socket, fd and clone let go of it — also
/// after a SIGKILL of sfrun, so there is nothing to sweep.
/// </summary>
internal sealed unsafe partial class JobNetwork : IDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Process");

    public const string Bridge = "sfbr0";
    public static readonly IPAddress Gateway = IPAddress.Parse("10.77.0.1");

    private const int PrefixLength = 16;

    /// <summary>The bridge's MAC address, set before any clone plugs in. Left alone, a Linux bridge
    /// takes the lowest MAC of its ports and changes it whenever a port with a lower one joins or
    /// the lowest one leaves — and clones (random veth MACs) join while their peers already talk
    /// to the PMI server, and leave when they exit. A clone keeps sending to the MAC its ARP
    /// resolved for <see cref="Gateway"/>; once that is no longer the bridge's, the bridge drops
    /// those frames (another port's MAC: PACKET_OTHERHOST; a port gone: flooded to the others),
    /// so a PMI request vanishes and TCP retransmits into the void until the neighbour entry goes
    /// stale, tens of seconds later: the rank hangs waiting for a reply (a get in MPI_Init, a
    /// finalize_ack). A MAC set by hand is kept by the kernel (NET_ADDR_SET) whatever ports come
    /// and go. Locally administered, and it never leaves the job's namespace, so every job may use
    /// the same one; the last four bytes are the gateway's address.</summary>
    public static ReadOnlySpan<byte> BridgeMac => [0x02, 0x00, 10, 77, 0, 1];

    private const int CLONE_NEWNET = 0x40000000, O_RDONLY = 0, O_CLOEXEC = 0x80000, AF_INET = 2, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0x80000;
    private const int EPERM = 1;
    private const nuint SIOCGIFFLAGS = 0x8913, SIOCSIFFLAGS = 0x8914, SIOCSIFADDR = 0x8916, SIOCSIFNETMASK = 0x891c, SIOCSIFHWADDR = 0x8924, SIOCBRADDBR = 0x89a0;
    private const short ARPHRD_ETHER = 1;
    private const short IFF_UP = 1;

    [LibraryImport("libc", EntryPoint = "unshare", SetLastError = true)]
    private static partial int Unshare(int flags);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNs(int fd, int nstype);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int Ioctl(int fd, nuint request, byte* arg);

    private int _fd;

    private JobNetwork(int fd) => _fd = fd;

    /// <summary>The namespace's fd, handed to each clone (it plugs its veth in there).</summary>
    public int Fd => _fd;

    /// <summary>Where clone <paramref name="index"/> lives: its address (on the bridge's /16).</summary>
    public static IPAddress AddressOf(int index)
    {
        var n = index + 2;
        if (n > 65534)
            throw new ArgumentOutOfRangeException(nameof(index), "--isolate places at most 65533 clones on a job's bridge");
        return new IPAddress([10, 77, (byte)(n >> 8), (byte)n]);
    }

    /// <summary>What libsfwarm.so needs to isolate clone <paramref name="index"/> (SFWARM_ISOLATE).
    /// SFRUN_ISOLATE_IPC=1 adds an ipc namespace and /dev/shm of its own: UCX then has to use TCP
    /// between clones — and MPICH 4.0.2 with UCX 1.13 over TCP hangs now and then in MPI_Finalize
    /// (as it does under mpiexec.hydra with UCX_TLS=tcp,self), so it is not the default.</summary>
    public static string CloneSpec(int index, string hostName) =>
        $"{AddressOf(index)}/{PrefixLength} {hostName} sfv{index} {Bridge}" + (Environment.GetEnvironmentVariable("SFRUN_ISOLATE_IPC") == "1" ? " ipc" : "");

    /// <exception cref="EngineUnavailableException">sfrun may not make namespaces here (not root).</exception>
    public static JobNetwork Create()
    {
        int fd = -1;
        Exception? failure = null;
        OnThread(() =>
        {
            var home = OpenOwn();
            try
            {
                if (Unshare(CLONE_NEWNET) != 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    throw errno == EPERM
                        ? new EngineUnavailableException("--isolate needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to make network namespaces and bridges; run sfrun as root or drop --isolate")
                        : new EngineUnavailableException($"--isolate: unshare(CLONE_NEWNET) failed: errno {errno}");
                }
                fd = OpenOwn();
                var sock = Socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                if (sock < 0)
                    throw Failed("socket(AF_INET)");
                try
                {
                    SetUp(sock, "lo");
                    var req = new byte[40];
                    Name(req, Bridge);
                    fixed (byte* p = req)
                        if (Ioctl(sock, SIOCBRADDBR, p) != 0)
                            throw Failed("ioctl(SIOCBRADDBR): is the bridge module available?");
                    SetMac(sock, Bridge, BridgeMac);
                    SetAddress(sock, Bridge, Gateway, PrefixLength);
                    SetUp(sock, Bridge);
                }
                finally
                {
                    Close(sock);
                }
            }
            catch (Exception e)
            {
                failure = e;
            }
            finally
            {
                if (SetNs(home, CLONE_NEWNET) != 0)
                    failure ??= Failed("setns(sfrun's network)");
                Close(home);
            }
        });
        if (failure is not null)
        {
            if (fd >= 0)
                Close(fd);
            throw failure as EngineUnavailableException ?? new EngineUnavailableException($"--isolate: {failure.Message}");
        }
        Log.ForDebugEvent().Message("job network ready: bridge {Bridge} at {Gateway}/{Prefix} in a namespace of its own", Bridge, Gateway, PrefixLength)
            .Property("EventName", "JobNetworkReady").Log();
        return new JobNetwork(fd);
    }

    /// <summary>Runs <paramref name="action"/> inside the job's network: sockets it makes are there
    /// (the PMI server's, so clones reach it at <see cref="Gateway"/>).</summary>
    public void Run(Action action)
    {
        Exception? failure = null;
        OnThread(() =>
        {
            var home = OpenOwn();
            try
            {
                if (SetNs(_fd, CLONE_NEWNET) != 0)
                    throw Failed("setns(job network)");
                action();
            }
            catch (Exception e)
            {
                failure = e;
            }
            finally
            {
                if (SetNs(home, CLONE_NEWNET) != 0)
                    failure ??= Failed("setns(sfrun's network)");
                Close(home);
            }
        });
        if (failure is not null)
            throw failure;
    }

    /// <summary>setns and unshare change only the calling thread's network: a thread of our own
    /// does it, so no pool thread is ever left in the wrong namespace.</summary>
    private static void OnThread(Action action)
    {
        var thread = new Thread(() => action()) { IsBackground = true, Name = "sfrun job network" };
        thread.Start();
        thread.Join();
    }

    private static int OpenOwn()
    {
        var fd = Open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        return fd >= 0 ? fd : throw Failed("open(/proc/thread-self/ns/net)");
    }

    private static IOException Failed(string call) => new($"{call} failed: errno {Marshal.GetLastPInvokeError()}");

    private static void Name(byte[] ifreq, string name) => System.Text.Encoding.ASCII.GetBytes(name).CopyTo(ifreq, 0);

    private static void SetUp(int sock, string name)
    {
        var req = new byte[40];
        Name(req, name);
        fixed (byte* p = req)
        {
            if (Ioctl(sock, SIOCGIFFLAGS, p) != 0)
                throw Failed($"ioctl(SIOCGIFFLAGS, {name})");
            *(short*)(p + 16) |= IFF_UP;
            if (Ioctl(sock, SIOCSIFFLAGS, p) != 0)
                throw Failed($"ioctl(SIOCSIFFLAGS, {name})");
        }
    }

    /// <summary>Sets the hardware address of <paramref name="name"/> (ifr_hwaddr: family, then the bytes).</summary>
    private static void SetMac(int sock, string name, ReadOnlySpan<byte> mac)
    {
        var req = new byte[40];
        Name(req, name);
        fixed (byte* p = req)
        {
            *(short*)(p + 16) = ARPHRD_ETHER;
            mac.CopyTo(req.AsSpan(18));
            if (Ioctl(sock, SIOCSIFHWADDR, p) != 0)
                throw Failed($"ioctl(SIOCSIFHWADDR, {name})");
        }
    }

    private static void SetAddress(int sock, string name, IPAddress address, int prefix)
    {
        var req = new byte[40];
        Name(req, name);
        req[16] = AF_INET;
        address.GetAddressBytes().CopyTo(req, 20);
        fixed (byte* p = req)
        {
            if (Ioctl(sock, SIOCSIFADDR, p) != 0)
                throw Failed($"ioctl(SIOCSIFADDR, {name})");
            var mask = uint.MaxValue << (32 - prefix);
            req[20] = (byte)(mask >> 24);
            req[21] = (byte)(mask >> 16);
            req[22] = (byte)(mask >> 8);
            req[23] = (byte)mask;
            if (Ioctl(sock, SIOCSIFNETMASK, p) != 0)
                throw Failed($"ioctl(SIOCSIFNETMASK, {name})");
        }
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
            Close(fd);
    }
}
