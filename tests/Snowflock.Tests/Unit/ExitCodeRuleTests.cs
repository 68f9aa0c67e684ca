using Snowflock.Engine;
using Snowflock.Launcher.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed class ExitCodeRuleTests
{
    private const string Where = "process pid 4242";

    [Fact]
    public void All_ranks_succeeding_is_zero_with_no_report()
    {
        var ending = new JobEnding.AllSucceeded();
        Assert.Equal(0, ExitCodeRule.ExitCode(ending));
        Assert.Null(ExitCodeRule.Report(ending, 4));
    }

    [Theory]
    [InlineData(7)]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(255)]
    public void MPI_Abort_exits_with_the_code_it_was_given(int code)
    {
        var ending = new JobEnding.Aborted(3, Where, code, "disk full ");
        Assert.Equal(code, ExitCodeRule.ExitCode(ending));
        var report = ExitCodeRule.Report(ending, 4)!;
        Assert.Contains("rank 3", report);
        Assert.Contains(Where, report);
        Assert.Contains("MPI_Abort", report);
        Assert.Contains($"exit code {code}", report);
        Assert.Contains("(disk full)", report);
        Assert.Contains("other ranks were killed", report);
    }

    [Fact]
    public void Abort_report_without_a_message_has_no_empty_parentheses()
    {
        var report = ExitCodeRule.Report(new JobEnding.Aborted(0, Where, 7, "  "), 1)!;
        Assert.DoesNotContain("()", report);
        Assert.DoesNotContain("other ranks", report);
        Assert.Equal(report, ExitCodeRule.Report(new JobEnding.Aborted(0, Where, 7, null), 1));
    }

    [Theory]
    [InlineData(Signals.SIGSEGV, "SIGSEGV")]
    [InlineData(Signals.SIGKILL, "SIGKILL")]
    [InlineData(Signals.SIGABRT, "SIGABRT")]
    public void A_rank_killed_by_a_signal_exits_with_the_signal_number(int signal, string name)
    {
        var ending = new JobEnding.RankFailed(2, Where, new RankExit(128 + signal, signal), Initialized: true, Finalized: false);
        Assert.Equal(signal, ExitCodeRule.ExitCode(ending));
        var report = ExitCodeRule.Report(ending, 3)!;
        Assert.Contains("rank 2", report);
        Assert.Contains(Where, report);
        Assert.Contains($"signal {signal}", report);
        Assert.Contains(name, report);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(127)]
    public void A_rank_failing_with_an_exit_code_passes_it_on(int code)
    {
        var ending = new JobEnding.RankFailed(1, Where, new RankExit(code, null), Initialized: true, Finalized: false);
        Assert.Equal(code, ExitCodeRule.ExitCode(ending));
        var report = ExitCodeRule.Report(ending, 2)!;
        Assert.Contains("rank 1", report);
        Assert.Contains(Where, report);
        Assert.Contains($"exited with code {code}", report);
        Assert.Contains("before calling MPI_Finalize", report);
    }

    [Fact]
    public void Exit_report_says_whether_the_rank_had_finalized()
    {
        Assert.Contains("after MPI_Finalize",
            ExitCodeRule.Report(new JobEnding.RankFailed(0, Where, new RankExit(4, null), true, true), 1));
        var notMpi = ExitCodeRule.Report(new JobEnding.RankFailed(0, Where, new RankExit(4, null), false, false), 1)!;
        Assert.DoesNotContain("MPI_Finalize", notMpi);
        Assert.Contains("exited with code 4", notMpi);
    }

    [Fact]
    public void Exit_zero_before_finalize_is_a_failure_with_code_one()
    {
        var ending = new JobEnding.RankFailed(5, Where, new RankExit(0, null), Initialized: true, Finalized: false);
        Assert.Equal(1, ExitCodeRule.ExitCode(ending));
        var report = ExitCodeRule.Report(ending, 6)!;
        Assert.Contains("rank 5", report);
        Assert.Contains(Where, report);
        Assert.Contains("code 0 before calling MPI_Finalize", report);
    }

    [Fact]
    public void A_PMI_protocol_violation_is_a_launcher_fault()
    {
        var ending = new JobEnding.ProtocolViolation(1, Where, "unknown PMI command bogus");
        Assert.Equal(255, ExitCodeRule.ExitCode(ending));
        var report = ExitCodeRule.Report(ending, 2)!;
        Assert.Contains("rank 1", report);
        Assert.Contains(Where, report);
        Assert.Contains("unknown PMI command bogus", report);
    }

    [Fact]
    public void A_timeout_is_a_launcher_fault()
    {
        var ending = new JobEnding.TimedOut(TimeSpan.FromSeconds(2.5));
        Assert.Equal(255, ExitCodeRule.ExitCode(ending));
        Assert.Contains("2.5 s", ExitCodeRule.Report(ending, 2));
    }

    [Fact]
    public void A_rank_that_cannot_start_is_a_launcher_fault_reported_as_is()
    {
        var ending = new JobEnding.StartFailed("rank 0: cannot execute ./a: permission denied");
        Assert.Equal(255, ExitCodeRule.ExitCode(ending));
        Assert.Equal("rank 0: cannot execute ./a: permission denied", ExitCodeRule.Report(ending, 1));
    }

    [Theory]
    [InlineData(Signals.SIGINT, 130, "SIGINT")]
    [InlineData(Signals.SIGTERM, 143, "SIGTERM")]
    [InlineData(Signals.SIGHUP, 129, "SIGHUP")]
    public void A_signal_to_sfrun_exits_with_128_plus_the_signal(int signal, int expected, string name)
    {
        var ending = new JobEnding.Interrupted(signal);
        Assert.Equal(expected, ExitCodeRule.ExitCode(ending));
        Assert.Contains(name, ExitCodeRule.Report(ending, 2));
    }

    [Fact]
    public void Launcher_fault_is_255()
    {
        Assert.Equal(255, ExitCodeRule.LauncherFault);
    }
}
