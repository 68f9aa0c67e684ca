using System.Runtime.InteropServices;

namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>The libc calls the warm fork path needs and .NET has no API for: a unix socket that
/// passes file descriptors (SCM_RIGHTS), and anonymous pipes whose ends sfrun hands to a clone.
/// Every failure is an <see cref="IOException"/> naming the call and errno.</summary>
internal static unsafe partial class WarmSyscalls
{
    private const int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 0x80000, O_CLOEXEC = 0x80000;
    private const int SOL_SOCKET = 1, SCM_RIGHTS = 1, MSG_NOSIGNAL = 0x4000, SHUT_WR = 1, SHUT_RDWR = 2;
    private const short POLLIN = 1;
    public const int EINTR = 4, EAGAIN = 11;

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static partial int Bind(int fd, byte* addr, uint length);

    [LibraryImport("libc", EntryPoint = "connect", SetLastError = true)]
    private static partial int Connect(int fd, byte* addr, uint length);

    [LibraryImport("libc", EntryPoint = "listen", SetLastError = true)]
    private static partial int Listen(int fd, int backlog);

    [LibraryImport("libc", EntryPoint = "accept4", SetLastError = true)]
    private static partial int Accept4(int fd, void* addr, void* length, int flags);

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static partial int GetSockOpt(int fd, int level, int name, void* value, uint* length);

    private const int SO_PEERCRED = 17;

    /// <summary>The pid and uid the kernel records for the peer of a unix socket (SO_PEERCRED):
    /// unlike what the peer says of itself, these cannot be forged.</summary>
    public static (int Pid, uint Uid) PeerCredentials(int fd)
    {
        var cred = stackalloc int[3]; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        var length = (uint)(3 * sizeof(int));
        if (GetSockOpt(fd, SOL_SOCKET, SO_PEERCRED, cred, &length) != 0)
            throw Error("getsockopt(SO_PEERCRED)");
        return (cred[0], (uint)cred[1]);
    }

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMsg(int fd, MsgHdr* msg, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint Read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int CloseFd(int fd);

    [LibraryImport("libc", EntryPoint = "shutdown", SetLastError = true)]
    private static partial int Shutdown(int fd, int how);

    [LibraryImport("libc", EntryPoint = "pipe2", SetLastError = true)]
    private static partial int Pipe2(int* fds, int flags);

    [LibraryImport("libc", EntryPoint = "getuid")]
    public static partial uint GetUid();

    private static IOException Error(string call) => new($"{call} failed: errno {Marshal.GetLastPInvokeError()}");

    /// <summary>A listening unix stream socket bound to <paramref name="path"/> (close-on-exec).</summary>
    public static int ListenUnix(string path) => UnixSocket(path, listen: true);

    /// <summary>A unix stream socket connected to <paramref name="path"/> (close-on-exec).</summary>
    /// <exception cref="IOException">Nobody listens there (the message names errno).</exception>
    public static int ConnectUnix(string path) => UnixSocket(path, listen: false);

    private static int UnixSocket(string path, bool listen)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(path);
        if (bytes.Length >= 108)
            throw new IOException($"unix socket path too long ({bytes.Length} bytes): {path}");
        var fd = Socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            throw Error("socket(AF_UNIX)");
        var addr = stackalloc byte[110];
        new Span<byte>(addr, 110).Clear();
        addr[0] = AF_UNIX;
        bytes.CopyTo(new Span<byte>(addr + 2, 108));
        var length = (uint)(2 + bytes.Length + 1);
        var failed = listen
            ? Bind(fd, addr, length) != 0 ? $"bind({path})" : Listen(fd, 8) != 0 ? "listen" : null
            : Connect(fd, addr, length) != 0 ? $"connect({path})" : null;
        if (failed is not null)
        {
            var e = Error(failed);
            CloseFd(fd);
            throw e;
        }
        return fd;
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> for a connection; -1 if none came.</summary>
    public static int AcceptWithin(int listenFd, int timeoutMs)
    {
        var pfd = new PollFd { Fd = listenFd, Events = POLLIN };
        var n = Poll(&pfd, 1, timeoutMs);
        if (n < 0)
            return Marshal.GetLastPInvokeError() == EINTR ? -1 : throw Error("poll");
        if (n == 0)
            return -1;
        var fd = Accept4(listenFd, null, null, SOCK_CLOEXEC);
        if (fd < 0)
            throw Error("accept4");
        return fd;
    }

    /// <summary>Sends all of <paramref name="data"/>; the fds ride on its first byte.</summary>
    public static void SendWithFds(int fd, ReadOnlySpan<byte> data, ReadOnlySpan<int> fds)
    {
        var controlLength = 16 + ((fds.Length * 4 + 7) & ~7); // CMSG_SPACE
        var control = stackalloc byte[controlLength];
        new Span<byte>(control, controlLength).Clear();
        *(nuint*)control = (nuint)(16 + fds.Length * 4); // cmsg_len = CMSG_LEN
        *(int*)(control + 8) = SOL_SOCKET;
        *(int*)(control + 12) = SCM_RIGHTS;
        fds.CopyTo(new Span<int>(control + 16, fds.Length));
        fixed (byte* p = data)
        {
            var sent = 0;
            while (sent < data.Length)
            {
                var iov = new IoVec { Base = p + sent, Length = (nuint)(data.Length - sent) };
                var msg = new MsgHdr { Iov = &iov, IovLength = 1 };
                if (sent == 0 && fds.Length > 0)
                {
                    msg.Control = control;
                    msg.ControlLength = (nuint)controlLength;
                }
                var n = SendMsg(fd, &msg, MSG_NOSIGNAL);
                if (n < 0)
                {
                    if (Marshal.GetLastPInvokeError() == EINTR)
                        continue;
                    throw Error("sendmsg");
                }
                sent += (int)n;
            }
        }
    }

    /// <summary>Blocking read; 0 at EOF (or after <see cref="ShutdownBoth"/>).</summary>
    public static int ReadSome(int fd, Span<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            while (true)
            {
                var n = Read(fd, p, (nuint)buffer.Length);
                if (n >= 0)
                    return (int)n;
                if (Marshal.GetLastPInvokeError() != EINTR)
                    throw Error("read");
            }
        }
    }

    /// <summary>Wakes a blocked reader and tells the peer we are done (it sees EOF).</summary>
    public static void ShutdownBoth(int fd) => Shutdown(fd, SHUT_RDWR);

    /// <summary>Tells the peer we are done (it sees EOF) but keeps reading what it still sends.</summary>
    public static void ShutdownWrite(int fd) => Shutdown(fd, SHUT_WR);

    public static void Close(int fd)
    {
        if (fd >= 0)
            CloseFd(fd);
    }

    /// <summary>An anonymous pipe, both ends close-on-exec: (read end, write end).</summary>
    public static (int Read, int Write) Pipe()
    {
        var fds = stackalloc int[2];
        if (Pipe2(fds, O_CLOEXEC) != 0)
            throw Error("pipe2");
        return (fds[0], fds[1]);
    }
}
