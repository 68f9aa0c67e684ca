using System.Threading.Channels;
using NLog;
using Snowflock.Engine;
using Snowflock.Launcher.Internal;
using Snowflock.Launcher.Internal.Clones;
using Snowflock.Mpi.Pmi;

namespace Snowflock.Launcher;

/// <summary>
/// One run of a <see cref="JobSpec"/>: placement, PMI server, engine, ranks, I/O, exit code, and
/// teardown in <c>finally</c> whatever happened. A single supervisor loop owns the job's state and
/// reads one event stream (rank exits, PMI events, signals, timeout).
/// </summary>
public sealed class Job
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Launcher");

    private JobSpec _spec;
    private readonly Stream _stdin, _stdout, _stderr;
    /// <summary>How long the job waits for killed ranks to be reaped before it ends anyway.</summary>
    private static readonly TimeSpan KillGrace = TimeSpan.FromSeconds(10);

    private readonly Channel<JobEvent> _events = Channel.CreateUnbounded<JobEvent>();

    public Job(JobSpec spec, Stream stdin, Stream stdout, Stream stderr)
    {
        _spec = spec;
        _stdin = stdin;
        _stdout = stdout;
        _stderr = stderr;
        Id = $"{Environment.ProcessId}-{Random.Shared.Next(0x10000):x4}";
    }

    /// <summary>Unique per job; names the KVS and every resource the job creates.</summary>
    public string Id { get; }

    /// <summary>Hands a signal sent to sfrun to the job: forwarded to ranks; a second SIGINT forces teardown.</summary>
    public void Deliver(int signal)
    {
        // Until the clones exist there is no rank to forward to, and setting up a VM engine can take
        // seconds (a template boot, a Xen restore): a terminating signal cancels the set-up instead.
        if (Volatile.Read(ref _settingUp) && signal is 1 or 2 or 3 or 15 && Interlocked.CompareExchange(ref _setupSignal, signal, 0) == 0)
            _setup.Cancel();
        _events.Writer.TryWrite(new JobEvent.SignalReceived(signal));
    }

    private readonly CancellationTokenSource _setup = new();
    private bool _settingUp = true;
    private int _setupSignal;

    /// <summary>Runs the job to its end. Throws only for input errors found before any rank starts
    /// (<see cref="ProgramNotFoundException"/>, <see cref="OutputPatternException"/>, <see cref="PlacementException"/>,
    /// <see cref="EngineUnavailableException"/>); every later failure is a <see cref="JobResult"/>.</summary>
    public async Task<JobResult> RunAsync(CancellationToken ct)
    {
        (_spec, _, var hostPlan) = PlacementPlan.Apply(_spec, Environment.GetEnvironmentVariable);
        var total = _spec.TotalRanks;
        var timeline = new Timeline(total);
        var resolved = ResolveBlocks();
        await using var output = await OutputRouter.OpenAsync(_spec.Output, total, _stdout, _stderr).ConfigureAwait(false);
        // Ranks on other hosts: one agent per host, reached through the site's launcher; else the engine runs them here.
        await using var engine = hostPlan.AllLocal ? EngineCatalog.Create(_spec.Engine, _spec.XenHost)
            : new Internal.Hosts.HostsEngine(hostPlan, _spec.HostLaunch, Environment.GetEnvironmentVariable);
        var state = new RankTable(total);
        Pmi1Server? pmi = null;
        CloneAgent? cloneAgent = null;
        var pumps = new List<Task>();
        using var stopIo = new CancellationTokenSource();
        try
        {
            EnginePreparation prep;
            IReadOnlyList<IClone> clones;
            using (var setup = CancellationTokenSource.CreateLinkedTokenSource(ct, _setup.Token))
            {
                try
                {
                    prep = await engine.PrepareAsync(new WarmMasterSpec(Id, resolved.Select(b => b.Executable).Distinct().ToList())
                        { Warm = _spec.Warm, RanksPerClone = _spec.PerNode, WarmVm = _spec.WarmVm, Isolate = _spec.Isolate }, setup.Token)
                        .ConfigureAwait(false);
                    timeline.Mark("clones requested");
                    clones = await engine.CloneAsync(total, setup.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (_setup.IsCancellationRequested)
                {
                    var interrupted = new JobEnding.Interrupted(Volatile.Read(ref _setupSignal));
                    return new JobResult(ExitCodeRule.ExitCode(interrupted), ExitCodeRule.Report(interrupted, total), state.Exits());
                }
                finally
                {
                    Volatile.Write(ref _settingUp, false);
                }
            }
            timeline.Mark("clones running");
            var nodeOfRank = clones.Select(c => c.Identity.NodeId).ToArray();
            var appnum = resolved.SelectMany((b, i) => Enumerable.Repeat(i, b.Block.Ranks)).ToArray();
            var peerCheck = new PmiPeerCheck(total);
            pmi = new Pmi1Server(new PmiJobLayout($"kvs_{Id}", nodeOfRank, appnum) { Admission = peerCheck.Admit });
            // Ranks that inherit their PMI_FD need no listener; only VM guests (relayed by sfrun) dial one.
            if (!prep.RanksInheritPmiFd)
            {
                if (prep.RunInClonesNetwork is { } inClonesNetwork)
                    inClonesNetwork(() => pmi.Start(prep.PmiListenAddress));
                else
                    pmi.Start(prep.PmiListenAddress);
            }
            if (engine is Internal.Hosts.IAggregatesPmi aggregating)
                aggregating.JoinHostPmi(pmi.ConnectHost);
            if (_spec.Timeout is { } timeout)
                _ = Task.Delay(timeout, stopIo.Token).ContinueWith(t => { if (!t.IsCanceled) _events.Writer.TryWrite(new JobEvent.TimedOut()); },
                    TaskScheduler.Default);

            var envBuilder = new RankEnvironmentBuilder(_spec, Environment.GetEnvironmentVariables());
            // The SnowFlock clone API forks on the rank's own host: only the process engine's ranks can
            // reach the agent; elsewhere an empty SF_AGENT (not an outer job's) makes libsf work standalone.
            cloneAgent = engine.Name == "process" ? CloneAgent.TryStart(Id, _spec.MaxClones) : null;
            envBuilder.SetForJob(CloneWire.Variable, cloneAgent?.SocketPath ?? "");
            var startError = await StartRanksAsync(resolved, clones, prep, pmi, peerCheck, envBuilder, output, state, timeline, pumps, stopIo.Token, ct)
                .ConfigureAwait(false);
            var ending = await SuperviseAsync(state, timeline, pmi.Events, startError).ConfigureAwait(false);

            // Ranks are gone; their pipes close unless a grandchild holds them. Don't wait forever —
            // but output still on its way to a slow reader (backpressure) is waited for while it moves.
            var allPumped = Task.WhenAll(pumps);
            for (var written = -1L; !allPumped.IsCompleted && output.Written != written;)
            {
                written = output.Written;
                await Task.WhenAny(allPumped, Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None)).ConfigureAwait(false);
            }
            if (_spec.TimelinePath is { } timelinePath)
                WriteTimeline(timelinePath, timeline, ending);
            return new JobResult(ExitCodeRule.ExitCode(ending), ExitCodeRule.Report(ending, total), state.Exits());
        }
        finally
        {
            stopIo.Cancel();
            if (cloneAgent is not null)
                await cloneAgent.DisposeAsync().ConfigureAwait(false);
            state.KillAll();
            await engine.TeardownAsync(CancellationToken.None).ConfigureAwait(false);
            foreach (var block in resolved)
                block.Mpi.Dispose();
            if (pmi is not null)
                await pmi.DisposeAsync().ConfigureAwait(false);
            await Task.WhenAll(pumps).ConfigureAwait(false);
            Log.ForDebugEvent().Message("job {JobId} torn down", Id).Property("EventName", "JobTornDown").Log();
        }
    }

    private void WriteTimeline(string path, Timeline timeline, JobEnding ending)
    {
        var title = $"sfrun job {Id}: {string.Join(" : ", _spec.Blocks.Select(b => $"-np {b.Ranks} {Path.GetFileName(b.Program)}"))}"
            + (ExitCodeRule.Report(ending, _spec.TotalRanks) is { } report ? $" \u2014 {report}" : "");
        try
        {
            TimelineWriter.Write(path, timeline, title);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.ForWarnEvent().Message("cannot write the timeline {Path}: {Error}", path, IoMessages.Describe(e, path)).Property("EventName", "TimelineFailed").Log();
        }
    }

    /// <param name="Mpi">What the program's MPI library needs beyond the PMI wiring (<see cref="MpiFlavor"/>).</param>
    private sealed record ResolvedBlock(ProgramBlock Block, string Executable, string WorkingDirectory, MpiSetup Mpi);

    private List<ResolvedBlock> ResolveBlocks()
    {
        var cwd = Directory.GetCurrentDirectory();
        var list = new List<ResolvedBlock>();
        var mpiScratch = new MpiScratch(Id); // one per job, made only if an Open MPI rank starts
        foreach (var block in _spec.Blocks)
        {
            var wdir = block.WorkingDirectory is { } w ? Path.GetFullPath(w, cwd) : cwd;
            if (!Directory.Exists(wdir))
                throw new PlacementException($"-wdir {block.WorkingDirectory}: no such directory");
            var path = _spec.GlobalEnvironment.TryGetValue("PATH", out var p) ? p : Environment.GetEnvironmentVariable("PATH");
            var executable = ProgramResolver.Resolve(block.Program, wdir, path);
            // A warm domU lives in dom0; the xen engine checks it there.
            if (_spec.WarmVm is { } vm && _spec.Engine != "xen")
                WarmVms.ForJob(vm, executable, block.Arguments);
            list.Add(new ResolvedBlock(block, executable, wdir, MpiFlavor.SetupFor(executable, Id, mpiScratch)));
        }
        return list;
    }

    private async Task<string?> StartRanksAsync(List<ResolvedBlock> blocks, IReadOnlyList<IClone> clones, EnginePreparation prep,
        Pmi1Server pmi, PmiPeerCheck peerCheck, RankEnvironmentBuilder envBuilder, OutputRouter output, RankTable state, Timeline timeline, List<Task> pumps,
        CancellationToken ioToken, CancellationToken ct)
    {
        var progress = new StartProgress(state.Count, timeline, Console.Error);
        var localSize = clones.GroupBy(c => c.Identity.NodeId).ToDictionary(g => g.Key, g => g.Count());
        var localRank = new Dictionary<int, int>();
        // Starts in flight at once: one where a start is a local fork, more where each is a round
        // trip to another host's agent (those are answered in order, so ranks still register in order).
        var window = Math.Max(1, prep.StartsInFlight);
        var pending = new Queue<(int Rank, Task<IRankProcess> Start, Task Attached, System.Net.Sockets.Socket? Pmi)>();
        var abandoned = false;

        // A rank's output is read from the moment it started, not when its turn to register
        // comes: a rank that writes much early must not stall the connection its elders' starts
        // are answered on.
        void AttachOutput(int r, IRankProcess process)
        {
            var (outTag, errTag) = OutputTags.For(_spec.Output, r);
            lock (pumps)
            {
                if (abandoned)
                    return; // the job failed to start; teardown ends this rank
                pumps.Add(LineForwarder.ForwardAsync(process.StandardOutput, output.StdoutOf(r), outTag, ioToken));
                pumps.Add(LineForwarder.ForwardAsync(process.StandardError, output.StderrOf(r), errTag, ioToken));
            }
        }

        // What a rank that could not start says, whether its start failed at once or in flight.
        static string StartFailure(int r, Exception e) =>
            e is System.Net.Sockets.SocketException ? $"rank {r}: cannot make its PMI connection: {e.Message}" : e.Message;

        async Task<string?> RegisterOldestAsync()
        {
            var (r, start, attached, pmiSocket) = pending.Dequeue();
            IRankProcess process;
            try
            {
                process = await start.ConfigureAwait(false);
                await attached.ConfigureAwait(false);
            }
            catch (Exception e) when (e is RankStartException or System.Net.Sockets.SocketException)
            {
                return StartFailure(r, e);
            }
            finally
            {
                // The rank holds its own copy now (inherited, or sent to its warm master).
                pmiSocket?.Dispose();
            }
            peerCheck.RankStarted(r, process.HostPid);
            state.Started(process);
            timeline.Ranks[r].Started = timeline.Now;
            progress.Started(r + 1);
            if (r == _spec.StdinRank)
                // Not awaited at teardown: a read of sfrun's own stdin (a terminal, an open pipe)
                // cannot be cancelled, and the job must not wait for input that never comes.
                _ = StdinForwarder.ForwardAsync(_stdin, process.StandardInput, ioToken);
            else
                process.StandardInput.Dispose();
            _ = process.Exited.ContinueWith(t => _events.Writer.TryWrite(new JobEvent.RankExited(r, t.Result)),
                TaskScheduler.Default);
            return null;
        }

        string? Abandon(string error)
        {
            // Starts still in flight end with the engine's teardown; their PMI sockets end here.
            lock (pumps)
                abandoned = true;
            while (pending.TryDequeue(out var p))
                p.Pmi?.Dispose();
            progress.Done();
            return error;
        }

        var rank = 0;
        foreach (var (block, executable, wdir) in blocks.Select(b => (b, b.Executable, b.WorkingDirectory)))
        {
            for (var i = 0; i < block.Block.Ranks; i++, rank++)
            {
                var clone = clones[rank];
                var node = clone.Identity.NodeId;
                localRank[node] = localRank.GetValueOrDefault(node) + 1;
                var wiring = prep.RanksInheritPmiFd
                    ? RankEnvironment.ForInherited(rank, state.Count, localRank[node] - 1, localSize[node], blocks.IndexOf(block))
                    : RankEnvironment.For(prep.PmiHostForClones, pmi.LocalEndPoint.Port, rank, state.Count,
                        localRank[node] - 1, localSize[node], blocks.IndexOf(block));
                System.Net.Sockets.Socket? pmiSocket = null;
                try
                {
                    FaultInjection.BeforeRankStart(rank);
                    pmiSocket = prep.RanksInheritPmiFd ? pmi.ConnectRank(rank) : null;
                    var start = clone.StartRankAsync(
                        new RankStart(rank, executable, block.Block.Arguments,
                            block.Mpi.ApplyTo(envBuilder.For(block.Block, wiring), localSize[node], Environment.ProcessorCount), wdir)
                            { PmiSocket = pmiSocket }, ct);
                    var r = rank;
                    var attached = start.ContinueWith(t =>
                    {
                        if (t.IsCompletedSuccessfully)
                            AttachOutput(r, t.Result);
                    }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                    pending.Enqueue((rank, start, attached, pmiSocket));
                }
                catch (Exception e) when (e is RankStartException or System.Net.Sockets.SocketException)
                {
                    pmiSocket?.Dispose();
                    return Abandon(StartFailure(rank, e));
                }
                while (pending.Count >= window)
                    if (await RegisterOldestAsync().ConfigureAwait(false) is { } error)
                        return Abandon(error);
            }
        }
        while (pending.Count > 0)
            if (await RegisterOldestAsync().ConfigureAwait(false) is { } error)
                return Abandon(error);
        progress.Done();
        Log.ForDebugEvent().Message("job {JobId}: {Count} ranks started", Id, rank).Property("EventName", "RanksStarted").Log();
        return null;
    }

    /// <summary>The supervisor: reads events until every started rank has exited, and decides the
    /// job's ending from the first failure it sees. PMI events are taken before anything else: the
    /// server publishes a finalize before its ack, so a clean exit is never mistaken for a crash.</summary>
    private async Task<JobEnding> SuperviseAsync(RankTable state, Timeline timeline, ChannelReader<PmiEvent> pmiEvents, string? startError)
    {
        JobEnding? ending = null;
        var interrupts = 0;
        int? forwardedSignal = null;
        if (startError is not null)
        {
            ending = new JobEnding.StartFailed(startError);
            state.KillAll();
        }
        void Fail(JobEnding e)
        {
            if (ending is not null)
                return;
            ending = e;
            state.KillAll();
            // SIGKILL cannot be refused, but a rank stuck in the kernel (D state, a hung NFS
            // mount) is not reaped until it returns: bound the wait, as the job is decided.
            _ = Task.Delay(KillGrace).ContinueWith(_ => _events.Writer.TryWrite(new JobEvent.GraceExpired()), TaskScheduler.Default);
        }

        var giveUp = false;
        while (state.Running > 0 && !giveUp)
        {
            JobEvent? ev;
            if (pmiEvents.TryRead(out var pe))
                ev = new JobEvent.Pmi(pe);
            else if (!_events.Reader.TryRead(out ev))
            {
                await Task.WhenAny(_events.Reader.WaitToReadAsync().AsTask(), pmiEvents.WaitToReadAsync().AsTask()).ConfigureAwait(false);
                continue;
            }
            switch (ev)
            {
                case JobEvent.RankExited(var rank, var exit):
                    state.Exited(rank, exit);
                    (timeline.Ranks[rank].Exited, timeline.Ranks[rank].Exit) = (timeline.At(ev.At), exit.ToString());
                    Log.ForDebugEvent().Message("rank {Rank} ended: {Exit}", rank, exit).Property("EventName", "RankExited").Log();
                    if (ending is not null)
                        break;
                    if (forwardedSignal is { } sig && !exit.Success)
                        Fail(new JobEnding.Interrupted(sig));
                    else if (!exit.Success || state.IsInitialized(rank) && !state.IsFinalized(rank))
                        Fail(new JobEnding.RankFailed(rank, state.Location(rank), exit, state.IsInitialized(rank), state.IsFinalized(rank)));
                    else if (SilentSingleton.Find(state) is { } alone)
                        Fail(alone);
                    break;
                case JobEvent.Pmi(PmiRankInitialized i):
                    state.Initialized(i.Rank);
                    if (ending is null && SilentSingleton.Find(state) is { } lone)
                        Fail(lone);
                    timeline.Ranks[i.Rank].Initialized = timeline.At(i.At);
                    break;
                case JobEvent.Pmi(PmiRankFinalized f):
                    state.Finalized(f.Rank);
                    timeline.Ranks[f.Rank].Finalized = timeline.At(f.At);
                    break;
                case JobEvent.Pmi(PmiBarrierCompleted b):
                    timeline.Mark($"PMI barrier {b.Epoch} complete", b.At);
                    break;
                case JobEvent.Pmi(PmiAbortRequested a):
                    Fail(new JobEnding.Aborted(a.Rank, state.Location(a.Rank), a.ExitCode, a.Message));
                    break;
                case JobEvent.Pmi(PmiProtocolViolation v):
                    Fail(new JobEnding.ProtocolViolation(v.Rank, state.Location(v.Rank), v.Message));
                    break;
                case JobEvent.Pmi:
                    break;
                case JobEvent.SignalReceived(var signal):
                    if (signal == Signals.SIGINT && ++interrupts >= 2)
                    {
                        Fail(new JobEnding.Interrupted(signal));
                        break;
                    }
                    Log.ForDebugEvent().Message("forwarding {Signal} to {Count} ranks", Signals.Name(signal), state.Running)
                        .Property("EventName", "SignalForwarded").Log();
                    if (signal is Signals.SIGINT or Signals.SIGTERM or Signals.SIGHUP or Signals.SIGQUIT)
                        forwardedSignal ??= signal;
                    state.SignalAll(signal);
                    break;
                case JobEvent.TimedOut:
                    Fail(new JobEnding.TimedOut(_spec.Timeout ?? TimeSpan.Zero));
                    break;
                case JobEvent.GraceExpired:
                    Log.ForWarnEvent().Message("{Count} ranks were not reaped {Grace} s after SIGKILL; leaving them to the engine's teardown",
                        state.Running, KillGrace.TotalSeconds).Property("EventName", "KillGraceExpired").Log();
                    giveUp = true;
                    break;
            }
        }
        return ending ?? new JobEnding.AllSucceeded();
    }
}
