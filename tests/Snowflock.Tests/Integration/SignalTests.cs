using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>Signals to sfrun reach the ranks; a second Ctrl-C forces teardown; nothing survives.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class SignalTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <summary>Starts sfrun with default signal dispositions: the test host may run with SIGHUP or
    /// SIGINT ignored (as under nohup or a non-interactive shell), and an ignored signal is
    /// inherited and, rightly, stays ignored by sfrun.</summary>
    private static CommandRun StartSfrun(params string[] args) =>
        CommandRun.Start("/usr/bin/env", ["--default-signal=HUP,INT,QUIT,TERM,USR1,USR2", Repo.Sfrun, .. args], watchLines: true);

    [Theory]
    [InlineData(2, 130)]
    [InlineData(15, 143)]
    public async Task A_signal_to_sfrun_is_forwarded_and_ends_the_job(int signal, int exitCode)
    {
        var tag = Leaks.NewTag();
        await using var run = StartSfrun([.. Leaks.TagArgs(tag), "-np", "4", Repo.TestProgram("sleeper")]);
        await run.WaitForLinesAsync("ready", 4, Bound);
        Assert.Equal(4, Leaks.ProcessesWithTag(tag).Count);
        run.Signal(signal);
        var r = await run.WaitAsync(Bound);
        Assert.Equal(exitCode, r.ExitCode);
        Assert.Contains("interrupted by", r.Err);
        await Leaks.AssertNoneAsync(tag);
    }

    /// <summary>MPICH ranks catch SIGHUP themselves (their runtime installs a handler), so this uses
    /// plain shell ranks, for which SIGHUP is fatal.</summary>
    [Fact]
    public async Task SIGHUP_is_forwarded_and_ends_ranks_that_do_not_handle_it()
    {
        var tag = Leaks.NewTag();
        await using var run = StartSfrun([.. Leaks.TagArgs(tag), "-np", "3", "/bin/sh", "-c", "echo ready; while :; do sleep 0.1; done"]);
        await run.WaitForLinesAsync("ready", 3, Bound);
        run.Signal(1);
        var r = await run.WaitAsync(Bound);
        Assert.Equal(129, r.ExitCode);
        Assert.Contains("interrupted by SIGHUP", r.Err);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task SIGUSR1_is_forwarded_to_every_rank()
    {
        var tag = Leaks.NewTag();
        // Each rank traps USR1, says so, and exits 0: the job succeeds only if all four got it.
        await using var run = StartSfrun([.. Leaks.TagArgs(tag), "-np", "4", "/bin/sh", "-c",
            "trap 'echo got-usr1 $PMI_RANK; exit 0' USR1; echo ready; while :; do sleep 0.1; done"]);
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
        await using var run = StartSfrun([.. Leaks.TagArgs(tag), "-np", "3", "/bin/sh", "-c",
            "trap '' INT; echo ready; while :; do sleep 0.1; done"]);
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
