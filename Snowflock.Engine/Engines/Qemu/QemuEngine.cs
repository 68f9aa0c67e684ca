using System.Diagnostics;
using System.Globalization;
using System.Net;
using NLog;
using Snowflock.Engine.Engines.Qemu.Internal;
using Snowflock.Engine.Guest;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Engines.Qemu;

/// <summary>
/// The qemu engine: every clone is a QEMU microvm resumed from a warm template VM. The template
/// boots once per guest image (the program, its libraries and the guest agent) with its RAM in a
/// file, and its device state is saved with x-ignore-shared (the descriptor); a clone is a QEMU
/// started with <c>-incoming defer</c> over the same RAM file mapped copy-on-write, resumed from the
/// descriptor, then given its identity, MAC, address and fresh entropy by the host over its
/// virtio-serial control channel. Ranks reach sfrun's PMI server through the agent's relay on that
/// channel, and each other over a bridge in the job's own network namespace.
/// With <c>--no-warm</c> every VM cold-boots the same image instead (what cloning is measured against).
/// </summary>
public sealed class QemuEngine : IEngine
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Qemu");

    /// <summary>How long the clones of a job may take to resume and take their identities: generous,
    /// because under TCG on a loaded 2-core host many VMs share two cores.</summary>
    private static TimeSpan CloneWithin(int vms) => TimeSpan.FromSeconds(Math.Max(180, 30 * vms));

    private readonly List<QemuVm> _vms = [];
    private readonly object _gate = new();
    private QemuHost? _host;
    private GuestImage? _image;
    private QemuTemplate? _template;
    private JobNetwork? _network;
    private string? _runDir;
    private string _jobId = "";
    private int _ranksPerVm = 1;
    private int _memoryMiB = 512;

    public string Name => "qemu";

    public async Task<EnginePreparation> PrepareAsync(WarmMasterSpec master, CancellationToken ct)
    {
        _host = QemuHost.Require();
        _jobId = master.JobId;
        _ranksPerVm = Math.Max(1, master.RanksPerClone ?? 1);
        if (Environment.GetEnvironmentVariable("SFRUN_QEMU_MEMORY") is { Length: > 0 } m && int.TryParse(m, out var mib) && mib >= 64)
            _memoryMiB = mib;
        var agent = NativeHelpers.Find("sfagent")
            ?? throw new EngineUnavailableException("qemu engine: the guest agent sfagent was not found; build native/ (scripts/setup) or set SFRUN_NATIVE_DIR");
        // Sockets and console logs live here, a fresh 0700 folder in the per-user folder (unix
        // socket paths are short, so not under the cache).
        try
        {
            var perUser = PrivateDirectory.PerUser;
            PrivateDirectory.SweepDeadJobs(perUser, RunDirPrefix);
            _runDir = PrivateDirectory.CreateUnique(perUser, $"{RunDirPrefix}{master.JobId}-");
        }
        catch (IOException e)
        {
            throw new EngineUnavailableException($"qemu engine: no folder for the job's sockets: {e.Message}");
        }
        var sw = Stopwatch.StartNew();
        _image = await GuestImageBuilder.BuildAsync(GuestImageSpec.ForEngine("qemu", master.Executables, agent), ct).ConfigureAwait(false);
        var imageMs = sw.ElapsedMilliseconds;
        if (master.Warm)
            _template = await QemuTemplate.FindOrCreateAsync(_host, _image, _memoryMiB, _runDir, ct).ConfigureAwait(false);
        Log.ForDebugEvent().Message("job {JobId}: qemu engine ({Accel}: {Why}); image {Image} in {ImageMs} ms; {Mode} in {Ms} ms", _jobId,
                _host.Accelerator, _host.AcceleratorReason, _image.Hash, imageMs, _template is null ? "cold boot (--no-warm)" : "template ready",
                sw.ElapsedMilliseconds)
            .Property("EventName", "EnginePrepared").Log();
        return new EnginePreparation(IPAddress.Loopback, IPAddress.Loopback.ToString());
    }

    public async Task<IReadOnlyList<IClone>> CloneAsync(int count, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var host = _host ?? throw new InvalidOperationException("PrepareAsync first");
        var vmCount = (count + _ranksPerVm - 1) / _ranksPerVm;
        if (vmCount > 1)
            _network = await JobNetwork.CreateAsync(vmCount, ct).ConfigureAwait(false);
        var sw = Stopwatch.StartNew();
        QemuVm[] vms;
        try
        {
            vms = await StartAndBringUpAsync(host, vmCount, _template is null ? CloneWithin(vmCount) : FirstTryWithin(vmCount), ct).ConfigureAwait(false);
        }
        catch (ClonesStuckException stuck) when (_template is { } bad)
        {
            // Clones of a cached template that never take their identity: the template is what
            // they share, so it is discarded and booted again, once. (Seen on CI: every
            // multi-VM clone of one image's template stuck, while other images' were fine.)
            Log.ForWarnEvent().Message("job {JobId}: {Error}; discarding template {Template} and booting it again", _jobId, stuck.Message,
                Path.GetFileName(bad.Directory)).Property("EventName", "TemplateDiscarded").Log();
            await StopVmsAsync().ConfigureAwait(false);
            QemuTemplate.Discard(bad);
            _template = await QemuTemplate.FindOrCreateAsync(host, _image!, _memoryMiB, _runDir!, ct).ConfigureAwait(false);
            try
            {
                vms = await StartAndBringUpAsync(host, vmCount, CloneWithin(vmCount), ct).ConfigureAwait(false);
            }
            catch (ClonesStuckException again)
            {
                throw new CloneFailedException($"qemu engine: {again.Message}");
            }
        }
        catch (ClonesStuckException stuck)
        {
            throw new CloneFailedException($"qemu engine: {stuck.Message}");
        }
        Log.ForDebugEvent().Message("job {JobId}: {Count} VM(s) {Mode} in {Ms} ms", _jobId, vmCount, _template is null ? "cold-booted" : "cloned",
            sw.ElapsedMilliseconds).Property("EventName", "ClonesRunning").Log();
        var clones = new List<IClone>(count);
        for (var i = 0; i < count; i++)
        {
            var k = i / _ranksPerVm;
            clones.Add(new QemuClone(new CloneIdentity(i, k, HostName(k)), vms[k], (ushort)(i % _ranksPerVm), Math.Min(_ranksPerVm, count - k * _ranksPerVm)));
        }
        return clones;
    }

    /// <summary>How long clones of a cached template get before the template is suspected: a
    /// clone resumes and takes its identity in a second or two, tens of seconds on a loaded TCG host.</summary>
    private static TimeSpan FirstTryWithin(int vms) => TimeSpan.FromSeconds(60 + 10 * vms);

    private async Task<QemuVm[]> StartAndBringUpAsync(QemuHost host, int vmCount, TimeSpan within, CancellationToken ct)
    {
        var vms = new QemuVm[vmCount];
        for (var k = 0; k < vmCount; k++)
        {
            var vm = await StartVmAsync(host, k).ConfigureAwait(false);
            lock (_gate)
                _vms.Add(vm);
            vms[k] = vm;
        }
        var hosts = string.Join(",", Enumerable.Range(0, vmCount).Select(k => $"{HostName(k)}={JobNetwork.Address(k)}"));
        var steps = new string[vmCount];
        Array.Fill(steps, "started");
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(within);
        try
        {
            await Task.WhenAll(vms.Select((vm, k) => BringUpAsync(vm, k, vmCount, hosts, s => steps[k] = s, bound.Token))).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            var stuck = Enumerable.Range(0, vmCount).Where(k => steps[k] != "ready").ToList();
            var slow = vms.FirstOrDefault(v => v.HasExited) ?? vms[stuck.FirstOrDefault()];
            var where = string.Join(", ", stuck.Take(4).Select(k => $"{HostName(k)} {steps[k]}")) + (stuck.Count > 4 ? ", ..." : "");
            throw new ClonesStuckException($"clones did not come up within {within.TotalSeconds:0} s ({where})"
                + (slow.LastError() is { Length: > 0 } last ? $": {last}" : ""));
        }
        return vms;
    }

    private async Task StopVmsAsync()
    {
        QemuVm[] vms;
        lock (_gate)
        {
            vms = [.. _vms];
            _vms.Clear();
        }
        await Task.WhenAll(vms.Select(v => v.DisposeAsync().AsTask())).ConfigureAwait(false);
        // The next try makes its sockets and console logs afresh at the same paths.
        foreach (var vm in vms)
            SafeTree.Delete(Path.Combine(_runDir!, vm.Name));
    }

    /// <summary>Clones that did not take their identity in time (not a QEMU that failed: that is a <see cref="CloneFailedException"/>).</summary>
    private sealed class ClonesStuckException(string message) : Exception(message);

    /// <summary>Per-job run folders: qemu-JOB-XXXXXX. A job whose sfrun was SIGKILLed loses its
    /// QEMUs (they die with it) and its network namespace, but not this folder of sockets and
    /// console logs: the next job sweeps those whose sfrun (the pid in the job id) is gone.</summary>
    private const string RunDirPrefix = "qemu-";

    private static string HostName(int vm) => "vm" + vm.ToString(CultureInfo.InvariantCulture);

    private async Task<QemuVm> StartVmAsync(QemuHost host, int k)
    {
        var paths = new VmPaths(Path.Combine(_runDir!, HostName(k)));
        var netdev = _network is null ? QemuCommandLine.UnconnectedNetdev : JobNetwork.Netdev(k);
        VmMemory memory = _template is { } t ? new VmMemory.CloneOf(t.MemoryMiB, t.MemoryFile) : new VmMemory.Private(_memoryMiB);
        VmBoot boot = _template is null
            ? new VmBoot.Kernel(_image!.KernelPath, _image.InitramfsPath, QemuCommandLine.KernelAppend(host))
            : new VmBoot.Incoming();
        var args = QemuCommandLine.For(host, $"snowflock-{_jobId}-{HostName(k)}", paths, memory, netdev, QemuCommandLine.Mac(0), boot);
        return await QemuVm.StartAsync(host, HostName(k), paths, args, _network?.Namespace).ConfigureAwait(false);
    }

    private async Task BringUpAsync(QemuVm vm, int k, int vmCount, string hosts, Action<string> step, CancellationToken ct)
    {
        try
        {
            await BringUpUncheckedAsync(vm, k, vmCount, hosts, step, ct).ConfigureAwait(false);
            step("ready");
        }
        catch (Exception e) when (e is not (CloneFailedException or OperationCanceledException))
        {
            // QMP or channel errors: say which clone, and what QEMU or its console said last.
            throw new CloneFailedException($"qemu engine: {vm.Name}: {e.Message}" + (vm.LastError() is { Length: > 0 } last ? $" ({last})" : ""), e);
        }
    }

    private async Task BringUpUncheckedAsync(QemuVm vm, int k, int vmCount, string hosts, Action<string> step, CancellationToken ct)
    {
        await vm.ConnectAsync(IPAddress.Loopback, ct).ConfigureAwait(false);
        Step(vm, "connected");
        step("connected, not resumed");
        if (_template is { } t)
            await vm.RestoreAsync(t.StateFile, ct).ConfigureAwait(false);
        else
            await vm.Agent!.PingAsync(TimeSpan.FromMilliseconds(200), ct).ConfigureAwait(false);
        Step(vm, _template is null ? "booted" : "resumed");
        step(_template is null ? "booted, no identity acknowledged" : "resumed, no identity acknowledged");
        var identity = new Dictionary<string, string>
        {
            ["clone"] = k.ToString(CultureInfo.InvariantCulture),
            ["hostname"] = HostName(k),
        };
        if (vmCount > 1)
        {
            identity["ip"] = JobNetwork.Address(k) + "/16";
            identity["mac"] = QemuCommandLine.Mac(k + 1);
            identity["hosts"] = hosts;
        }
        var applied = await vm.Agent!.SetIdentityAsync(identity, ct).ConfigureAwait(false);
        Log.ForTraceEvent().Message("{Vm}: identity {Identity}", vm.Name, applied.Replace('\n', ' ')).Property("EventName", "CloneIdentity").Log();
    }

    private static void Step(QemuVm vm, string what) =>
        Log.ForTraceEvent().Message("{Vm}: {Step}", vm.Name, what).Property("EventName", "CloneStep").Log();

    public async Task TeardownAsync(CancellationToken ct)
    {
        QemuVm[] vms;
        lock (_gate)
        {
            vms = [.. _vms];
            _vms.Clear();
        }
        await Task.WhenAll(vms.Select(v => v.DisposeAsync().AsTask())).ConfigureAwait(false);
        if (_network is { } network)
        {
            _network = null;
            await network.DisposeAsync().ConfigureAwait(false);
        }
        if (_runDir is { } dir)
        {
            try
            {
                SafeTree.Delete(dir);
            }
            catch (IOException e)
            {
                Log.ForWarnEvent().Message("cannot remove {Dir}: {Error}", dir, e.Message).Property("EventName", "RunDirLeft").Log();
            }
        }
    }

    public async ValueTask DisposeAsync() => await TeardownAsync(CancellationToken.None).ConfigureAwait(false);
}
