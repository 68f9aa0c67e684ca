using System.Net;
using NLog;
using Snowflock.Engine.Internal;
using Snowflock.Engine.Engines.Process.Internal;

namespace Snowflock.Engine.Engines.Process;

/// <summary>
/// The process engine: every clone is a slot on this host and every rank a local process, so
/// all clones share one node (and MPICH's shared-memory transport). It needs nothing but Linux.
/// By default ranks are forked from a warm master — the program started once with the preloaded
/// fork server native/warm/libsfwarm.so and stopped just before <c>main()</c> — and get the warm
/// start-up state (<see cref="StartupHints"/>); where that cannot work they start cold, as
/// with <c>--no-warm</c> or <c>SFRUN_WARM=0</c>. The launcher sees no difference.
/// </summary>
public sealed class ProcessEngine : IEngine
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Process");

    /// <summary>How long a master may take from exec to stopping before main() and connecting.</summary>
    private static readonly TimeSpan ConnectWithin = TimeSpan.FromSeconds(5);

    private readonly List<ProcessClone> _clones = [];
    private readonly object _gate = new();
    private WarmMasters? _warm;
    private StartupHints _hints = StartupHints.None;
    /// <summary>--isolate: the job's own network, where clones plug in and the PMI server listens.</summary>
    private JobNetwork? _network;

    public string Name => "process";

    public Task<EnginePreparation> PrepareAsync(WarmMasterSpec master, CancellationToken ct)
    {
        // Ranks may start children of their own; as subreaper sfrun inherits them when a rank
        // dies, and teardown kills them too.
        Posix.BecomeSubreaper();
        if (master.Isolate)
        {
            if (!master.Warm)
                throw new EngineUnavailableException("--isolate forks every clone from a warm master; it cannot be combined with --no-warm");
            _network = JobNetwork.Create();
        }
        if (master.WarmVm is { } vm)
        {
            _warm = new WarmMasters(master.JobId, AttachWarmVm(vm));
            if (Environment.GetEnvironmentVariable("SFRUN_WARM_HINTS") != "0")
                _hints = StartupHints.ForOneHost(isolated: _network is not null);
        }
        else if (WarmWanted(master) is { } library)
        {
            _warm = new WarmMasters(master.JobId, library, ConnectWithin);
            if (Environment.GetEnvironmentVariable("SFRUN_WARM_HINTS") != "0")
                _hints = StartupHints.ForOneHost(isolated: _network is not null);
        }
        Log.ForDebugEvent().Message("job {JobId}: process engine ready for {Count} program(s), warm fork {Warm}", master.JobId,
                master.Executables.Count, _warm is null ? "off" : "on")
            .Property("EventName", "EnginePrepared").Log();
        if (_network is { } network)
            return Task.FromResult(new EnginePreparation(JobNetwork.Gateway, JobNetwork.Gateway.ToString())
                { RunInClonesNetwork = network.Run, RanksInheritPmiFd = true });
        // Every rank is a local process: cold ones inherit their PMI_FD, warm ones (isolated too)
        // receive it from the master with SCM_RIGHTS, so no rank needs a port anyone could dial.
        return Task.FromResult(new EnginePreparation(IPAddress.Loopback, IPAddress.Loopback.ToString()) { RanksInheritPmiFd = true });
    }

    /// <summary>Connects to the warm VM's master for this job.</summary>
    /// <exception cref="WarmVmDeadException">It does not answer.</exception>
    private static WarmMaster AttachWarmVm(string name)
    {
        var record = WarmVms.Find(name);
        if (!WarmVms.IsAlive(record))
            throw new WarmVmDeadException(WarmVms.DeadMessage(record));
        try
        {
            var master = WarmMaster.Attach(name, record.Socket, record.Pid, record.Program, WarmVms.AnswerWithin);
            Log.ForDebugEvent().Message("job forks from warm VM {Vm} (master {Pid})", name, record.Pid)
                .Property("EventName", "WarmVmAttached").Log();
            return master;
        }
        catch (Exception e) when (e is IOException or WarmUnavailableException)
        {
            throw new WarmVmDeadException($"warm VM '{name}' (pid {record.Pid}) does not answer: {e.Message}; run 'sfrun warm rm {name}' and create it again");
        }
    }

    /// <summary>libsfwarm.so if the job should fork from warm masters, else null (said why at -v).</summary>
    private static string? WarmWanted(WarmMasterSpec master)
    {
        string? why = null;
        if (!master.Warm)
            why = "--no-warm";
        else if (Environment.GetEnvironmentVariable("SFRUN_WARM") == "0")
            why = "SFRUN_WARM=0";
        else if (NativeHelpers.Find("libsfwarm.so") is { } library)
            return library;
        else
            why = "libsfwarm.so not found (set SFRUN_NATIVE_DIR, or build native/ with scripts/setup)";
        Log.ForDebugEvent().Message("warm fork off, ranks start cold: {Reason}", why).Property("EventName", "WarmForkUnavailable").Log();
        return null;
    }

    public Task<IReadOnlyList<IClone>> CloneAsync(int count, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var made = new List<IClone>(count);
        lock (_gate)
        {
            for (var i = 0; i < count; i++)
            {
                var index = _clones.Count;
                // Isolated, each clone is a node of its own to MPI (PMI_process_mapping), with its own host name.
                var identity = _network is null
                    ? new CloneIdentity(index, NodeId: 0, HostName: "localhost")
                    : new CloneIdentity(index, NodeId: index, HostName: $"{Environment.MachineName}-c{index}");
                var clone = new ProcessClone(identity, _warm, _hints, _network);
                _clones.Add(clone);
                made.Add(clone);
            }
        }
        return Task.FromResult<IReadOnlyList<IClone>>(made);
    }

    public async Task TeardownAsync(CancellationToken ct)
    {
        ProcessClone[] clones;
        lock (_gate)
            clones = [.. _clones];
        await Task.WhenAll(clones.Select(c => c.DestroyAsync(ct))).ConfigureAwait(false);
        if (_warm is { } warm)
            await warm.DisposeAsync().ConfigureAwait(false);
        // The clones are gone; the job's network goes when the PMI server's sockets close too.
        _network?.Dispose();
        KillOrphans();
    }

    /// <summary>Kills what the ranks left behind: descendants that were reparented to sfrun.
    /// Repeated because a dying orphan may itself orphan children.</summary>
    private static void KillOrphans()
    {
        for (var round = 0; round < 10; round++)
        {
            var orphans = Posix.LiveChildren();
            if (orphans.Count == 0)
                return;
            foreach (var pid in orphans)
                Posix.TrySignal(pid, Signals.SIGKILL);
            Log.ForDebugEvent().Message("killed {Count} processes left behind by ranks", orphans.Count)
                .Property("EventName", "OrphansKilled").Log();
            Thread.Sleep(10);
        }
    }

    public async ValueTask DisposeAsync() => await TeardownAsync(CancellationToken.None).ConfigureAwait(false);
}
