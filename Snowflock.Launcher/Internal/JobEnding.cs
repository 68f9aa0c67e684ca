using Snowflock.Engine;

namespace Snowflock.Launcher.Internal;

/// <summary>The first thing that ended a job early (or its clean end): it alone decides the exit code.</summary>
internal abstract record JobEnding
{
    public sealed record AllSucceeded : JobEnding;
    public sealed record Aborted(int Rank, string Location, int Code, string? Message) : JobEnding;
    public sealed record RankFailed(int Rank, string Location, RankExit Exit, bool Initialized, bool Finalized) : JobEnding;
    /// <summary>Rank exited 0 without reaching sfrun's PMI while rank Peer did (<see cref="SilentSingleton"/>).</summary>
    public sealed record NeverConnected(int Rank, string Location, int Peer) : JobEnding;
    public sealed record ProtocolViolation(int Rank, string Location, string Message) : JobEnding;
    public sealed record StartFailed(string Message) : JobEnding;
    public sealed record Interrupted(int Signal) : JobEnding;
    public sealed record TimedOut(TimeSpan After) : JobEnding;
}
