using System.ComponentModel;
using Snowflock.Engine.Internal;
using SysProcess = System.Diagnostics.Process;

namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>A slot on the local host. Its ranks are forked from the program's warm master when
/// there is one (<paramref name="warm"/>), else started cold as children of sfrun; either way they
/// live until teardown. <paramref name="hints"/> adds the warm start-up state to each rank. With
/// <paramref name="network"/> (--isolate) each rank is forked into namespaces of its own on the job's bridge.</summary>
internal sealed class ProcessClone(CloneIdentity identity, WarmMasters? warm, StartupHints hints, JobNetwork? network = null) : IClone
{
    private readonly List<IRankProcess> _ranks = [];

    public CloneIdentity Identity { get; } = identity;

    public async Task<IRankProcess> StartRankAsync(RankStart start, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        start = start with { Environment = WithPmiFd(hints.ApplyTo(start.Environment), start.PmiSocket) };
        IRankProcess rank;
        if (network is not null)
        {
            var master = warm is null ? null : await warm.ForAsync(start, ct).ConfigureAwait(false);
            if (master is null)
                throw new RankStartException($"rank {start.Rank}: --isolate forks each clone from a warm master, and {start.Executable} "
                    + "cannot be one (run with -v for why)");
            var isolated = new Dictionary<string, string>(start.Environment) { ["SFWARM_ISOLATE"] = JobNetwork.CloneSpec(Identity.CloneId, Identity.HostName) };
            rank = await master.ForkAsync(start with { Environment = isolated }, Identity.HostName, ct, network.Fd).ConfigureAwait(false);
        }
        else if (warm is not null && await warm.ForAsync(start, ct).ConfigureAwait(false) is { } master)
            rank = await master.ForkAsync(start, Identity.HostName, ct).ConfigureAwait(false);
        else
            rank = await StartColdAsync(start).ConfigureAwait(false);
        lock (_ranks)
            _ranks.Add(rank);
        return rank;
    }

    /// <summary>With a PMI socket the rank finds the server by PMI_FD, as under hydra: the number
    /// is the fd's in sfrun, which a cold rank inherits as is and a warm master rewrites to the
    /// number it received the fd at. PMI_PORT and PMI_ID would only name a listener.</summary>
    private static IReadOnlyDictionary<string, string> WithPmiFd(IReadOnlyDictionary<string, string> env, System.Net.Sockets.Socket? pmi)
    {
        if (pmi is null)
            return env;
        var wired = new Dictionary<string, string>(env);
        wired.Remove("PMI_PORT");
        wired.Remove("PMI_ID");
        wired["PMI_FD"] = pmi.Handle.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return wired;
    }

    private async Task<LocalRankProcess> StartColdAsync(RankStart start)
    {
        var psi = ColdStarter.StartInfo(start.Executable, start.Arguments);
        psi.UseShellExecute = false;
        psi.RedirectStandardInput = true;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.WorkingDirectory = start.WorkingDirectory;
        psi.Environment.Clear();
        foreach (var (name, value) in start.Environment)
            psi.Environment[name] = value;
        if (ColdStarter.Guarded)
            FileDescriptorLimit.PassOn(psi.Environment);

        SysProcess process;
        try
        {
            process = await ColdStarter.StartAsync(psi, start.PmiSocket is { } pmi ? (int)pmi.Handle : -1).ConfigureAwait(false)
                ?? throw new RankStartException($"rank {start.Rank}: {start.Executable} did not start");
        }
        catch (Win32Exception e)
        {
            throw new RankStartException($"rank {start.Rank}: cannot execute {start.Executable}: {e.Message}", e);
        }
        return new LocalRankProcess(start.Rank, process, Identity.HostName);
    }

    /// <summary>Kills every rank still running and reaps it: nothing of the clone survives.</summary>
    public async Task DestroyAsync(CancellationToken ct)
    {
        IRankProcess[] ranks;
        lock (_ranks)
            ranks = [.. _ranks];
        foreach (var r in ranks)
            r.Signal(Signals.SIGKILL);
        foreach (var r in ranks)
            await r.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>A rank that is a child process of sfrun.</summary>
internal sealed class LocalRankProcess : IRankProcess
{
    private readonly SysProcess _process;
    private readonly int _pid;

    public LocalRankProcess(int rank, SysProcess process, string host)
    {
        Rank = rank;
        _process = process;
        _pid = process.Id;
        Location = $"pid {_pid} on {host}";
        Exited = WaitAsync();
    }

    public int Rank { get; }
    public string Location { get; }
    public int? HostPid => _pid;
    public Stream StandardInput => _process.StandardInput.BaseStream;
    public Stream StandardOutput => _process.StandardOutput.BaseStream;
    public Stream StandardError => _process.StandardError.BaseStream;
    public Task<RankExit> Exited { get; }

    private async Task<RankExit> WaitAsync()
    {
        await _process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        // .NET reports death by signal N as exit code 128+N (the shell's convention); it does not
        // expose the raw wait status, so an exit(128+N) by the program reads the same.
        var code = _process.ExitCode;
        return code is > 128 and < 128 + 65 ? new RankExit(code, code - 128) : new RankExit(code, null);
    }

    public void Signal(int signal)
    {
        if (Exited.IsCompleted)
            return;
        Posix.TrySignal(_pid, signal);
    }

    public async ValueTask DisposeAsync()
    {
        Signal(Signals.SIGKILL);
        await Exited.ConfigureAwait(false);
        _process.Dispose();
    }
}
