using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>Signals to sfrun reach the ranks; a second Ctrl-C forces teardown; nothing survives.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class SignalTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(2, 130)]
    [InlineData(15, 143)]
    [InlineData(1, 129)]
    public async Task A_signal_to_sfrun_is_forwarded_and_ends_the_job(int signal, int exitCode)
    {
        var tag = Leaks.NewTag();
        await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-np", "4", Repo.TestProgram("sleeper")], watchLines: true);
        await run.WaitForLinesAsync("ready", 4, Bound);
        Assert.Equal(4, Leaks.ProcessesWithTag(tag).Count);
        run.Signal(signal);
        var r = await run.WaitAsync(Bound);
        Assert.Equal(exitCode, r.ExitCode);
        Assert.Contains("interrupted by", r.Err);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task SIGUSR1_is_forwarded_to_every_rank()
    {
        var tag = Leaks.NewTag();
        // Each rank traps USR1, says so, and exits 0: the job succeeds only if all four got it.
        await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-np", "4", "/bin/sh", "-c",
            "trap 'echo got-usr1 $PMI_RANK; exit 0' USR1; echo ready; while :; do sleep 0.1; done"], watchLines: true);
        await run.WaitForLinesAsync("ready", 4, Bound);
        run.Signal(10);
        var r = await run.WaitAsync(Bound);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(4, r.OutLines.Count(l => l.StartsWith("got-usr1", StringComparison.Ordinal)));
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task A_second_SIGINT_forces_teardown_of_ranks_that_ignore_the_first()
    {
        var tag = Leaks.NewTag();
        await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-np", "3", "/bin/sh", "-c",
            "trap '' INT; echo ready; while :; do sleep 0.1; done"], watchLines: true);
        await run.WaitForLinesAsync("ready", 3, Bound);
        run.Signal(2);
        await Task.Delay(500);
        Assert.True(Leaks.ProcessesWithTag(tag).Count >= 3, "the ranks ignore SIGINT and must survive the first one");
        run.Signal(2);
        var r = await run.WaitAsync(Bound);
        Assert.Equal(130, r.ExitCode);
        await Leaks.AssertNoneAsync(tag);
    }
}
