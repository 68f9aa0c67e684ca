using System.Collections.Concurrent;
using System.IO.Pipes;
using Microsoft.Win32.SafeHandles;
using NLog;
using Snowflock.Engine.Internal;
using SysProcess = System.Diagnostics.Process;

namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>The master could not be made ready; the launcher starts the ranks cold instead.</summary>
internal sealed class WarmUnavailableException(string message) : Exception(message);

/// <summary>
/// One warm master: the user's program started once with <c>LD_PRELOAD=libsfwarm.so</c>, stopped
/// before <c>main()</c> by the preloaded fork server, connected to sfrun over a unix socket.
/// Each <see cref="ForkAsync"/> makes a clone that becomes one rank. The master's clones are its
/// children: it reaps them and reports each raw wait status, so exits are exact. When sfrun closes
/// the socket — at teardown, or because sfrun died — the master kills its clones and exits; a warm
/// VM's master (<see cref="AttachAsync"/>) kills only this job's clones and goes on serving.
/// </summary>
internal sealed class WarmMaster : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Process");

    /// <summary>How long a warm VM's master may take to end a job's clones after the job lets go.</summary>
    private static readonly TimeSpan DetachGrace = TimeSpan.FromSeconds(5);

    /// <summary>The per-job master, a child of sfrun; null for a warm VM's master.</summary>
    private readonly SysProcess? _process;
    private readonly int _pid;
    /// <summary>The warm VM this master is, for messages; null for a per-job master.</summary>
    private readonly string? _vm;
    private readonly int _connection;
    private readonly string _executable;
    private readonly Thread _reader;
    private readonly object _sendGate = new();
    private readonly ConcurrentDictionary<uint, TaskCompletionSource<int>> _pendingForks = new();
    private readonly ConcurrentDictionary<int, TaskCompletionSource<int>> _exits = new();
    private uint _nextSeq;
    private volatile bool _closed;
    private int _disposed;

    private WarmMaster(int pid, SysProcess? process, string? vm, int connection, string executable)
    {
        _pid = pid;
        _process = process;
        _vm = vm;
        _connection = connection;
        _executable = executable;
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = "sfrun warm master " + pid };
        _reader.Start();
    }

    public int Pid => _pid;

    /// <summary>Set when a warm VM's master died under the job: said next to each rank it took along.</summary>
    private volatile string? _lost;

    /// <summary>Starts the master and waits until it is stopped before <c>main()</c> and connected.</summary>
    /// <exception cref="WarmUnavailableException">It did not get there; the message says why.</exception>
    public static async Task<WarmMaster> StartAsync(string library, string socketPath, RankStart first,
        IReadOnlyDictionary<string, string> environment, TimeSpan connectWithin, CancellationToken ct)
    {
        var listener = WarmSyscalls.ListenUnix(socketPath);
        SysProcess? process = null;
        try
        {
            var psi = new System.Diagnostics.ProcessStartInfo(first.Executable)
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = first.WorkingDirectory,
            };
            foreach (var arg in first.Arguments)
                psi.ArgumentList.Add(arg);
            psi.Environment.Clear();
            foreach (var (name, value) in environment)
                psi.Environment[name] = value;
            psi.Environment["LD_PRELOAD"] = environment.TryGetValue("LD_PRELOAD", out var user) && user.Length > 0
                ? library + ":" + user : library;
            psi.Environment["SFWARM_SOCKET"] = socketPath;
            FileDescriptorLimit.PassOn(psi.Environment);
            try
            {
                process = SysProcess.Start(psi) ?? throw new WarmUnavailableException("the master did not start");
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new WarmUnavailableException($"cannot execute {first.Executable}: {e.Message}");
            }
            process.StandardInput.Close();
            var pid = process.Id;
            process.OutputDataReceived += (_, e) => LogMasterOutput(pid, e.Data);
            process.ErrorDataReceived += (_, e) => LogMasterOutput(pid, e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();

            var started = process;
            var connection = await Task.Run(() => Handshake(listener, started, connectWithin, ct), ct).ConfigureAwait(false);
            return new WarmMaster(process.Id, process, null, connection, first.Executable);
        }
        catch
        {
            if (process is not null)
            {
                Posix.TrySignal(process.Id, Signals.SIGKILL);
                await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
                process.Dispose();
            }
            throw;
        }
        finally
        {
            WarmSyscalls.Close(listener);
            // Connected or not, no one else may connect: the socket file goes at once.
            try
            {
                File.Delete(socketPath);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Accepts the master's connection and reads its hello. Connections from any other
    /// process (a helper the program's constructors spawned, which inherits the preload) are refused.</summary>
    private static int Handshake(int listener, SysProcess process, TimeSpan within, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            ct.ThrowIfCancellationRequested();
            if (process.HasExited)
                throw new WarmUnavailableException($"the master exited with code {process.ExitCode} before it connected "
                    + "(statically linked, or LD_PRELOAD ignored?)");
            var fd = WarmSyscalls.AcceptWithin(listener, 50);
            if (fd < 0)
                continue;
            var hello = ReadHello(fd, deadline);
            if (hello is null || hello.Pid != process.Id || WarmSyscalls.PeerCredentials(fd).Pid != process.Id)
            {
                WarmSyscalls.Close(fd);
                continue;
            }
            if (hello.Version != WarmProtocol.Version)
            {
                WarmSyscalls.Close(fd);
                throw new WarmUnavailableException($"libsfwarm.so speaks protocol {hello.Version}, sfrun {WarmProtocol.Version}; rebuild native/");
            }
            if (hello.Threads != 1)
            {
                WarmSyscalls.Close(fd);
                throw new WarmUnavailableException($"the master has {hello.Threads} threads before main(); forking it is unsafe");
            }
            return fd;
        }
        throw new WarmUnavailableException($"the master did not connect within {within.TotalSeconds:0.#} s");
    }

    /// <summary>Connects a job to the long-lived master of warm VM <paramref name="vm"/>, listening at
    /// <paramref name="socketPath"/>; it must be process <paramref name="pid"/> (SO_PEERCRED).</summary>
    /// <exception cref="IOException">Nobody (or somebody else) answers there: the master is dead.</exception>
    /// <exception cref="WarmUnavailableException">It answers but cannot fork.</exception>
    public static WarmMaster Attach(string vm, string socketPath, int pid, string executable, TimeSpan within)
    {
        var (fd, _) = Greet(socketPath, pid, within);
        return new WarmMaster(pid, null, vm, fd, executable);
    }

    /// <summary>How a warm VM's master is doing: jobs served and live clones; null if it does not answer.</summary>
    public static WarmMessage.Stats? Query(string socketPath, int pid, TimeSpan within)
    {
        try
        {
            var (fd, stats) = Greet(socketPath, pid, within);
            WarmSyscalls.Close(fd);
            return stats;
        }
        catch (Exception e) when (e is IOException or WarmUnavailableException)
        {
            return null;
        }
    }

    /// <summary>Connects to a listening master and reads its HELLO and STATS; the connection is
    /// kept only if the kernel says the peer is <paramref name="pid"/> and it can fork.</summary>
    internal static (int Fd, WarmMessage.Stats Stats) Greet(string socketPath, int pid, TimeSpan within)
    {
        var fd = WarmSyscalls.ConnectUnix(socketPath);
        try
        {
            var bytes = ReadExactly(fd, 2 * WarmProtocol.HeaderLength + 12 + 8, DateTime.UtcNow + within)
                ?? throw new IOException("the master closed the connection before it said hello");
            WarmMessage? hello, stats;
            try
            {
                hello = WarmProtocol.TryParse(bytes, out var used);
                stats = WarmProtocol.TryParse(bytes.AsSpan(used), out _);
            }
            catch (InvalidDataException e)
            {
                throw new IOException(e.Message);
            }
            if (hello is not WarmMessage.Hello h || stats is not WarmMessage.Stats s)
                throw new IOException("the master did not say hello");
            var peer = WarmSyscalls.PeerCredentials(fd).Pid;
            if (peer != pid || h.Pid != pid)
                throw new IOException($"process {peer} answers at {socketPath}, not the master {pid}");
            if (h.Version != WarmProtocol.Version)
                throw new WarmUnavailableException($"libsfwarm.so speaks protocol {h.Version}, sfrun {WarmProtocol.Version}; rebuild native/");
            if (h.Threads != 1)
                throw new WarmUnavailableException($"the program has {h.Threads} threads before main(); forking it is unsafe");
            return (fd, s);
        }
        catch
        {
            WarmSyscalls.Close(fd);
            throw;
        }
    }

    private static byte[]? ReadExactly(int fd, int length, DateTime deadline)
    {
        var buffer = new byte[length];
        var got = 0;
        using var timer = new Timer(_ => WarmSyscalls.ShutdownBoth(fd), null, Max(deadline - DateTime.UtcNow, TimeSpan.Zero), Timeout.InfiniteTimeSpan);
        while (got < buffer.Length)
        {
            var n = WarmSyscalls.ReadSome(fd, buffer.AsSpan(got));
            if (n == 0)
                return null;
            got += n;
        }
        return buffer;
    }

    private static WarmMessage.Hello? ReadHello(int fd, DateTime deadline)
    {
        // ReadExactly's deadline: a peer that connects and says nothing must not hold sfrun past it.
        if (ReadExactly(fd, WarmProtocol.HeaderLength + 12, deadline) is not { } buffer)
            return null;
        try
        {
            return WarmProtocol.TryParse(buffer, out _) as WarmMessage.Hello;
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private static void LogMasterOutput(int pid, string? line)
    {
        if (line is not null)
            Log.ForDebugEvent().Message("warm master {Pid}: {Line}", pid, line).Property("EventName", "WarmMasterOutput").Log();
    }

    /// <summary>Forks a clone that becomes <paramref name="start"/>'s rank: its stdio are fresh pipes,
    /// its environment and directory exactly those of <paramref name="start"/>.</summary>
    private string? _recordProfileTo;

    /// <summary>The next clone forked records the warm profile into <paramref name="path"/> at exit.</summary>
    public void RecordProfileTo(string path) => Volatile.Write(ref _recordProfileTo, path);

    /// <param name="jobNetwork">With --isolate: an fd of the job's network namespace (the environment
    /// then holds SFWARM_ISOLATE), sent along so the clone can plug into the job's bridge.</param>
    public async Task<IRankProcess> ForkAsync(RankStart start, string host, CancellationToken ct, int? jobNetwork = null)
    {
        if (Interlocked.Exchange(ref _recordProfileTo, null) is { } profile)
            start = start with { Environment = new Dictionary<string, string>(start.Environment) { ["SFWARM_PROFILE_OUT"] = profile } };
        var stdin = WarmSyscalls.Pipe();
        var stdout = WarmSyscalls.Pipe();
        var stderr = WarmSyscalls.Pipe();
        var seq = Interlocked.Increment(ref _nextSeq);
        var answer = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pendingForks[seq] = answer;
        try
        {
            var frame = WarmProtocol.EncodeFork(seq, start.Rank, start.WorkingDirectory, WarmMasters.CloneEnvironment(start.Environment));
            lock (_sendGate)
            {
                if (_closed)
                    throw new RankStartException(_vm is null ? $"rank {start.Rank}: the warm master of {_executable} is gone"
                        : $"rank {start.Rank}: warm VM '{_vm}' (pid {_pid}) is gone");
                // protocol.h: stdio, then the job's network namespace (--isolate), then the PMI fd.
                List<int> fds = [stdin.Read, stdout.Write, stderr.Write];
                if (jobNetwork is { } net)
                    fds.Add(net);
                if (start.PmiSocket is { } pmi)
                    fds.Add((int)pmi.Handle);
                WarmSyscalls.SendWithFds(_connection, frame, [.. fds]);
            }
        }
        catch (Exception e)
        {
            _pendingForks.TryRemove(seq, out _);
            foreach (var fd in new[] { stdin.Read, stdin.Write, stdout.Read, stdout.Write, stderr.Read, stderr.Write })
                WarmSyscalls.Close(fd);
            throw e as RankStartException ?? new RankStartException($"rank {start.Rank}: cannot reach the warm master: {e.Message}", e);
        }
        // The clone holds its own copies now; sfrun keeps only its ends, so EOF means the rank closed them.
        WarmSyscalls.Close(stdin.Read);
        WarmSyscalls.Close(stdout.Write);
        WarmSyscalls.Close(stderr.Write);
        var input = Stream(PipeDirection.Out, stdin.Write);
        var output = Stream(PipeDirection.In, stdout.Read);
        var error = Stream(PipeDirection.In, stderr.Read);

        int pid;
        try
        {
            pid = await answer.Task.WaitAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            await input.DisposeAsync().ConfigureAwait(false);
            await output.DisposeAsync().ConfigureAwait(false);
            await error.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        if (pid <= 0)
        {
            await input.DisposeAsync().ConfigureAwait(false);
            await output.DisposeAsync().ConfigureAwait(false);
            await error.DisposeAsync().ConfigureAwait(false);
            throw new RankStartException($"rank {start.Rank}: the warm master of {start.Executable} could not fork: errno {-pid}");
        }
        Log.ForTraceEvent().Message("rank {Rank}: forked pid {Pid} from warm master {Master}", start.Rank, pid, Pid)
            .Property("EventName", "WarmForked").Log();
        var where = $"pid {pid} on {host}";
        return new WarmRankProcess(start.Rank, pid, () => _lost is { } lost ? $"{where}; {lost}" : where, input, output, error, ExitOf(pid));
    }

    private static AnonymousPipeClientStream Stream(PipeDirection direction, int fd) =>
        new(direction, new SafePipeHandle(fd, ownsHandle: true));

    private Task<int> ExitOf(int pid) =>
        _exits.GetOrAdd(pid, _ => new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    private void ReadLoop()
    {
        var buffer = new byte[64 * 1024];
        var filled = 0;
        try
        {
            while (true)
            {
                var n = WarmSyscalls.ReadSome(_connection, buffer.AsSpan(filled));
                if (n == 0)
                    break;
                filled += n;
                var at = 0;
                while (WarmProtocol.TryParse(buffer.AsSpan(at, filled - at), out var used) is { } message)
                {
                    at += used;
                    Dispatch(message);
                }
                buffer.AsSpan(at, filled - at).CopyTo(buffer);
                filled -= at;
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            if (!_closed)
                Log.ForDebugEvent().Message("warm master {Pid}: connection failed: {Error}", Pid, e.Message)
                    .Property("EventName", "WarmMasterLost").Log();
        }
        lock (_sendGate)
        {
            if (!_closed && _vm is not null)
            {
                _lost = $"its warm VM '{_vm}' (pid {_pid}) died during the job";
                Log.ForWarnEvent().Message("warm VM {Vm}: master {Pid} died during the job", _vm, _pid).Property("EventName", "WarmVmLost").Log();
            }
            _closed = true;
        }
        // The master is gone or done: its clones died with it (SIGKILL on the master's end).
        foreach (var (_, pending) in _pendingForks)
            pending.TrySetException(new RankStartException($"the warm master of {_executable} is gone"));
        foreach (var (_, exit) in _exits)
            exit.TrySetResult(Signals.SIGKILL);
    }

    private void Dispatch(WarmMessage message)
    {
        switch (message)
        {
            case WarmMessage.Forked f:
                if (_pendingForks.TryRemove(f.Seq, out var pending))
                    pending.TrySetResult(f.Pid);
                break;
            case WarmMessage.Exited x:
                _exits.GetOrAdd(x.Pid, _ => new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously))
                    .TrySetResult(x.Status);
                break;
        }
    }

    /// <summary>Closes the connection: the master kills and reaps its clones, then exits (a warm
    /// VM's master reports them gone and stays).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        lock (_sendGate)
            _closed = true;
        if (_process is null)
        {
            await DetachAsync().ConfigureAwait(false);
            return;
        }
        WarmSyscalls.ShutdownBoth(_connection);
        using (var grace = new CancellationTokenSource(TimeSpan.FromSeconds(3)))
        {
            try
            {
                await _process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                Posix.TrySignal(_process.Id, Signals.SIGKILL);
                await _process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
        await Task.Run(() => _reader.Join()).ConfigureAwait(false);
        WarmSyscalls.Close(_connection);
        _process.Dispose();
    }

    /// <summary>Lets go of a warm VM's master: it sees EOF, kills and reaps this job's clones, sends
    /// their ends and closes; the reader's EOF then says every clone is gone. A master that does not
    /// finish in time gets its clones killed from here (they are its children, so it reaps them).</summary>
    private async Task DetachAsync()
    {
        WarmSyscalls.ShutdownWrite(_connection);
        var reader = Task.Run(() => _reader.Join());
        if (await Task.WhenAny(reader, Task.Delay(DetachGrace)).ConfigureAwait(false) != reader)
        {
            foreach (var (pid, exit) in _exits)
                if (!exit.Task.IsCompleted)
                    Posix.TrySignal(pid, Signals.SIGKILL);
            WarmSyscalls.ShutdownBoth(_connection);
            await reader.ConfigureAwait(false);
        }
        WarmSyscalls.Close(_connection);
    }
}
