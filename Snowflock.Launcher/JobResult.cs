using Snowflock.Engine;

namespace Snowflock.Launcher;

/// <summary>How a job ended and the exit code sfrun returns for it.</summary>
/// <param name="ExitCode">See <see cref="Internal.ExitCodeRule"/> for the rule (hydra's).</param>
/// <param name="Report">The one line explaining a failure, or null when every rank succeeded.</param>
/// <param name="Ranks">Each rank's own end, for <c>-print-all-exitcodes</c>; null if it never started.</param>
public sealed record JobResult(int ExitCode, string? Report, IReadOnlyList<RankExit?> Ranks);
