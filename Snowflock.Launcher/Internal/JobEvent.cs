using Snowflock.Engine;
using Snowflock.Mpi.Pmi;

namespace Snowflock.Launcher.Internal;

/// <summary>Everything the job's supervisor reacts to, in one stream with one reader.</summary>
internal abstract record JobEvent
{
    /// <summary>When it happened, as <see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>.</summary>
    public long At { get; init; } = System.Diagnostics.Stopwatch.GetTimestamp();

    public sealed record RankExited(int Rank, RankExit Exit) : JobEvent;
    public sealed record Pmi(PmiEvent Event) : JobEvent;
    public sealed record SignalReceived(int Signal) : JobEvent;
    public sealed record TimedOut : JobEvent;
    public sealed record GraceExpired : JobEvent;
}
