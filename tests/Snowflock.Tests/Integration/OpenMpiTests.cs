using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>The test programs (abort, crash) built with Open MPI's wrapper, once per test class;
/// the examples come built for both MPIs from scripts/setup.</summary>
public sealed class OpenMpiPrograms : IAsyncLifetime
{
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "sfrun-ompi-" + Guid.NewGuid().ToString("N"));

    public string this[string name] => Path.Combine(Dir, name);

    /// <summary>Rank 0 prints, after MPI_Init, the variables sfrun adds for Open MPI; with argument
    /// "abort" it then calls MPI_Abort(5) while the others wait in a barrier.</summary>
    private const string EnvProbe = """
        #include <mpi.h>
        #include <stdio.h>
        #include <stdlib.h>
        int main(int argc, char **argv)
        {
            int rank;
            MPI_Init(&argc, &argv);
            MPI_Comm_rank(MPI_COMM_WORLD, &rank);
            const char *names[] = { "FLUX_JOB_ID", "FLUX_PMI_LIBRARY_PATH", "OMPI_MCA_mpi_oversubscribe",
                "OMPI_MCA_orte_tmpdir_base", "OMPI_MCA_btl_vader_backing_directory" };
            for (int i = 0; rank == 0 && i < 5; i++)
                printf("%s=%s\n", names[i], getenv(names[i]) ? getenv(names[i]) : "(unset)");
            fflush(stdout);
            if (argc > 1 && rank == 0)
                MPI_Abort(MPI_COMM_WORLD, 5);
            MPI_Barrier(MPI_COMM_WORLD);
            MPI_Finalize();
            return 0;
        }
        """;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Dir);
        await File.WriteAllTextAsync(this["envprobe.c"], EnvProbe);
        foreach (var (name, source) in new[] { ("abort", Path.Combine(Repo.Root, "tests", "programs", "abort.c")),
                     ("crash", Path.Combine(Repo.Root, "tests", "programs", "crash.c")), ("envprobe", this["envprobe.c"]) })
        {
            var r = await CommandRun.RunAsync("mpicc.openmpi", ["-O2", "-Wall", "-Wextra", "-Werror", "-o", this[name], source],
                bound: TimeSpan.FromSeconds(60));
            Assert.True(r.ExitCode == 0, $"mpicc.openmpi {source} failed (is libopenmpi-dev installed? run scripts/setup): {r.Err}");
        }
    }

    public Task DisposeAsync()
    {
        Directory.Delete(Dir, recursive: true);
        return Task.CompletedTask;
    }
}

