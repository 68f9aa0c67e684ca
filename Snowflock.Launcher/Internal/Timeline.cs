using System.Diagnostics;

namespace Snowflock.Launcher.Internal;

/// <summary>
/// When each step of a job happened, in milliseconds since the job began: the job-wide steps
/// (clones requested, clones running, PMI barriers) and each rank's own (started, MPI_Init
/// reached PMI, MPI_Finalize, exit). Written only by the job's own sequence (start-up, then the
/// supervisor), read once at the end for <c>--timeline</c>.
/// </summary>
internal sealed class Timeline(int ranks)
{
    private readonly long _start = Stopwatch.GetTimestamp();

    public sealed class RankTimes
    {
        public double? Started, Initialized, Finalized, Exited;
        public string? Exit;
    }

    public RankTimes[] Ranks { get; } = Enumerable.Range(0, ranks).Select(_ => new RankTimes()).ToArray();
    public List<(double At, string What)> JobMarks { get; } = [];

    public double Now => At(Stopwatch.GetTimestamp());

    /// <summary>Milliseconds since the job began at the given <see cref="Stopwatch.GetTimestamp"/>.</summary>
    public double At(long timestamp) => Stopwatch.GetElapsedTime(_start, timestamp).TotalMilliseconds;

    public void Mark(string what, long? timestamp = null) => JobMarks.Add((timestamp is { } t ? At(t) : Now, what));
}
