using Snowflock.Launcher.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>Issue #14: what every rank gets whatever its program (native/init preloaded, the Open MPI
/// variables lent under SFRUN_ names, both launchers' identity variables).</summary>
[Trait("Area", "unit")]
public sealed class RankIdentityForEveryProgramTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "sfrun-identity-" + Guid.NewGuid().ToString("N"));
    private readonly string _build;

    public RankIdentityForEveryProgramTests()
    {
        _build = Path.Combine(_root, "native", "build");
        Directory.CreateDirectory(_build);
        foreach (var name in new[] { MpiFlavor.PmiLibraryName, MpiFlavor.UcxProgressLibraryName, MpiFlavor.InitCheckLibraryName })
            File.WriteAllBytes(Path.Combine(_build, name), []);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Lib(string name) => Path.Combine(_build, name);

    [Fact]
    public void A_program_without_MPI_in_its_ELF_gets_the_init_check_and_the_lent_Open_MPI_variables()
    {
        var env = MpiFlavor.SetupFor(MpiLibrary.None, "/usr/bin/python3", "1-1", null, _root).ApplyTo(new() { ["LD_PRELOAD"] = "/opt/t.so" }, 1, 2);
        Assert.Equal("/opt/t.so:" + Lib(MpiFlavor.InitCheckLibraryName), env["LD_PRELOAD"]);
        Assert.Equal(MpiFlavor.NumericJobId("1-1").ToString(), env[MpiFlavor.LentJobIdVariable]);
        Assert.Equal(Lib(MpiFlavor.PmiLibraryName), env[MpiFlavor.LentLibraryVariable]);
        // Never the real names: Open MPI's mpirun, started from a rank, crashes on FLUX_JOB_ID.
        Assert.False(env.ContainsKey("FLUX_JOB_ID"));
    }

    [Fact]
    public void MPI_ranks_preload_the_progress_library_then_the_init_check()
    {
        var mpich = MpiFlavor.SetupFor(MpiLibrary.Mpich, "/x/cpi", "1-1", null, _root).ApplyTo([], 1, 2);
        Assert.Equal(Lib(MpiFlavor.UcxProgressLibraryName) + ":" + Lib(MpiFlavor.InitCheckLibraryName), mpich["LD_PRELOAD"]);
        var ompi = MpiFlavor.SetupFor(MpiLibrary.OpenMpi, "/x/cpi", "1-1", null, _root).ApplyTo([], 1, 2);
        Assert.Equal(Lib(MpiFlavor.PmiLibraryName), ompi["FLUX_PMI_LIBRARY_PATH"]);
        Assert.False(ompi.ContainsKey(MpiFlavor.LentJobIdVariable));
    }

    [Fact]
    public void Without_the_init_check_nothing_is_lent()
    {
        File.Delete(Lib(MpiFlavor.InitCheckLibraryName));
        var env = MpiFlavor.SetupFor(MpiLibrary.None, "/bin/sh", "1-1", null, _root).ApplyTo([], 1, 2);
        Assert.False(env.ContainsKey("LD_PRELOAD"));
        Assert.False(env.ContainsKey(MpiFlavor.LentJobIdVariable));
    }

    [Fact]
    public void Oversubscribed_ranks_of_unknown_programs_are_told_so_as_Open_MPI_ranks_are()
    {
        Assert.Equal("1", MpiFlavor.SetupFor(MpiLibrary.None, "/usr/bin/python3", "1-1", null, _root).ApplyTo([], 4, 2)["OMPI_MCA_mpi_oversubscribe"]);
        Assert.False(MpiFlavor.SetupFor(MpiLibrary.Mpich, "/x/cpi", "1-1", null, _root).ApplyTo([], 4, 2).ContainsKey("OMPI_MCA_mpi_oversubscribe"));
    }

    [Fact]
    public void Open_MPI_identity_follows_the_PMI_wiring()
    {
        var env = new Dictionary<string, string> { ["PMI_RANK"] = "5", ["PMI_SIZE"] = "8", ["MPI_LOCALRANKID"] = "1", ["MPI_LOCALNRANKS"] = "4" };
        DialectEnvironment.AddTo(env);
        Assert.Equal("5", env["OMPI_COMM_WORLD_RANK"]);
        Assert.Equal("8", env["OMPI_COMM_WORLD_SIZE"]);
        Assert.Equal("1", env["OMPI_COMM_WORLD_LOCAL_RANK"]);
        Assert.Equal("4", env["OMPI_COMM_WORLD_LOCAL_SIZE"]);
        Assert.Equal("1", env["OMPI_COMM_WORLD_NODE_RANK"]);
        Assert.Equal("5", env["PMIX_RANK"]);
    }
}
