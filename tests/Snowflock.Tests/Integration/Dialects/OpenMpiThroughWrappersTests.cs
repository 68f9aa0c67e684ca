using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Dialects;

/// <summary>
/// Issue #14, "wrong results, silently": an Open MPI program started through something else
/// (mpi4py under python3, env, nice, a script that execs it) shows sfrun no MPI in its ELF, yet
/// every rank must join one MPI_COMM_WORLD, as under mpirun; and a rank that does become a
/// singleton must fail the job loudly, never compute alone.
/// </summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class OpenMpiThroughWrappersTests
{
    private const string Mpi4pyHello = "import sys; from mpi4py import MPI; c = MPI.COMM_WORLD; sys.stdout.write(f'{c.Get_rank()} {c.Get_size()}\\n')";

    [Fact]
    public async Task Mpi4py_ranks_form_one_world_as_under_mpirun()
    {
        if (!Dialect.HasMpi4py)
            throw new InvalidOperationException("python3-mpi4py is not installed: run scripts/setup");
        var ours = await Dialect.Sfrun("-n", "3", Dialect.Python, "-c", Mpi4pyHello);
        var theirs = await Dialect.MpirunOpenMpi("-n", "3", Dialect.Python, "-c", Mpi4pyHello);
        Assert.True(ours.ExitCode == 0, ours.Err);
        Assert.Equal(["0 3", "1 3", "2 3"], Dialect.Sorted(ours));
        Assert.Equal(Dialect.Sorted(theirs), Dialect.Sorted(ours));
    }

    [Theory]
    [InlineData("env")]
    [InlineData("nice")]
    [InlineData("script")]
    public async Task An_Open_MPI_program_started_through_a_wrapper_joins_the_job(string wrapper)
    {
        var script = wrapper == "script" ? Dialect.ExecWrapper() : null;
        try
        {
            var r = await Dialect.Sfrun("-n", "2", script ?? wrapper, Dialect.OpenMpiExample("hello"));
            Assert.True(r.ExitCode == 0, r.Err);
            Assert.Equal(["hello from rank 0 of 2", "hello from rank 1 of 2"], Dialect.Sorted(r));
        }
        finally
        {
            if (script is not null)
                File.Delete(script);
        }
    }

    [Fact]
    public async Task An_MPICH_program_through_a_script_still_joins_the_job()
    {
        var script = Dialect.ExecWrapper();
        try
        {
            var r = await Dialect.Sfrun("-n", "2", script, Repo.Example("hello"));
            Assert.True(r.ExitCode == 0, r.Err);
            Assert.Equal(["hello from rank 0 of 2", "hello from rank 1 of 2"], Dialect.Sorted(r));
        }
        finally
        {
            File.Delete(script);
        }
    }

    /// <summary>Both MPIs: a rank that lost its PMI wiring on the way (here env -u) says so and fails the job.</summary>
    [Theory]
    [InlineData("mpich")]
    [InlineData("openmpi")]
    public async Task A_rank_that_cannot_reach_PMI_fails_the_job_instead_of_running_alone(string mpi)
    {
        var hello = mpi == "mpich" ? Repo.Example("hello") : Dialect.OpenMpiExample("hello");
        var r = await Dialect.Sfrun("-n", "2", "env", "-u", "PMI_PORT", "-u", "PMI_FD", "-u", "SFRUN_FLUX_JOB_ID", hello);
        Assert.NotEqual(0, r.ExitCode);
        Assert.DoesNotContain("of 1", r.Out);
        Assert.Contains("sfrun's PMI", r.Err);
    }

    [Fact]
    public async Task The_singleton_check_can_be_turned_off()
    {
        var r = await Dialect.Sfrun(new Dictionary<string, string> { ["SFRUN_SINGLETON_CHECK"] = "0" },
            "-n", "2", "env", "-u", "PMI_PORT", "-u", "PMI_FD", Repo.Example("hello"));
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(["hello from rank 0 of 1", "hello from rank 0 of 1"], Dialect.Sorted(r));
    }

    /// <summary>What no preload sees (a static program, env -i): a rank exits 0 never having reached
    /// PMI while its peer did. hydra waits for it for ever; sfrun ends the job with exit 1.</summary>
    [Fact]
    public async Task A_rank_that_exits_without_PMI_beside_one_that_joined_ends_the_job()
    {
        var r = await Dialect.Sfrun("-n", "1", Repo.Example("hello"), ":", "-n", "1", "true");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("rank 1 (", r.Err);
        Assert.Contains("without reaching sfrun's PMI, while rank 0 did", r.Err);
    }

    /// <summary>The Open MPI variables are lent at MPI_Init only: an mpirun that a rank starts
    /// (which crashes on an inherited FLUX_JOB_ID) and hydra's mpiexec run their own jobs.</summary>
    [Fact]
    public async Task A_rank_can_run_a_nested_mpirun_or_mpiexec()
    {
        var ompi = await Dialect.Sfrun(Dialect.AsRoot, "-n", "1", Dialect.OpenMpiRun, "--oversubscribe", "-n", "2", Dialect.OpenMpiExample("hello"));
        Assert.True(ompi.ExitCode == 0, ompi.Err);
        Assert.Equal(["hello from rank 0 of 2", "hello from rank 1 of 2"], Dialect.Sorted(ompi));
        var hydra = await Dialect.Sfrun("-n", "1", Repo.Hydra, "-n", "2", Repo.Example("hello"));
        Assert.True(hydra.ExitCode == 0, hydra.Err);
        Assert.Equal(["hello from rank 0 of 2", "hello from rank 1 of 2"], Dialect.Sorted(hydra));
    }

    /// <summary>Plain programs see both launchers' identity variables, with mpirun's and hydra's values.</summary>
    [Fact]
    public async Task Every_rank_gets_both_launchers_identity_variables()
    {
        const string show = "echo $OMPI_COMM_WORLD_RANK $OMPI_COMM_WORLD_SIZE $OMPI_COMM_WORLD_LOCAL_RANK $OMPI_COMM_WORLD_LOCAL_SIZE "
            + "$OMPI_COMM_WORLD_NODE_RANK $PMIX_RANK";
        const string hydraShow = "echo $PMI_RANK $PMI_SIZE $MPI_LOCALRANKID $MPI_LOCALNRANKS";
        var ours = await Dialect.Sfrun("-n", "3", "sh", "-c", show);
        var theirs = await Dialect.MpirunOpenMpi("-n", "3", "sh", "-c", show);
        Assert.True(ours.ExitCode == 0, ours.Err);
        Assert.Equal(["0 3 0 3 0 0", "1 3 1 3 1 1", "2 3 2 3 2 2"], Dialect.Sorted(ours));
        Assert.Equal(Dialect.Sorted(theirs), Dialect.Sorted(ours));
        var oursHydra = await Dialect.Sfrun("-n", "3", "sh", "-c", hydraShow);
        var hydra = await Dialect.Hydra("-n", "3", "sh", "-c", hydraShow);
        // Once, under a loaded parallel run, hydra printed nothing: say what it said instead.
        Assert.True(hydra.ExitCode == 0 && hydra.OutLines.Length == 3, $"mpiexec.hydra: exit {hydra.ExitCode}: {hydra.Out}{hydra.Err}");
        Assert.Equal(Dialect.Sorted(hydra), Dialect.Sorted(oursHydra));
    }
}
