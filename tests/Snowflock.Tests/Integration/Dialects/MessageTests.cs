using System.Text.RegularExpressions;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Dialects;

/// <summary>Issue #14, messages: every file error a user can meet is in words (NativeAOT strips
/// .NET's resource strings, which left keys such as IO_FileNotFound_FileName), -n twice is an
/// error, and a program in the working directory is found without ./ as Open MPI finds it.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class MessageTests
{
    private static readonly string Missing = "/sfrun-no-such-dir-" + Guid.NewGuid().ToString("N");

    private static void InWords(CommandResult r, string says)
    {
        Assert.Contains(says, r.Err);
        Assert.DoesNotMatch(new Regex(@"\b[A-Za-z]+_[A-Z][A-Za-z]*_[A-Z][A-Za-z]*\b"), r.Err);
        Assert.Single(r.Err.Trim().Split('\n'));
    }

    [Fact]
    public async Task Host_file_errors_are_in_words()
    {
        InWords(await Dialect.Sfrun("-f", Missing + "/hosts", "-n", "1", "true"), "no such file or directory");
        InWords(await Dialect.Sfrun("-f", "/", "-n", "1", "true"), "host file /: is a directory");
    }

    [Fact]
    public async Task Configfile_and_appfile_errors_are_in_words()
    {
        var r = await Dialect.Sfrun("-configfile", Missing);
        Assert.Equal(2, r.ExitCode);
        InWords(r, "no such file or directory");
        InWords(await Dialect.Sfrun("--app", "/"), "is a directory");
    }

    [Fact]
    public async Task Output_pattern_errors_are_in_words()
    {
        var r = await Dialect.Sfrun("-outfile-pattern", Missing + "/out.%r", "-n", "1", "true");
        Assert.Equal(1, r.ExitCode);
        InWords(r, "a folder on the way is missing");
    }

    [Fact]
    public async Task An_unwritable_timeline_is_said_before_the_job()
    {
        var r = await Dialect.Sfrun("--timeline", Missing + "/t.svg", "-n", "1", "true");
        Assert.Equal(1, r.ExitCode);
        InWords(r, "--timeline");
    }

    [Fact]
    public async Task An_unwritable_SFRUN_LOG_is_said_and_the_job_runs()
    {
        var r = await Dialect.Sfrun(new Dictionary<string, string> { ["SFRUN_LOG"] = Missing + "/log" }, "-n", "1", "echo", "ran");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("ran\n", r.Out);
        InWords(r, "SFRUN_LOG=");
    }

    [Fact]
    public async Task Ranks_given_twice_are_an_error()
    {
        var r = await Dialect.Sfrun("-n", "2", "-n", "3", "true");
        Assert.Equal(2, r.ExitCode);
        InWords(r, "given twice");
    }

    [Fact]
    public async Task A_program_in_the_working_directory_is_found_without_dot_slash_as_mpirun_finds_it()
    {
        var dir = Directory.CreateTempSubdirectory("sfrun-cwd-");
        try
        {
            File.Copy(Dialect.OpenMpiExample("hello"), Path.Combine(dir.FullName, "hello_here"));
            var ours = await CommandRun.RunAsync(Repo.Sfrun, ["-n", "2", "hello_here"], workingDirectory: dir.FullName);
            var theirs = await CommandRun.RunAsync(Dialect.OpenMpiRun, ["--oversubscribe", "-n", "2", "hello_here"], env: Dialect.AsRoot,
                workingDirectory: dir.FullName);
            Assert.True(ours.ExitCode == 0, ours.Err);
            Assert.Equal(Dialect.Sorted(theirs), Dialect.Sorted(ours));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
