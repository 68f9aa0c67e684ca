using System.Runtime.InteropServices;
using Snowflock.Mpi.DotNet;
using Snowflock.Mpi.DotNet.Internal;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed class MpichLibraryResolverTests
{
    [Fact]
    public void The_loader_search_comes_first_then_the_distribution_paths()
    {
        var candidates = MpichLibraryResolver.BuildCandidates(Architecture.X64);
        Assert.Equal("libmpich.so.12", candidates[0]);
        Assert.Contains("/usr/lib/x86_64-linux-gnu/libmpich.so.12", candidates);
        Assert.Contains("/usr/lib/aarch64-linux-gnu/libmpich.so.12", MpichLibraryResolver.BuildCandidates(Architecture.Arm64));
        Assert.DoesNotContain(candidates, c => c.Contains("libmpi.so", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("msmpi.dll", true)]
    [InlineData("MSMPI.DLL", true)]
    [InlineData("msmpi", true)]
    [InlineData("libc", false)]
    [InlineData("libmpi.so.40", false)]
    public void Only_mpi_nets_import_is_redirected(string name, bool redirected)
    {
        Assert.Equal(redirected, MpichLibraryResolver.IsMsMpi(name));
    }

    [Fact]
    public void Mpich_is_found_on_this_machine()
    {
        var handle = MpichLibraryResolver.Load(MpichLibraryResolver.Candidates);
        Assert.NotEqual(IntPtr.Zero, handle);
        Assert.True(NativeLibrary.TryGetExport(handle, "MPI_Type_struct", out _), "MPI.NET calls MPI-1's MPI_Type_struct; MPICH must still export it");
    }

    [Fact]
    public void No_mpich_is_an_error_that_says_what_was_tried_and_what_to_install()
    {
        string[] tried = ["/nonexistent/libmpich.so.12", "libsnowflock-no-such-mpich.so"];
        var e = Assert.Throws<MpichNotFoundException>(() => MpichLibraryResolver.Load(tried));
        Assert.Equal(tried, e.Tried);
        Assert.Contains("/nonexistent/libmpich.so.12", e.Message);
        Assert.Contains("libsnowflock-no-such-mpich.so", e.Message);
        Assert.Contains("apt-get install libmpich12", e.Message);
        Assert.IsAssignableFrom<DllNotFoundException>(e);
    }

    [Fact]
    public void After_UseMpich_mpi_net_calls_reach_mpich()
    {
        MpiNet.UseMpich();
        MpiNet.UseMpich(); // a second call is harmless
        // MPI_Initialized and MPI_Finalized may be called before MPI_Init: a real call into
        // libmpich.so.12 through MPI.NET's own P/Invoke, without starting MPI in the test process.
        Assert.False(MPI.Environment.Initialized);
        Assert.False(MPI.Environment.Finalized);
    }
}
