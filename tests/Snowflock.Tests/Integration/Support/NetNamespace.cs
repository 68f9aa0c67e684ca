using System.Runtime.InteropServices;
using System.Text;

namespace Snowflock.Tests.Integration.Support;

/// <summary>
/// An anonymous network namespace made by this test process, standing in for a clone's: held by
/// an fd only, so it (and any veth end in it) vanishes when disposed or when the test process
/// dies. <see cref="Path"/> names it for nsenter and ip; <see cref="Run{T}"/> makes sockets in it.
/// Needs root.
/// </summary>
internal sealed partial class NetNamespace : IDisposable
{
    private const int CLONE_NEWNET = 0x40000000, O_RDONLY = 0, O_CLOEXEC = 0x80000;

    [LibraryImport("libc", EntryPoint = "unshare", SetLastError = true)]
    private static partial int Unshare(int flags);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNs(int fd, int nstype);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    private int _fd;

    private NetNamespace(int fd) => _fd = fd;

    /// <summary>A path to the namespace that any process of this host can open (root).</summary>
    public string Path => PathOf(_fd);

    /// <summary>The namespace that fd <paramref name="fd"/> of this process refers to, as a path.</summary>
    public static string PathOf(int fd) => $"/proc/{Environment.ProcessId}/fd/{fd}";

    public static NetNamespace Create() => new(OnThread(() =>
    {
        if (Unshare(CLONE_NEWNET) != 0)
            throw new IOException($"unshare(CLONE_NEWNET) failed: errno {Marshal.GetLastPInvokeError()} (needs root)");
        var fd = Open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        return fd >= 0 ? fd : throw new IOException($"open(ns/net) failed: errno {Marshal.GetLastPInvokeError()}");
    }));

    /// <summary>Runs <paramref name="make"/> inside the namespace (sockets it makes stay there).</summary>
    public T Run<T>(Func<T> make)
    {
        var fd = _fd;
        return OnThread(() =>
        {
            if (SetNs(fd, CLONE_NEWNET) != 0)
                throw new IOException($"setns failed: errno {Marshal.GetLastPInvokeError()}");
            return make();
        });
    }

    /// <summary>setns/unshare change the calling thread only: a thread of its own does it, and
    /// ends with it, so no other thread of the test process ever changes its network.</summary>
    private static T OnThread<T>(Func<T> action)
    {
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = action();
            }
            catch (Exception e)
            {
                failure = e;
            }
        }) { IsBackground = true };
        thread.Start();
        thread.Join();
        return failure is null ? result : throw failure;
    }

    /// <summary>Runs <c>ip -batch</c> with <paramref name="commands"/> (one a line) inside the
    /// namespace at <paramref name="path"/>; returns its stdout, throws with its stderr.</summary>
    public static async Task<string> IpAsync(string path, string commands)
    {
        var r = await CommandRun.RunAsync("/usr/bin/nsenter", [$"--net={path}", "--", "ip", "-batch", "-"],
            stdin: Encoding.UTF8.GetBytes(commands), bound: TimeSpan.FromSeconds(30));
        return r.ExitCode == 0 ? r.Out : throw new IOException($"ip in {path} failed ({r.ExitCode}): {r.Err.Trim()}\n{commands}");
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
            Close(fd);
    }
}
