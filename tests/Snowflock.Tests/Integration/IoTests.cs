using System.Text;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>stdin to rank 0 only, output byte for byte, per-rank output files, environment and
/// working directory options.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class IoTests
{
    [Fact]
    public async Task Stdin_goes_to_rank_0_only_and_EOF_reaches_it()
    {
        var input = Encoding.ASCII.GetBytes("line one\nline two\n");
        var r = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "3", Repo.TestProgram("echo_stdin")], stdin: input);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("line one\nline two\n", r.Out);
        Assert.Contains($"rank 0 read {input.Length} bytes", r.Err);
        Assert.Contains("rank 1 read 0 bytes", r.Err);
        Assert.Contains("rank 2 read 0 bytes", r.Err);
    }

    [Fact]
    public async Task Binary_stdin_and_stdout_pass_byte_for_byte()
    {
        var data = new byte[3 * 1024 * 1024 + 17];
        new Random(42).NextBytes(data);
        var r = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "1", "/bin/cat"], stdin: data);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(data, r.Stdout);
    }

    [Fact]
    public async Task A_1MiB_line_without_newline_and_unicode_arrive_intact()
    {
        var dir = Directory.CreateTempSubdirectory("sftest-io-");
        try
        {
            var big = Path.Combine(dir.FullName, "big");
            var text = "ünïcødé ✓ 雪 " + new string('x', 1024 * 1024);
            await File.WriteAllTextAsync(big, text);
            var r = await CommandRun.SfrunAsync("-np", "2", "/bin/cat", big);
            Assert.Equal(0, r.ExitCode);
            Assert.Equal(text + text, r.Out);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public async Task Output_patterns_write_one_file_per_rank()
    {
        var dir = Directory.CreateTempSubdirectory("sftest-out-");
        try
        {
            var r = await CommandRun.SfrunAsync("-outfile-pattern", Path.Combine(dir.FullName, "out.%r"),
                "-errfile-pattern", Path.Combine(dir.FullName, "err.%r"), "-np", "3", Repo.TestProgram("partial_lines"));
            Assert.Equal(0, r.ExitCode);
            Assert.Equal("", r.Out);
            for (var rank = 0; rank < 3; rank++)
            {
                var line = $"rank {rank} says: the quick brown fox jumps over the lazy dog\n";
                Assert.Equal(line, await File.ReadAllTextAsync(Path.Combine(dir.FullName, $"out.{rank}")));
                Assert.Equal("err " + line, await File.ReadAllTextAsync(Path.Combine(dir.FullName, $"err.{rank}")));
            }
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public async Task Environment_options_reach_the_ranks()
    {
        var r = await CommandRun.RunAsync(Repo.Sfrun,
            ["-genv", "SF_A", "with space", "-x", "SF_B=b", "-x", "SF_FROM_PARENT", "-np", "2", "/bin/sh", "-c",
             "echo \"$PMI_RANK/$PMI_SIZE [$SF_A] [$SF_B] [$SF_FROM_PARENT]\""],
            env: new Dictionary<string, string> { ["SF_FROM_PARENT"] = "inherited" });
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["0/2 [with space] [b] [inherited]", "1/2 [with space] [b] [inherited]"], r.OutLines.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Genvnone_passes_only_explicit_variables_and_genvlist_only_the_listed()
    {
        var env = new Dictionary<string, string> { ["SF_KEEP"] = "k", ["SF_DROP"] = "d" };
        var none = await CommandRun.RunAsync(Repo.Sfrun, ["-genvnone", "-genv", "SF_SET", "s", "-np", "1", "/usr/bin/env"], env: env);
        Assert.Equal(0, none.ExitCode);
        Assert.Contains("SF_SET=s", none.OutLines);
        Assert.DoesNotContain(none.OutLines, l => l.StartsWith("SF_KEEP=", StringComparison.Ordinal) || l.StartsWith("SF_DROP=", StringComparison.Ordinal));
        Assert.Contains(none.OutLines, l => l.StartsWith("PMI_FD=", StringComparison.Ordinal));

        var listed = await CommandRun.RunAsync(Repo.Sfrun, ["-genvlist", "SF_KEEP,PATH", "-np", "1", "/usr/bin/env"], env: env);
        Assert.Contains("SF_KEEP=k", listed.OutLines);
        Assert.DoesNotContain(listed.OutLines, l => l.StartsWith("SF_DROP=", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Wdir_sets_the_ranks_working_directory_and_relative_programs_resolve_there()
    {
        var r = await CommandRun.SfrunAsync("-wdir", "/tmp", "-np", "2", "/bin/pwd");
        Assert.Equal(["/tmp", "/tmp"], r.OutLines);
        var rel = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "1", "./build/hello"], workingDirectory: Path.Combine(Repo.Root, "examples"));
        Assert.Equal(0, rel.ExitCode);
        Assert.Equal("hello from rank 0 of 1\n", rel.Out);
    }

    [Fact]
    public async Task Program_arguments_with_spaces_quotes_and_dashes_are_passed_unchanged()
    {
        string[] args = ["a b", "\"q\"", "'s'", "-np", "5", "--", ":x", "ü"];
        var r = await CommandRun.SfrunAsync(["-np", "1", "/usr/bin/printf", "[%s]\\n", .. args]);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(args.Select(a => $"[{a}]"), r.OutLines);
    }

    [Fact]
    public async Task MPMD_blocks_share_one_world()
    {
        var r = await CommandRun.SfrunAsync("-np", "1", Repo.Example("hello"), ":", "-np", "2", Repo.Example("hello"));
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["hello from rank 0 of 3", "hello from rank 1 of 3", "hello from rank 2 of 3"], r.OutLines.Order(StringComparer.Ordinal));
    }
}
