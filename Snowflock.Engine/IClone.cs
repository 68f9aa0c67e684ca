namespace Snowflock.Engine;

/// <summary>One clone of the warm master: a place where ranks run.</summary>
public interface IClone
{
    CloneIdentity Identity { get; }

    /// <summary>Starts one rank inside this clone.</summary>
    Task<IRankProcess> StartRankAsync(RankStart start, CancellationToken ct);
}

/// <summary>Who a clone is. <paramref name="NodeId"/> groups clones that share memory (one host
/// for the process engine, one VM each for VM engines) and feeds MPICH's process mapping.</summary>
public sealed record CloneIdentity(int CloneId, int NodeId, string HostName);

/// <summary>Everything a clone needs to start a rank; the environment is complete (the engine adds nothing).</summary>
public sealed record RankStart(
    int Rank,
    string Executable,
    IReadOnlyList<string> Arguments,
    IReadOnlyDictionary<string, string> Environment,
    string WorkingDirectory)
{
    /// <summary>The rank's end of a socket pair to the job's PMI server, for an engine whose ranks
    /// can inherit an fd (<see cref="EnginePreparation.RanksInheritPmiFd"/>): the engine hands it
    /// to the rank and sets <c>PMI_FD</c> to its number there; the environment then has no
    /// <c>PMI_PORT</c>. Owned by the caller, which closes it once the rank has started.</summary>
    public System.Net.Sockets.Socket? PmiSocket { get; init; }
}

/// <summary>A running rank: its standard streams, its end, and a way to signal it.</summary>
public interface IRankProcess : IAsyncDisposable
{
    int Rank { get; }

    /// <summary>For reports: where the rank runs, e.g. "pid 1234 on localhost".</summary>
    string Location { get; }

    Stream StandardInput { get; }
    Stream StandardOutput { get; }
    Stream StandardError { get; }

    /// <summary>The rank's process id on sfrun's own host, when it runs there (process engine);
    /// null for ranks inside VMs. Lets the PMI server check that a loopback peer is this rank.</summary>
    int? HostPid => null;

    /// <summary>Completes when the rank has exited and been reaped.</summary>
    Task<RankExit> Exited { get; }

    /// <summary>Delivers a POSIX signal; a rank that has already exited is ignored.</summary>
    void Signal(int signal);
}

/// <summary>How a rank ended: an exit code, or the signal that killed it.</summary>
public readonly record struct RankExit(int ExitCode, int? Signal)
{
    public bool Success => ExitCode == 0 && Signal is null;
    public override string ToString() => Signal is { } s ? $"killed by signal {s} ({Signals.Name(s)})" : $"exit code {ExitCode}";
}
