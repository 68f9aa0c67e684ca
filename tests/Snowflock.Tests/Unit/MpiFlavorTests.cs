using Snowflock.Launcher;
using Snowflock.Launcher.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed class MpiFlavorTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "sfrun-flavor-" + Guid.NewGuid().ToString("N"));

    public MpiFlavorTests() => Directory.CreateDirectory(_root);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string MakeLibrary(string dir)
    {
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, MpiFlavor.PmiLibraryName);
        File.WriteAllBytes(path, []);
        return path;
    }

    [Fact]
    public void Libraries_are_told_apart_by_their_sonames()
    {
        Assert.Equal(MpiLibrary.OpenMpi, MpiFlavor.Classify(["libm.so.6", "libmpi.so.40", "libc.so.6"]));
        Assert.Equal(MpiLibrary.Mpich, MpiFlavor.Classify(["libmpich.so.12", "libc.so.6"]));
        Assert.Equal(MpiLibrary.None, MpiFlavor.Classify(["libc.so.6"]));
        Assert.Equal(MpiLibrary.None, MpiFlavor.Classify(["libmpi.so.12"])); // Open MPI 1.x/2.x: not supported
        Assert.Equal(MpiLibrary.None, MpiFlavor.Classify(null));
    }

    [Fact]
    public void Only_Open_MPI_programs_get_extra_variables()
    {
        Assert.Empty(MpiFlavor.SetupFor(MpiLibrary.Mpich, "/x/cpi", "1-abcd", null, _root).Variables);
        Assert.Empty(MpiFlavor.SetupFor(MpiLibrary.None, "/x/cpi", "1-abcd", null, _root).Variables);
    }

    /// <summary>libsfucx.so (native/ucx) goes after the user's own preloads, for both MPIs, and
    /// never into programs that are not MPI programs.</summary>
    [Fact]
    public void MPI_ranks_preload_the_finalize_progress_library_after_the_users_own()
    {
        var dir = Path.Combine(_root, "native", "build");
        Directory.CreateDirectory(dir);
        var ucx = Path.Combine(dir, MpiFlavor.UcxProgressLibraryName);
        File.WriteAllBytes(ucx, []);
        MakeLibrary(dir);
        foreach (var library in new[] { MpiLibrary.Mpich, MpiLibrary.OpenMpi })
        {
            var setup = MpiFlavor.SetupFor(library, "/x/cpi", "1-1", null, _root);
            Assert.Equal(ucx, setup.ApplyTo([], 1, 2)["LD_PRELOAD"]);
            Assert.Equal("/opt/tool.so:" + ucx, setup.ApplyTo(new() { ["LD_PRELOAD"] = "/opt/tool.so" }, 1, 2)["LD_PRELOAD"]);
        }
        Assert.False(MpiFlavor.SetupFor(MpiLibrary.None, "/x/sh", "1-1", null, _root).ApplyTo([], 1, 2).ContainsKey("LD_PRELOAD"));
        // A half-built tree (no libsfucx.so): MPI ranks run as before.
        File.Delete(ucx);
        Assert.False(MpiFlavor.SetupFor(MpiLibrary.Mpich, "/x/cpi", "1-1", null, _root).ApplyTo([], 1, 2).ContainsKey("LD_PRELOAD"));
    }

    [Fact]
    public void Open_MPI_gets_a_numeric_flux_job_id_and_the_library_path_found_above_the_binary()
    {
        var lib = MakeLibrary(Path.Combine(_root, "native", "build"));
        var binDir = Path.Combine(_root, "out", "sfrun");
        Directory.CreateDirectory(binDir);
        var env = MpiFlavor.SetupFor(MpiLibrary.OpenMpi, "/x/cpi", "123-00ff", null, binDir + "/").Variables;
        Assert.Equal(lib, env["FLUX_PMI_LIBRARY_PATH"]);
        Assert.Equal(MpiFlavor.NumericJobId("123-00ff").ToString(), env["FLUX_JOB_ID"]);
        Assert.Equal(2, env.Count);
    }

    [Fact]
    public void SFRUN_NATIVE_DIR_wins_over_the_repository()
    {
        MakeLibrary(Path.Combine(_root, "native", "build"));
        var other = MakeLibrary(Path.Combine(_root, "elsewhere"));
        var env = MpiFlavor.SetupFor(MpiLibrary.OpenMpi, "/x/cpi", "1-1", Path.Combine(_root, "elsewhere"), _root).Variables;
        Assert.Equal(other, env["FLUX_PMI_LIBRARY_PATH"]);
    }

    [Fact]
    public void A_missing_library_is_one_clear_error_before_any_rank_starts()
    {
        var e = Assert.Throws<ProgramNotFoundException>(() =>
            MpiFlavor.SetupFor(MpiLibrary.OpenMpi, "/x/cpi", "1-1", Path.Combine(_root, "empty"), _root));
        Assert.Contains("/x/cpi: links Open MPI", e.Message);
        Assert.Contains("SFRUN_NATIVE_DIR", e.Message);
        Assert.Throws<ProgramNotFoundException>(() => MpiFlavor.SetupFor(MpiLibrary.OpenMpi, "/x/cpi", "1-1", null, _root));
    }

    [Theory]
    [InlineData("1-0000")]
    [InlineData("4242-ffff")]
    [InlineData("99999-8000")]
    [InlineData("")]
    public void Job_ids_suit_Open_MPI(string jobId)
    {
        var id = MpiFlavor.NumericJobId(jobId);
        Assert.Equal(id, MpiFlavor.NumericJobId(jobId));
        Assert.InRange(id >> 16, 1u, 0x7fffu);
        Assert.InRange(id & 0xffff, 1u, 0x7fffu);
    }

    [Fact]
    public void Job_ids_of_different_jobs_differ()
    {
        var ids = Enumerable.Range(0, 1000).Select(i => MpiFlavor.NumericJobId($"{1000 + i}-{i:x4}")).ToHashSet();
        Assert.True(ids.Count > 990, $"{ids.Count} distinct ids of 1000");
    }

    [Fact]
    public void A_variable_the_user_set_is_kept()
    {
        var env = new Dictionary<string, string> { ["FLUX_JOB_ID"] = "77", ["PATH"] = "/bin", ["OMPI_MCA_mpi_oversubscribe"] = "0" };
        var setup = new MpiSetup(MpiLibrary.OpenMpi, new Dictionary<string, string> { ["FLUX_JOB_ID"] = "1", ["FLUX_PMI_LIBRARY_PATH"] = "/l.so" });
        setup.ApplyTo(env, localRanks: 8, processors: 2);
        Assert.Equal("77", env["FLUX_JOB_ID"]);
        Assert.Equal("/l.so", env["FLUX_PMI_LIBRARY_PATH"]);
        Assert.Equal("/bin", env["PATH"]);
        Assert.Equal("0", env["OMPI_MCA_mpi_oversubscribe"]);
    }

    [Theory]
    [InlineData(nameof(MpiLibrary.OpenMpi), 8, 2, true)]
    [InlineData(nameof(MpiLibrary.OpenMpi), 2, 2, false)]
    [InlineData(nameof(MpiLibrary.OpenMpi), 1, 64, false)]
    [InlineData(nameof(MpiLibrary.Mpich), 8, 2, false)]
    public void Open_MPI_ranks_that_outnumber_the_processors_are_told_to_yield(string library, int localRanks, int processors, bool told)
    {
        var setup = new MpiSetup(Enum.Parse<MpiLibrary>(library), new Dictionary<string, string>());
        var env = setup.ApplyTo([], localRanks, processors);
        Assert.Equal(told, env.TryGetValue("OMPI_MCA_mpi_oversubscribe", out var v) && v == "1");
    }

    [Fact]
    public void Open_MPI_session_files_go_to_a_private_job_directory_removed_at_teardown()
    {
        using var scratch = new MpiScratch("test-" + Guid.NewGuid().ToString("N")[..8]);
        var setup = new MpiSetup(MpiLibrary.OpenMpi, new Dictionary<string, string>(), scratch);
        var env = setup.ApplyTo([], 1, 2);
        var dir = env["OMPI_MCA_orte_tmpdir_base"];
        Assert.Equal(dir, env["OMPI_MCA_btl_vader_backing_directory"]);
        Assert.True(Directory.Exists(dir));
        if (OperatingSystem.IsLinux())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dir));
        Assert.Equal(dir, setup.ApplyTo([], 1, 2)["OMPI_MCA_orte_tmpdir_base"]); // one per job
        File.WriteAllText(Path.Combine(dir, "vader_segment.x.0"), "");
        setup.Dispose();
        Assert.False(Directory.Exists(dir));
        setup.Dispose();
    }

    [Fact]
    public void A_session_directory_the_user_chose_is_left_alone()
    {
        using var scratch = new MpiScratch("test-" + Guid.NewGuid().ToString("N")[..8]);
        var env = new MpiSetup(MpiLibrary.OpenMpi, new Dictionary<string, string>(), scratch)
            .ApplyTo(new() { ["OMPI_MCA_orte_tmpdir_base"] = "/mine" }, 1, 2);
        Assert.Equal("/mine", env["OMPI_MCA_orte_tmpdir_base"]);
        Assert.False(env.ContainsKey("OMPI_MCA_btl_vader_backing_directory"));
        Assert.Null(new MpiSetup(MpiLibrary.Mpich, new Dictionary<string, string>(), scratch).ApplyTo([], 1, 2)
            .GetValueOrDefault("OMPI_MCA_orte_tmpdir_base"));
    }
}

