using System.Text.RegularExpressions;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>Load, soak, strangers on the PMI port, awkward programs and terminals.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed partial class ReliabilityTests
{
    [GeneratedRegex(@"PMI server listening on [^ ]*:(\d+)")]
    private static partial Regex PmiPort();

    [Fact]
    public async Task Sixty_four_ranks_on_two_cores_all_report()
    {
        var tag = Leaks.NewTag();
        var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "64", Repo.Example("hello")]);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(Enumerable.Range(0, 64).Select(i => $"hello from rank {i} of 64").Order(StringComparer.Ordinal),
            r.OutLines.Order(StringComparer.Ordinal));
        await Leaks.AssertNoneAsync(tag);
    }

    /// <summary>1,000 back-to-back short jobs (bounded: the loop also stops after 5 minutes) leave
    /// no process behind, and every one of them succeeds.</summary>
    [Fact]
    public async Task A_thousand_short_jobs_in_a_row_all_succeed_and_leave_nothing()
    {
        var tag = Leaks.NewTag();
        var deadline = DateTime.UtcNow.AddMinutes(5);
        var done = 0;
        for (; done < 1000 && DateTime.UtcNow < deadline; done++)
        {
            var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "2", "/bin/true"]);
            Assert.True(r.ExitCode == 0, $"job {done}: exit {r.ExitCode}: {r.Err}");
        }
        Assert.Equal(1000, done);
        await Leaks.AssertNoneAsync(tag);
    }

    /// <summary>Ranks of the process engine reach the PMI server through an inherited socket
    /// pair (PMI_FD), so no port exists for a stranger to dial; the attacks themselves are in
    /// Security/PmiAttackTests.</summary>
    [Fact]
    public async Task A_process_engine_job_has_no_PMI_port_for_a_stranger_to_dial()
    {
        var tag = Leaks.NewTag();
        var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-v", "-np", "2", "/bin/sh", "-c",
            "echo \"fd=${PMI_FD:+set} port=${PMI_PORT:-none} id=${PMI_ID:-none}\""]);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["fd=set port=none id=none", "fd=set port=none id=none"], r.OutLines);
        Assert.DoesNotMatch(PmiPort(), r.Err);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task Running_in_the_background_of_an_interactive_shell_never_stops_on_the_terminal()
    {
        // bash with job control in a pseudo-terminal: a background job that reads the terminal
        // is stopped by SIGTTIN (MPICH issue #1029). sfrun must not read it, so rank 0 sees EOF.
        var r = await CommandRun.RunAsync("/usr/bin/script", ["-qec",
            $"bash --norc -i -c 'set -m; {Repo.Sfrun} -np 2 /bin/cat & wait %1; echo sfrun-exit=$?'", "/dev/null"],
            bound: TimeSpan.FromSeconds(60));
        Assert.Contains("sfrun-exit=0", r.Out);
    }

    [Fact]
    public async Task A_program_whose_path_has_spaces_and_quotes_runs()
    {
        var dir = Directory.CreateTempSubdirectory("sftest-path-");
        try
        {
            var sub = Directory.CreateDirectory(Path.Combine(dir.FullName, "my \"quoted\" 'dir' ünï"));
            var program = Path.Combine(sub.FullName, "hello world");
            File.Copy(Repo.Example("hello"), program);
            File.SetUnixFileMode(program, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.UserWrite);
            var r = await CommandRun.SfrunAsync("-np", "2", program);
            Assert.True(r.ExitCode == 0, r.Err);
            Assert.Equal(["hello from rank 0 of 2", "hello from rank 1 of 2"], r.OutLines.Order(StringComparer.Ordinal));
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
