using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Dialects;

/// <summary>Pipes, terminals and signals, side by side with hydra where both can be compared: what
/// a user sees of <c>| head -1</c>, Ctrl-C, Ctrl-Z and <c>bg</c>, a closed terminal (SIGHUP), and
/// the exit code. Each bound is generous; only "it ended" is asserted, never how fast.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class TerminalTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>bash with every signal at its default: the test host ignores SIGPIPE, and a
    /// launcher started from it would inherit that.</summary>
    private static Task<CommandResult> Bash(string script) =>
        CommandRun.RunAsync("/usr/bin/env", ["--default-signal", "bash", "-c", script], bound: Bound);

    private static string Q(string s) => Pty.Quote(s);

    [Theory]
    [InlineData("")]
    [InlineData("--no-warm")]
    public async Task Head_of_endless_output_ends_the_job_as_SIGPIPE_ends_hydra(string mode)
    {
        const string script = "{0} -n 4 yes | head -1; echo \"status ${{PIPESTATUS[0]}}\"";
        var sfrun = await Bash(string.Format(script, Q(Repo.Sfrun) + " " + mode));
        var hydra = await Bash(string.Format(script, Q(Repo.Hydra)));
        Assert.Equal(["y", "status 141"], hydra.OutLines);
        Assert.Equal(hydra.OutLines, sfrun.OutLines);
        Assert.Equal("", sfrun.Err);
    }

    [Fact]
    public async Task Sfrun_is_killed_by_SIGPIPE_as_hydra_is_not_just_exiting_141()
    {
        // A parent's waitpid() tells the two apart: bash's `kill -l $?` shows the signal only for a kill.
        var r = await Bash($"{Q(Repo.Sfrun)} -n 2 yes | (read line; exit 0); s=${{PIPESTATUS[0]}}; "
            + $"{Q(Repo.Hydra)} -n 2 yes | (read line; exit 0); h=${{PIPESTATUS[0]}}; echo $s $h");
        Assert.Equal("141 141", r.Out.Trim());
    }

    /// <summary>sfrun is started as `sfrun ... &amp;` in a script is: SIGINT and SIGQUIT ignored; .NET
    /// ignores SIGPIPE in sfrun itself. None of that reaches a rank, warm or cold.</summary>
    [Theory]
    [InlineData("")]
    [InlineData("--no-warm")]
    public async Task Ranks_start_with_default_signal_dispositions_and_an_empty_mask(string mode)
    {
        var r = await Bash($"trap '' INT QUIT; {Q(Repo.Sfrun)} {mode} -n 2 grep -E '^Sig(Ign|Blk)' /proc/self/status; "
            + $"{Q(Repo.Sfrun)} {mode} -n 1 sh -c 'yes | head -1'");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["SigBlk:\t0000000000000000", "SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000",
            "SigIgn:\t0000000000000000", "y"], r.OutLines.Order(StringComparer.Ordinal));
        Assert.DoesNotContain("Broken pipe", r.Err);
    }

    /// <summary>A closed terminal: MPICH and UCX ranks catch SIGHUP and carry on, and hydra, killed by
    /// it, takes its job along. sfrun forwards it, then kills what still runs after a short grace.</summary>
    [Theory]
    [InlineData("HUP", 129)]
    [InlineData("TERM", 143)]
    public async Task A_job_whose_ranks_catch_SIGHUP_or_SIGTERM_still_ends(string signal, int status)
    {
        var dir = Directory.CreateTempSubdirectory("sf-hup-");
        try
        {
            // Each rank says it is ready in a file (stdout is the test's pipe), then catches the signal.
            string Run(string launcher) => $"{launcher} -n 2 sh -c \"trap 'echo caught' {signal}; touch {dir.FullName}/ready.\\$PMI_RANK; "
                + $"while :; do sleep 0.1; done\" & p=$!; "
                + $"for i in $(seq 300); do [ -e {dir.FullName}/ready.0 ] && [ -e {dir.FullName}/ready.1 ] && break; sleep 0.1; done; "
                + $"rm -f {dir.FullName}/ready.*; kill -{signal} $p; wait $p; echo \"status $?\"";
            var r = await Bash(Run(Q(Repo.Sfrun)));
            Assert.Equal(2, r.OutLines.Count(l => l == "caught"));
            Assert.Equal($"status {status}", r.OutLines[^1]);
            if (signal == "HUP")
            {
                var hydra = await Bash(Run(Q(Repo.Hydra)));
                Assert.Equal(r.OutLines[^1], hydra.OutLines[^1]);
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private const string CatchInt = "trap 'echo caught-INT' INT; echo ready; while :; do sleep 0.1; done";

    /// <summary>The first Ctrl-C is the ranks' (these catch it and go on), the second ends the job —
    /// as with hydra. Warm ranks too: neither they nor their master are in the terminal's foreground
    /// process group, so the terminal's SIGINT reaches only sfrun.</summary>
    [Theory]
    [InlineData("sfrun", "")]
    [InlineData("sfrun", "--no-warm")]
    [InlineData("hydra", "")]
    public async Task Ctrl_C_is_forwarded_first_and_ends_the_job_second(string launcher, string mode)
    {
        var command = launcher == "hydra" ? Q(Repo.Hydra) : $"{Q(Repo.Sfrun)} {mode}";
        var r = await Pty.RunAsync(@"expect:\$ ", $"send:{command} -n 2 sh -c \"{CatchInt}\"\n",
            @"expect:ready[\s\S]*ready", "send:\\x03", @"expect:caught-INT[\s\S]*caught-INT@20", "sleep:1",
            "send:echo still-here\n", "sleep:1", "send:\\x03", @"expect:\n\$ @20", "send:echo status=$?\n", @"expect:status=\d+");
        Assert.True(r.Ok, $"{r.Failed} did not happen:\n{r.Transcript}");
        // Typed after the first Ctrl-C, the line went to the job's stdin: no shell was there to run it.
        Assert.DoesNotMatch(@"(?m)^still-here\r?$", r.Transcript);
        if (launcher == "sfrun")
            Assert.Contains("status=130", r.Transcript);
    }

    /// <summary>Ctrl-Z stops the launcher; <c>bg</c> lets it run on in the background, where it must
    /// not read the terminal (that would stop it again: "Stopped (tty input)").</summary>
    [Theory]
    [InlineData("sfrun")]
    [InlineData("hydra")]
    public async Task Ctrl_Z_then_bg_carries_on_in_the_background(string launcher)
    {
        var command = launcher == "hydra" ? Q(Repo.Hydra) : Q(Repo.Sfrun);
        var r = await Pty.RunAsync(@"expect:\$ ",
            $"send:{command} -n 1 sh -c 'echo ready; for i in $(seq 30); do sleep 0.1; done; echo done-ticking'\n",
            "expect:ready@20", "send:\\x1a", "expect:Stopped@10", "send:bg\n", @"expect:\$ @10",
            "expect:done-ticking@30", "sleep:0.5", "send:wait %1; echo status=$?\n", @"expect:status=\d+@20");
        Assert.True(r.Ok, $"{r.Failed} did not happen:\n{r.Transcript}");
        Assert.DoesNotContain("tty input", r.Transcript);
        Assert.Contains("status=0", r.Transcript);
    }

    /// <summary>One rule for both dialects, hydra's: a rank killed by signal s makes the job exit s
    /// (mpirun.openmpi would say 128 + s); an exit code c, c.</summary>
    [Theory]
    [InlineData("segv", 11)]
    [InlineData("kill9", 9)]
    [InlineData("exit3", 3)]
    public async Task Exit_codes_follow_hydra_for_both_dialects(string how, int code)
    {
        var crash = Repo.TestProgram("crash");
        var hydra = await Dialect.Hydra("-n", "2", crash, "1", how);
        var sfrun = await Dialect.Sfrun("-n", "2", crash, "1", how);
        var asMpirun = await Dialect.Sfrun("--oversubscribe", "-np", "2", crash, "1", how);
        Assert.Equal(code, hydra.ExitCode);
        Assert.Equal(code, sfrun.ExitCode);
        Assert.Equal(code, asMpirun.ExitCode);
    }
}
