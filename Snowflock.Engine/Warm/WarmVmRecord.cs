namespace Snowflock.Engine;

/// <summary>What is kept about one warm VM between jobs (NAME.json in <see cref="WarmVms.Directory"/>):
/// the program it holds, as it was when the master started (so a rebuilt program is detected),
/// and the master's process, identified by pid and start time (so a reused pid is not taken for it).</summary>
public sealed record WarmVmRecord
{
    public required string Name { get; init; }
    public required string Engine { get; init; }
    public required string Program { get; init; }
    public required IReadOnlyList<string> Arguments { get; init; }
    public required long ProgramSize { get; init; }
    public required DateTime ProgramModifiedUtc { get; init; }
    public required int Pid { get; init; }
    /// <summary>Field 22 of /proc/PID/stat when the master was created (clock ticks since boot).</summary>
    public required long PidStartTime { get; init; }
    public required DateTime CreatedUtc { get; init; }
    public required string Socket { get; init; }
}

/// <summary>One line of <c>sfrun warm list</c>: the record, whether its master lives, and what the
/// master says of itself (null when it is dead or does not answer).</summary>
public sealed record WarmVmStatus(WarmVmRecord Record, bool Alive, uint? JobsServed, uint? LiveClones);
