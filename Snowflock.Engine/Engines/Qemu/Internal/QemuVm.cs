using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using NLog;
using Snowflock.Engine.Internal;
using Snowflock.Engine.Guest.Internal;
using SysProcess = System.Diagnostics.Process;

namespace Snowflock.Engine.Engines.Qemu.Internal;

/// <summary>
/// One running QEMU: its process (started through sfwarm-exec so it dies with sfrun, even by
/// SIGKILL), its QMP monitor and its guest agent's control channel. Knows the two halves of
/// cloning: taking the descriptor (device state, x-ignore-shared: the RAM stays in the template's
/// file) and resuming from it.
/// </summary>
internal sealed class QemuVm : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Qemu");

    private readonly SysProcess _process;
    private readonly StringBuilder _stderr = new();
    private readonly Task _stderrPump;
    private QmpClient? _qmp;

    private QemuVm(string name, VmPaths paths, SysProcess process)
    {
        Name = name;
        Paths = paths;
        _process = process;
        _stderrPump = PumpStderrAsync();
    }

    public string Name { get; }
    public VmPaths Paths { get; }
    public int Pid => _process.Id;
    public AgentChannel? Agent { get; private set; }
    public bool HasExited => _process.HasExited;

    /// <param name="netns">A network namespace to run QEMU in (its taps live there), or null.</param>
    public static async Task<QemuVm> StartAsync(QemuHost host, string name, VmPaths paths, IReadOnlyList<string> qemuArgs, string? netns)
    {
        Directory.CreateDirectory(paths.Directory);
        var psi = netns is null
            ? ColdStarter.StartInfo(host.Binary, qemuArgs)
            : ColdStarter.StartInfo("/usr/bin/nsenter", [$"--net={netns}", "--", host.Binary, .. qemuArgs]);
        psi.RedirectStandardInput = true;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.UseShellExecute = false;
        var process = await ColdStarter.StartAsync(psi).ConfigureAwait(false)
            ?? throw new CloneFailedException($"{name}: QEMU did not start");
        process.StandardInput.Close();
        _ = process.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
        Log.ForDebugEvent().Message("{Vm}: qemu pid {Pid} started", name, process.Id).Property("EventName", "VmStarted").Log();
        return new QemuVm(name, paths, process);
    }

    private async Task PumpStderrAsync()
    {
        try
        {
            while (await _process.StandardError.ReadLineAsync().ConfigureAwait(false) is { } line)
                lock (_stderr)
                    if (_stderr.Length < 16384)
                        _stderr.AppendLine(line);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Connects QMP and the control channel. The control socket must be held before a
    /// clone's state is loaded: a virtio port reads EOF while nobody holds the host side, and the
    /// guest's view of that must not change across the snapshot.</summary>
    public async Task ConnectAsync(IPAddress pmiHost, CancellationToken ct)
    {
        _qmp = await WhileRunningAsync(QmpClient.ConnectAsync(Paths.Qmp, ct)).ConfigureAwait(false);
        var control = await WhileRunningAsync(UnixSocketDialer.ConnectAsync(Paths.Control, UnixSocketDialer.StartupWithin, ct)).ConfigureAwait(false);
        Agent = new AgentChannel(new NetworkStream(control, ownsSocket: true), Name, pmiHost);
    }

    /// <summary>Awaits <paramref name="work"/> unless QEMU exits first, which is then the error.</summary>
    private async Task<T> WhileRunningAsync<T>(Task<T> work)
    {
        var exited = _process.WaitForExitAsync();
        if (await Task.WhenAny(work, exited).ConfigureAwait(false) == work)
        {
            try
            {
                return await work.ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                // The monitor or channel broke: most likely QEMU is exiting; its last words say why.
                await Task.WhenAny(exited, Task.Delay(TimeSpan.FromSeconds(2))).ConfigureAwait(false);
                if (!_process.HasExited)
                    throw new CloneFailedException($"{Name}: lost QEMU's monitor: {e.Message}", e);
            }
            catch (TimeoutException e)
            {
                // QEMU runs but never listened on a socket of its own (UnixSocketDialer's bound).
                throw new CloneFailedException($"{Name}: {e.Message}", e);
            }
        }
        await Task.WhenAny(_stderrPump, Task.Delay(TimeSpan.FromSeconds(2))).ConfigureAwait(false);
        throw new CloneFailedException($"{Name}: QEMU exited with code {_process.ExitCode}: {LastError()}");
    }

    private async Task WhileRunningAsync(Task work) =>
        await WhileRunningAsync(work.ContinueWith(t => { t.GetAwaiter().GetResult(); return 0; }, TaskScheduler.Default)).ConfigureAwait(false);

    /// <summary>Takes the descriptor: stops the guest and saves its device state (not its RAM,
    /// which is in the shared file) to <paramref name="stateFile"/>.</summary>
    public async Task SnapshotAsync(string stateFile, CancellationToken ct)
    {
        var qmp = _qmp ?? throw new InvalidOperationException("not connected");
        await WhileRunningAsync(qmp.ExecuteAsync("stop", null, ct)).ConfigureAwait(false);
        await WhileRunningAsync(IgnoreSharedAsync(qmp, ct)).ConfigureAwait(false);
        await WhileRunningAsync(qmp.ExecuteAsync("migrate", w => w.WriteString("uri", "exec:cat > " + ShellQuote(stateFile)), ct)).ConfigureAwait(false);
        await WhileRunningAsync(WaitMigrationAsync(qmp, ct)).ConfigureAwait(false);
    }

    /// <summary>Resumes this VM (started with -incoming defer) from the template's descriptor.</summary>
    public async Task RestoreAsync(string stateFile, CancellationToken ct)
    {
        var qmp = _qmp ?? throw new InvalidOperationException("not connected");
        await WhileRunningAsync(IgnoreSharedAsync(qmp, ct)).ConfigureAwait(false);
        await WhileRunningAsync(qmp.ExecuteAsync("migrate-incoming", w => w.WriteString("uri", "exec:cat " + ShellQuote(stateFile)), ct)).ConfigureAwait(false);
        await WhileRunningAsync(WaitMigrationAsync(qmp, ct)).ConfigureAwait(false);
        // The template was stopped when its state was taken, so the clone arrives paused.
        await WhileRunningAsync(qmp.ExecuteAsync("cont", null, ct)).ConfigureAwait(false);
    }

    private static Task IgnoreSharedAsync(QmpClient qmp, CancellationToken ct) =>
        qmp.ExecuteAsync("migrate-set-capabilities", w =>
        {
            w.WriteStartArray("capabilities");
            w.WriteStartObject();
            w.WriteString("capability", "x-ignore-shared");
            w.WriteBoolean("state", true);
            w.WriteEndObject();
            w.WriteEndArray();
        }, ct);

    private async Task WaitMigrationAsync(QmpClient qmp, CancellationToken ct)
    {
        while (true)
        {
            var info = await qmp.ExecuteAsync("query-migrate", null, ct).ConfigureAwait(false);
            var status = info.ValueKind == JsonValueKind.Object && info.TryGetProperty("status", out var s) ? s.GetString() : null;
            if (status == "completed")
                return;
            if (status is "failed" or "cancelled")
                throw new CloneFailedException($"{Name}: migration {status}"
                    + (info.TryGetProperty("error-desc", out var d) ? $": {d.GetString()}" : "") + $" {LastError()}".TrimEnd());
            await Task.Delay(2, ct).ConfigureAwait(false);
        }
    }

    private static string ShellQuote(string path) => "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>What QEMU or the guest said last, for error messages.</summary>
    public string LastError()
    {
        string text;
        lock (_stderr)
            text = _stderr.ToString().Trim();
        if (text.Length == 0 && File.Exists(Paths.Console))
        {
            try
            {
                text = string.Join(" | ", File.ReadLines(Paths.Console).TakeLast(3));
            }
            catch (IOException)
            {
            }
        }
        var last = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "";
        return last.Trim();
    }

    public async Task QuitAsync(CancellationToken ct)
    {
        if (_qmp is { } qmp && !_process.HasExited)
        {
            try
            {
                await qmp.ExecuteAsync("quit", null, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or SocketException)
            {
            }
        }
        await _process.WaitForExitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Ends QEMU now (SIGKILL: a clone's state is disposable) and waits for it.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
                _process.Kill();
        }
        catch (InvalidOperationException)
        {
        }
        using (var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            try
            {
                await _process.WaitForExitAsync(bound.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                Log.ForWarnEvent().Message("{Vm}: qemu pid {Pid} did not exit after SIGKILL", Name, _process.Id).Property("EventName", "VmKillTimeout").Log();
            }
        }
        if (Agent is { } agent)
            await agent.DisposeAsync().ConfigureAwait(false);
        if (_qmp is { } qmp)
            await qmp.DisposeAsync().ConfigureAwait(false);
        _process.Dispose();
    }
}
