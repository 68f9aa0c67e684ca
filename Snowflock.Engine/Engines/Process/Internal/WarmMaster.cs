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
/// the socket — at teardown, or because sfrun died — the master kills its clones and exits.
/// </summary>
internal sealed class WarmMaster : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Process");

    private readonly SysProcess _process;
    private readonly int _connection;
    private readonly string _executable;
    private readonly Thread _reader;
    private readonly object _sendGate = new();
    private readonly ConcurrentDictionary<uint, TaskCompletionSource<int>> _pendingForks = new();
    private readonly ConcurrentDictionary<int, TaskCompletionSource<int>> _exits = new();
    private uint _nextSeq;
    private volatile bool _closed;
    private int _disposed;

    private WarmMaster(SysProcess process, int connection, string executable)
    {
        _process = process;
        _connection = connection;
        _executable = executable;
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = "sfrun warm master " + process.Id };
        _reader.Start();
    }

    public int Pid => _process.Id;

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
            return new WarmMaster(process, connection, first.Executable);
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

    private static WarmMessage.Hello? ReadHello(int fd, DateTime deadline)
    {
        var buffer = new byte[WarmProtocol.HeaderLength + 12];
        var got = 0;
        // A peer that connects and says nothing must not hold sfrun past the deadline.
        using var timer = new Timer(_ => WarmSyscalls.ShutdownBoth(fd), null, Max(deadline - DateTime.UtcNow, TimeSpan.Zero), Timeout.InfiniteTimeSpan);
        while (got < buffer.Length)
        {
            var n = WarmSyscalls.ReadSome(fd, buffer.AsSpan(got));
            if (n == 0)
                return null;
            got += n;
        }
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

    public async Task<IRankProcess> ForkAsync(RankStart start, string host, CancellationToken ct)
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
                    throw new RankStartException($"rank {start.Rank}: the warm master of {_executable} is gone");
                WarmSyscalls.SendWithFds(_connection, frame, [stdin.Read, stdout.Write, stderr.Write]);
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
        return new WarmRankProcess(start.Rank, pid, $"pid {pid} on {host}", input, output, error, ExitOf(pid));
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
            _closed = true;
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

    /// <summary>Closes the connection: the master kills and reaps its clones, then exits.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        lock (_sendGate)
            _closed = true;
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
}