/// <summary>Open MPI 4.1 programs, unchanged, under sfrun: the same examples built against both MPIs
/// give the same output, and abort and crashes end the job as they do for MPICH.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class OpenMpiTests(OpenMpiPrograms programs) : IClassFixture<OpenMpiPrograms>
{
    public static TheoryData<int> RankCounts => new() { 1, 2, 8 };

    private static string OpenMpiExample(string name)
    {
        var path = Path.Combine(Repo.Root, "examples", "build-openmpi", name);
        return File.Exists(path) ? path : throw new InvalidOperationException($"{path} is not built: run scripts/setup (needs mpicc.openmpi)");
    }

    private static async Task<(CommandResult OpenMpi, CommandResult Mpich)> RunBoth(int np, string example, params string[] args)
    {
        var tag = Leaks.NewTag();
        var ompi = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", np.ToString(), OpenMpiExample(example), .. args]);
        await Leaks.AssertNoneAsync(tag);
        var mpich = await CommandRun.SfrunAsync(["-np", np.ToString(), Repo.Example(example), .. args]);
        Assert.True(ompi.ExitCode == 0, $"Open MPI {example} at -np {np} exited {ompi.ExitCode}: {ompi.Err}");
        Assert.True(mpich.ExitCode == 0, $"MPICH {example} at -np {np} exited {mpich.ExitCode}: {mpich.Err}");
        return (ompi, mpich);
    }

    [Theory]
    [MemberData(nameof(RankCounts))]
    public async Task Cpi_output_matches_the_MPICH_build(int np)
    {
        var (ompi, mpich) = await RunBoth(np, "cpi", "100000");
        Assert.Equal(mpich.Out, ompi.Out);
        Assert.Contains($"({np} processes, 100000 intervals)", ompi.Out);
    }

    [Theory]
    [MemberData(nameof(RankCounts))]
    public async Task Ring_output_matches_the_MPICH_build(int np)
    {
        var (ompi, mpich) = await RunBoth(np, "ring", "4");
        Assert.Equal(mpich.Out, ompi.Out);
        Assert.Equal($"ring: {np} ranks, 4 laps, token {(long)np * (np - 1) / 2 * 4} ok\n", ompi.Out);
    }

    [Theory]
    [MemberData(nameof(RankCounts))]
    public async Task Every_rank_reports_its_rank_and_the_job_size(int np)
    {
        var (ompi, mpich) = await RunBoth(np, "hello");
        var expected = Enumerable.Range(0, np).Select(r => $"hello from rank {r} of {np}").Order(StringComparer.Ordinal);
        Assert.Equal(expected, ompi.OutLines.Order(StringComparer.Ordinal));
        Assert.Equal(mpich.OutLines.Order(StringComparer.Ordinal), ompi.OutLines.Order(StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(RankCounts))]
    public async Task Allreduce_checks_pass_and_stdout_matches_the_MPICH_build(int np)
    {
        var (ompi, mpich) = await RunBoth(np, "allreduce", "3");
        Assert.Equal(mpich.Out, ompi.Out);
        Assert.Equal(6, ompi.OutLines.Count(l => l.EndsWith(": ok", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task MPI_Abort_exits_with_its_code_and_kills_the_other_ranks()
    {
        var tag = Leaks.NewTag();
        var ompi = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "4", programs["abort"], "1", "7"]);
        var mpich = await CommandRun.SfrunAsync("-np", "4", Repo.TestProgram("abort"), "1", "7");
        Assert.Equal(7, ompi.ExitCode);
        Assert.Equal(mpich.ExitCode, ompi.ExitCode);
        var line = Assert.Single(ompi.Err.Split('\n'), l => l.StartsWith("sfrun: ", StringComparison.Ordinal));
        Assert.StartsWith("sfrun: rank 1 (pid ", line);
        Assert.EndsWith("called MPI_Abort with exit code 7; the other ranks were killed", line);
        await Leaks.AssertNoneAsync(tag);
    }

    [Theory]
    [InlineData("segv", 11, "killed by signal 11 (SIGSEGV)")]
    [InlineData("kill9", 9, "killed by signal 9 (SIGKILL)")]
    [InlineData("exit3", 3, "exited with code 3 before calling MPI_Finalize")]
    [InlineData("exit0", 1, "exited with code 0 before calling MPI_Finalize")]
    public async Task A_failing_rank_ends_the_job_as_for_MPICH(string how, int exitCode, string report)
    {
        var tag = Leaks.NewTag();
        var ompi = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "4", programs["crash"], "2", how]);
        var mpich = await CommandRun.SfrunAsync("-np", "4", Repo.TestProgram("crash"), "2", how);
        Assert.Equal(exitCode, ompi.ExitCode);
        Assert.Equal(mpich.ExitCode, ompi.ExitCode);
        var line = Assert.Single(ompi.Err.Split('\n'), l => l.StartsWith("sfrun: ", StringComparison.Ordinal));
        Assert.Contains("rank 2 (pid ", line);
        Assert.Contains(report, line);
        Assert.Contains("the other ranks were killed", line);
        await Leaks.AssertNoneAsync(tag);
    }

    private static Dictionary<string, string> Probed(CommandResult r) =>
        r.OutLines.Select(l => l.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    public async Task Open_MPI_ranks_get_a_flux_job_id_the_library_and_oversubscription_as_mpirun_sets_it(int np)
    {
        var r = await CommandRun.SfrunAsync("-np", np.ToString(), programs["envprobe"]);
        Assert.True(r.ExitCode == 0, r.Err);
        var env = Probed(r);
        Assert.True(uint.TryParse(env["FLUX_JOB_ID"], out var id) && (id & 0xffff) is > 0 and < 0x8000, env["FLUX_JOB_ID"]);
        Assert.Equal(Path.Combine(Repo.Root, "native", "build", "libsfpmi.so"), env["FLUX_PMI_LIBRARY_PATH"]);
        Assert.Equal(np > Environment.ProcessorCount ? "1" : "(unset)", env["OMPI_MCA_mpi_oversubscribe"]);
    }

    [Theory]
    [InlineData("")]
    [InlineData("abort")]
    public async Task Open_MPI_session_files_are_removed_when_the_job_ends(string how)
    {
        var r = await CommandRun.SfrunAsync(["-np", "4", programs["envprobe"], .. how.Length > 0 ? new[] { how } : []]);
        Assert.Equal(how == "abort" ? 5 : 0, r.ExitCode);
        var env = Probed(r);
        var scratch = env["OMPI_MCA_orte_tmpdir_base"];
        Assert.StartsWith("/dev/shm/sfrun-", scratch);
        Assert.Equal(scratch, env["OMPI_MCA_btl_vader_backing_directory"]);
        Assert.False(Directory.Exists(scratch), $"{scratch} left behind");
    }

    [Fact]
    public async Task Variables_the_user_set_are_not_overridden()
    {
        var r = await CommandRun.SfrunAsync("-genv", "FLUX_JOB_ID", "4242", "-genv", "OMPI_MCA_mpi_oversubscribe", "0",
            "-np", "2", programs["envprobe"]);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal("4242", Probed(r)["FLUX_JOB_ID"]);
        Assert.Equal("0", Probed(r)["OMPI_MCA_mpi_oversubscribe"]);
    }

    [Fact]
    public async Task A_user_choice_of_PMI_library_is_not_overridden()
    {
        // A library that does not exist: Open MPI's flux component cannot load it and MPI_Init fails,
        // which shows that sfrun passed the user's value through instead of its own.
        var r = await CommandRun.SfrunAsync("-genv", "FLUX_PMI_LIBRARY_PATH", "/nonexistent/libpmi.so", "-np", "2", OpenMpiExample("hello"));
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("MPI_Init", r.Err);
        Assert.DoesNotContain("hello from rank", r.Out);
    }
}
