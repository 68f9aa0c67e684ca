using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>Every mistake a user can make gets one clear line on stderr and a non-zero exit;
/// never a stack trace (that needs -v), never a hang.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class BadInputTests
{
    private static void AssertOneLineError(CommandResult r, int exitCode, string text)
    {
        Assert.Equal(exitCode, r.ExitCode);
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var line = Assert.Single(lines);
        Assert.StartsWith("sfrun: ", line);
        Assert.Contains(text, line);
        Assert.DoesNotContain("   at ", r.Err);
        Assert.Equal("", r.Out);
    }

    [Theory]
    [InlineData(new[] { "-bogus", "x" }, "unknown option -bogus")]
    [InlineData(new[] { "--frobnicate" }, "unknown option --frobnicate")]
    [InlineData(new[] { "-np" }, "option -np needs N")]
    [InlineData(new[] { "-np", "0", "/bin/true" }, "positive whole number")]
    [InlineData(new[] { "-np", "-3", "/bin/true" }, "positive whole number")]
    [InlineData(new[] { "-np", "many", "/bin/true" }, "positive whole number")]
    [InlineData(new[] { "-np", "2" }, "no program given")]
    [InlineData(new[] { "-np", "1", "/bin/true", ":" }, "':' must be followed")]
    [InlineData(new[] { "-timeout", "soon", "/bin/true" }, "-timeout needs")]
    public async Task Command_line_errors_exit_2(string[] args, string text) =>
        AssertOneLineError(await CommandRun.SfrunAsync(args), 2, text);

    [Fact]
    public async Task A_missing_program_exits_127()
    {
        AssertOneLineError(await CommandRun.SfrunAsync("-np", "2", "./no-such-program"), 127, "./no-such-program: no such file");
        AssertOneLineError(await CommandRun.SfrunAsync("-np", "2", "no-such-program-in-path"), 127, "command not found");
        AssertOneLineError(await CommandRun.SfrunAsync("-np", "2", "/tmp"), 127, "is a directory");
    }

    [Fact]
    public async Task A_program_that_is_not_executable_exits_127()
    {
        var file = Path.GetTempFileName();
        try
        {
            AssertOneLineError(await CommandRun.SfrunAsync("-np", "1", file), 127, "not executable");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task An_unwritable_output_pattern_fails_before_any_rank_starts()
    {
        AssertOneLineError(await CommandRun.SfrunAsync("-outfile-pattern", "/proc/no/such/dir/out.%r", "-np", "2", "/bin/echo", "x"),
            1, "-outfile-pattern: cannot write /proc/no/such/dir/out.0");
    }

    [Fact]
    public async Task A_missing_working_directory_is_reported()
    {
        AssertOneLineError(await CommandRun.SfrunAsync("-wdir", "/no/such/dir", "-np", "1", "/bin/true"), 1, "-wdir /no/such/dir: no such directory");
    }

    [Fact]
    public async Task An_unknown_or_unavailable_engine_is_reported()
    {
        AssertOneLineError(await CommandRun.SfrunAsync("--engine", "vmware", "-np", "1", "/bin/true"), 1, "unknown engine 'vmware'");
    }

    [Fact]
    public async Task Verbose_mode_shows_the_stack_trace()
    {
        var r = await CommandRun.SfrunAsync("-v", "-np", "1", "./no-such-program");
        Assert.Equal(127, r.ExitCode);
        Assert.Contains("   at ", r.Err);
    }

    [Fact]
    public async Task Help_and_version_exit_0_and_list_the_options()
    {
        var help = await CommandRun.SfrunAsync("--help");
        Assert.Equal(0, help.ExitCode);
        foreach (var option in new[] { "-np", "-genv", "-genvlist", "-env", "-x", "-wdir", "-l", "-outfile-pattern", "-errfile-pattern", "-print-all-exitcodes" })
            Assert.Contains(option, help.Out);
        var version = await CommandRun.SfrunAsync("--version");
        Assert.Equal(0, version.ExitCode);
        Assert.StartsWith("sfrun ", version.Out);
    }
}

/// <summary>sfrun --engines says which engines this host can run, and why.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class EngineDetectionTests
{
    [Fact]
    public async Task Engines_lists_every_engine_with_the_process_engine_usable_and_default()
    {
        var r = await CommandRun.SfrunAsync("--engines");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(3, r.OutLines.Length);
        Assert.Matches(@"^process\s+usable\s+\(default\) local processes, forked from a warm master", r.OutLines[0]);
        Assert.Matches(@"^qemu\s+(usable\s+VM clones of a warm template|unusable\s+qemu-system-x86_64 not found)", r.OutLines[1]);
        Assert.Matches(@"^xen\s+unusable\s+not dom0 of a running Xen.*; use --xen-host USER@DOM0 \(or XEN_HOST\)", r.OutLines[2]);
    }
}
