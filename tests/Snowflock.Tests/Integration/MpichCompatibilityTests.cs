using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>Real MPICH programs through sfrun give the same output and exit code as through
/// MPICH's own mpiexec.hydra, at the rank counts users run on one host.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class MpichCompatibilityTests
{
    public static TheoryData<int> RankCounts => new() { 1, 2, 8, 32 };

    [Theory]
    [MemberData(nameof(RankCounts))]
    public async Task Cpi_output_matches_hydra(int np)
    {
        var tag = Leaks.NewTag();
        var sf = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", np.ToString(), Repo.Example("cpi"), "100000"]);
        var hy = await CommandRun.RunAsync(Repo.Hydra, ["-np", np.ToString(), Repo.Example("cpi"), "100000"]);
        Assert.True(hy.ExitCode == 0, $"mpiexec.hydra itself failed (exit {hy.ExitCode}): {hy.Err}");
        Assert.Equal(0, hy.ExitCode);
        Assert.True(sf.ExitCode == 0, sf.Err);
        Assert.Equal(hy.Out, sf.Out);
        Assert.Contains($"({np} processes, 100000 intervals)", sf.Out);
        await Leaks.AssertNoneAsync(tag);
    }

    [Theory]
    [MemberData(nameof(RankCounts))]
    public async Task Ring_passes_its_checks_like_under_hydra(int np)
    {
        var sf = await CommandRun.SfrunAsync("-np", np.ToString(), Repo.Example("ring"), "4");
        var hy = await CommandRun.RunAsync(Repo.Hydra, ["-np", np.ToString(), Repo.Example("ring"), "4"]);
        Assert.True(hy.ExitCode == 0, $"mpiexec.hydra itself failed (exit {hy.ExitCode}): {hy.Err}");
        Assert.True(sf.ExitCode == 0, sf.Err);
        Assert.Equal(hy.Out, sf.Out);
        Assert.Equal($"ring: {np} ranks, 4 laps, token {(long)np * (np - 1) / 2 * 4} ok\n", sf.Out);
    }

    [Theory]
    [MemberData(nameof(RankCounts))]
    public async Task Every_rank_reports_its_rank_and_the_job_size(int np)
    {
        var sf = await CommandRun.SfrunAsync("-np", np.ToString(), Repo.Example("hello"));
        var hy = await CommandRun.RunAsync(Repo.Hydra, ["-np", np.ToString(), Repo.Example("hello")]);
        Assert.True(hy.ExitCode == 0, $"mpiexec.hydra itself failed (exit {hy.ExitCode}): {hy.Err}");
        Assert.True(sf.ExitCode == 0, sf.Err);
        var expected = Enumerable.Range(0, np).Select(r => $"hello from rank {r} of {np}").ToArray();
        Assert.Equal(expected.Order(StringComparer.Ordinal), sf.OutLines.Order(StringComparer.Ordinal));
        Assert.Equal(hy.OutLines.Order(StringComparer.Ordinal), sf.OutLines.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Allreduce_benchmark_checks_pass_and_stdout_matches_hydra()
    {
        var sf = await CommandRun.SfrunAsync("-np", "4", Repo.Example("allreduce"), "3");
        var hy = await CommandRun.RunAsync(Repo.Hydra, ["-np", "4", Repo.Example("allreduce"), "3"]);
        Assert.True(hy.ExitCode == 0, $"mpiexec.hydra itself failed (exit {hy.ExitCode}): {hy.Err}");
        Assert.True(sf.ExitCode == 0, sf.Err);
        Assert.Equal(hy.Out, sf.Out);
        Assert.Equal(6, sf.OutLines.Count(l => l.EndsWith(": ok", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Tagged_output_prefixes_every_line_with_its_rank_like_hydra()
    {
        var sf = await CommandRun.SfrunAsync("-l", "-np", "4", Repo.Example("hello"));
        var hy = await CommandRun.RunAsync(Repo.Hydra, ["-l", "-np", "4", Repo.Example("hello")]);
        Assert.True(hy.ExitCode == 0, $"mpiexec.hydra itself failed (exit {hy.ExitCode}): {hy.Err}");
        Assert.Equal(0, sf.ExitCode);
        Assert.Equal(hy.OutLines.Order(StringComparer.Ordinal), sf.OutLines.Order(StringComparer.Ordinal));
        Assert.All(sf.OutLines, l => Assert.Matches(@"^\[(\d+)\] hello from rank \1 of 4$", l));
        Assert.Contains("[3] hello from rank 3 of 4", sf.OutLines);
    }

    [Fact]
    public async Task Lines_written_in_pieces_by_many_ranks_come_out_whole()
    {
        var sf = await CommandRun.SfrunAsync("-np", "8", Repo.TestProgram("partial_lines"));
        Assert.Equal(0, sf.ExitCode);
        var expected = Enumerable.Range(0, 8).Select(r => $"rank {r} says: the quick brown fox jumps over the lazy dog").Order(StringComparer.Ordinal);
        Assert.Equal(expected, sf.OutLines.Order(StringComparer.Ordinal));
        Assert.Equal(expected.Select(l => "err " + l), sf.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_program_that_is_not_MPI_just_runs_N_times()
    {
        var r = await CommandRun.SfrunAsync("-np", "3", "/bin/echo", "not", "mpi");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["not mpi", "not mpi", "not mpi"], r.OutLines);
        var f = await CommandRun.SfrunAsync("-np", "2", "/bin/false");
        Assert.Equal(1, f.ExitCode);
    }
}
