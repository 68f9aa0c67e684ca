using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>A rank that aborts, crashes or quits early ends the whole job at once, with hydra's
/// exit code, one line naming the rank, and nothing left running.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class FailureTests
{
    private static async Task<CommandResult> RunTagged(string tag, params string[] args) =>
        await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), .. args]);

    [Fact]
    public async Task MPI_Abort_exits_with_its_code_and_kills_the_other_ranks()
    {
        var tag = Leaks.NewTag();
        var r = await RunTagged(tag, "-np", "4", Repo.TestProgram("abort"), "1", "7");
        var hy = await CommandRun.RunAsync(Repo.Hydra, ["-np", "4", Repo.TestProgram("abort"), "1", "7"]);
        Assert.Equal(hy.ExitCode, r.ExitCode);
        Assert.Equal(7, r.ExitCode);
        Assert.Contains("sfrun: rank 1 (pid ", r.Err);
        Assert.Contains("called MPI_Abort with exit code 7", r.Err);
        await Leaks.AssertNoneAsync(tag);
    }

    [Theory]
    [InlineData("segv", 11, "killed by signal 11 (SIGSEGV)")]
    [InlineData("kill9", 9, "killed by signal 9 (SIGKILL)")]
    [InlineData("exit3", 3, "exited with code 3 before calling MPI_Finalize")]
    [InlineData("exit0", 1, "exited with code 0 before calling MPI_Finalize")]
    public async Task A_failing_rank_ends_the_job_and_is_named(string how, int exitCode, string report)
    {
        var tag = Leaks.NewTag();
        var r = await RunTagged(tag, "-np", "4", Repo.TestProgram("crash"), "2", how);
        Assert.Equal(exitCode, r.ExitCode);
        var line = Assert.Single(r.Err.Split('\n'), l => l.StartsWith("sfrun: ", StringComparison.Ordinal));
        Assert.Contains("rank 2 (pid ", line);
        Assert.Contains("on localhost", line);
        Assert.Contains(report, line);
        Assert.Contains("the other ranks were killed", line);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task Print_all_exitcodes_lists_every_rank()
    {
        var r = await CommandRun.SfrunAsync("-print-all-exitcodes", "-np", "3", Repo.TestProgram("crash"), "1", "exit3");
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("sfrun: rank 1: exit code 3", r.Err);
        Assert.Contains("sfrun: rank 0: killed by signal 9 (SIGKILL)", r.Err);
        Assert.Contains("sfrun: rank 2: killed by signal 9 (SIGKILL)", r.Err);
    }

    [Fact]
    public async Task Timeout_kills_a_hung_job_with_exit_code_255()
    {
        var tag = Leaks.NewTag();
        var r = await RunTagged(tag, "-timeout", "3", "-np", "2", Repo.TestProgram("sleeper"));
        Assert.Equal(255, r.ExitCode);
        Assert.Contains("timed out after 3 s", r.Err);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task MPIEXEC_TIMEOUT_from_the_environment_is_honoured()
    {
        var r = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "2", Repo.TestProgram("sleeper")],
            env: new Dictionary<string, string> { ["MPIEXEC_TIMEOUT"] = "2" });
        Assert.Equal(255, r.ExitCode);
        Assert.Contains("timed out", r.Err);
    }
}

/// <summary>A rank that cannot be started fails the job with the engine's error, and the ranks
/// already running are torn down.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class StartFailureTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(7)]
    public async Task A_rank_that_cannot_start_ends_the_job_and_the_started_ranks_die(int failingRank)
    {
        var tag = Leaks.NewTag();
        var r = await CommandRun.RunAsync(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-np", "8", Repo.TestProgram("sleeper")],
            env: new Dictionary<string, string> { ["SFRUN_INJECT_FAULT"] = $"rank-start:{failingRank}" });
        Assert.Equal(255, r.ExitCode);
        Assert.Contains($"sfrun: rank {failingRank}: could not start", r.Err);
        await Leaks.AssertNoneAsync(tag);
    }
}

/// <summary>A rank that speaks garbage on its PMI connection fails its job with a clear message;
/// sfrun itself stays up to tear the job down.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class ProtocolViolationTests
{
    [Fact]
    public async Task A_rank_sending_a_malformed_PMI_line_fails_the_job_with_255()
    {
        var tag = Leaks.NewTag();
        // Rank 1 starts properly on its inherited PMI_FD, then sends a line that is not PMI; rank 0 just waits.
        const string rank = """
            import os, socket, time
            if os.environ['PMI_RANK'] == '1':
                s = socket.socket(fileno=int(os.environ['PMI_FD']))
                s.sendall(b'cmd=init pmi_version=1 pmi_subversion=1\n')
                s.recv(200)
                s.sendall(b'this is not pmi\n')
            time.sleep(60)
            """;
        var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "2", "/usr/bin/python3", "-c", rank]);
        Assert.Equal(255, r.ExitCode);
        Assert.Contains("sfrun: rank 1 (pid ", r.Err);
        Assert.Contains("broke the PMI protocol: line does not start with cmd=", r.Err);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task SFRUN_LOG_writes_the_log_to_a_file()
    {
        var log = Path.Combine(Path.GetTempPath(), $"sftest-log-{Guid.NewGuid():N}.txt");
        try
        {
            var r = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "2", Repo.Example("hello")],
                env: new Dictionary<string, string> { ["SFRUN_LOG"] = log });
            Assert.Equal(0, r.ExitCode);
            Assert.Equal("", r.Err);
            var text = await File.ReadAllTextAsync(log);
            Assert.Contains("2 ranks started", text);
            Assert.Contains("torn down", text);
        }
        finally
        {
            File.Delete(log);
        }
    }
}
