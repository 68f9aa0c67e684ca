using Snowflock.Engine;

namespace Snowflock.Launcher.Internal;

/// <summary>
/// sfrun's exit code, following MPICH hydra 4.0 (measured) so batch scripts see what they saw:
/// every rank exits 0 → 0; <c>MPI_Abort(comm, c)</c> → c; the first rank to fail by exit code c → c;
/// killed by signal s → s (hydra reports the signal number, not 128+s). Where hydra says 0 but
/// the job did not complete — a rank of an MPI program exiting 0 before MPI_Finalize, which
/// kills the others, or a rank that ran as a singleton beside ranks that joined — sfrun says 1. Faults of the launcher or job (PMI protocol violation, a rank
/// that cannot start, <c>--timeout</c>) → 255, as hydra. A job ended by a signal sent to sfrun
/// itself → 128 + that signal, the shell's convention.
/// </summary>
internal static class ExitCodeRule
{
    public const int LauncherFault = 255;

    public static int ExitCode(JobEnding ending) => ending switch
    {
        JobEnding.AllSucceeded => 0,
        JobEnding.Aborted a => a.Code,
        JobEnding.RankFailed { Exit.Signal: { } s } => s,
        JobEnding.RankFailed { Exit.ExitCode: 0 } => 1,
        JobEnding.RankFailed f => f.Exit.ExitCode,
        JobEnding.NeverConnected => 1,
        JobEnding.Interrupted i => 128 + i.Signal,
        _ => LauncherFault,
    };

    /// <summary>The one line that tells the user what ended the job; null for a clean end.</summary>
    public static string? Report(JobEnding ending, int ranks) => ending switch
    {
        JobEnding.AllSucceeded => null,
        JobEnding.Aborted a => $"rank {a.Rank} ({a.Location}) called MPI_Abort with exit code {a.Code}"
            + (string.IsNullOrWhiteSpace(a.Message) ? "" : $" ({a.Message.Trim()})") + Others(ranks),
        JobEnding.RankFailed { Exit.Signal: { } s } f =>
            $"rank {f.Rank} ({f.Location}) was killed by signal {s} ({Signals.Name(s)})" + Others(ranks),
        JobEnding.RankFailed { Exit.ExitCode: 0 } f =>
            $"rank {f.Rank} ({f.Location}) exited with code 0 before calling MPI_Finalize" + Others(ranks),
        JobEnding.RankFailed f => $"rank {f.Rank} ({f.Location}) exited with code {f.Exit.ExitCode}"
            + (f.Finalized ? " after MPI_Finalize" : f.Initialized ? " before calling MPI_Finalize" : "") + Others(ranks),
        JobEnding.NeverConnected n => $"rank {n.Rank} ({n.Location}) exited with code 0 without reaching sfrun's PMI, "
            + $"while rank {n.Peer} did: it ran alone (an MPI singleton, or not an MPI program)" + Others(ranks),
        JobEnding.ProtocolViolation p => $"rank {p.Rank} ({p.Location}) broke the PMI protocol: {p.Message}" + Others(ranks),
        JobEnding.StartFailed s => s.Message,
        JobEnding.Interrupted i => $"interrupted by {Signals.Name(i.Signal)}; all ranks were stopped",
        JobEnding.TimedOut t => $"job timed out after {t.After.TotalSeconds:0.###} s; all ranks were killed",
        _ => ending.ToString(),
    };

    private static string Others(int ranks) => ranks > 1 ? "; the other ranks were killed" : "";
}
