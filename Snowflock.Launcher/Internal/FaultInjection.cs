using Snowflock.Engine;

namespace Snowflock.Launcher.Internal;

/// <summary>
/// Faults that tests inject into a real job to prove the failure paths: with
/// <c>SFRUN_INJECT_FAULT=rank-start:N</c> the start of rank N fails as an engine failure would,
/// after ranks 0..N-1 are already running, so teardown of a half-made job is exercised for real.
/// </summary>
internal static class FaultInjection
{
    private static readonly int? FailRankStart = Parse(Environment.GetEnvironmentVariable("SFRUN_INJECT_FAULT"));

    private static int? Parse(string? spec) =>
        spec is not null && spec.StartsWith("rank-start:", StringComparison.Ordinal) && int.TryParse(spec["rank-start:".Length..], out var n)
            ? n : null;

    public static void BeforeRankStart(int rank)
    {
        if (FailRankStart == rank)
            throw new RankStartException($"rank {rank}: could not start (fault injected by SFRUN_INJECT_FAULT)");
    }
}
