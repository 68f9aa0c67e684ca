using System.Text.RegularExpressions;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>After a job — success, abort, crash — no rank, orphan, socket or temp file is left.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed partial class TeardownTests
{
    [GeneratedRegex(@"PMI server listening on [^ ]*:(\d+)")]
    private static partial Regex PmiPort();

    [Theory]
    [InlineData("hello")]
    [InlineData("abort")]
    [InlineData("crash")]
    public async Task No_PMI_port_is_opened_and_no_process_remains(string program)
    {
        var tag = Leaks.NewTag();
        var path = program == "hello" ? Repo.Example(program) : Repo.TestProgram(program);
        await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-v", "-np", "4", path]);
        await run.WriteStdinAsync([]);
        var r = await run.WaitAsync(CommandRun.DefaultBound);
        Assert.Equal(program == "hello", r.ExitCode == 0);
        // The process engine's ranks inherit PMI_FD: there is no PMI port to leave open.
        Assert.DoesNotMatch(PmiPort(), r.Err);
        await Leaks.AssertNoneAsync(tag);
        // Job files are named by the job id, "<sfrun pid>-<random>": none of this job's may remain
        // (other tests' jobs may be running in parallel, so only this job's names are checked).
        var jobPrefix = $"{run.Pid}-";
        var places = new[] { Path.GetTempPath(), "/dev/shm", Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR") }
            .Where(d => !string.IsNullOrEmpty(d) && Directory.Exists(d))
            .SelectMany(d => Directory.EnumerateFileSystemEntries(d!, "*sfrun*").Append(d!));
        var left = places.Where(Directory.Exists).SelectMany(d => Directory.EnumerateFileSystemEntries(d))
            .Where(e => Path.GetFileName(e).Contains(jobPrefix, StringComparison.Ordinal)).ToList();
        Assert.Empty(left);
    }

    [Fact]
    public async Task Children_that_ranks_started_are_killed_with_the_job()
    {
        var tag = Leaks.NewTag();
        // Rank 1 starts a background child that would outlive it, then fails.
        var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "2", "/bin/sh", "-c",
            "if [ $PMI_RANK = 1 ]; then sleep 300 & exit 5; else sleep 300; fi"]);
        Assert.Equal(5, r.ExitCode);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task A_stale_PMI_environment_from_an_outer_job_is_not_inherited()
    {
        var r = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "2", Repo.Example("hello")],
            env: new Dictionary<string, string> { ["PMI_FD"] = "99", ["PMI_RANK"] = "7", ["PMI_SIZE"] = "9" });
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["hello from rank 0 of 2", "hello from rank 1 of 2"], r.OutLines.Order(StringComparer.Ordinal));
    }
}
