using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>An MPI.NET program (examples/dotnet/MpiNetDemo, using Snowflock.Mpi.DotNet) runs under
/// sfrun exactly as under MPICH's mpiexec.hydra: same stdout, exit 0, nothing left behind. Rank
/// counts stay small: each rank is a .NET runtime starting on a 2-core machine.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class DotNetMpiTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);

    private static string DemoDll => Built("MpiNetDemo.dll");
    private static string DemoAppHost => Built("MpiNetDemo");

    private static string Built(string name)
    {
        var path = Path.Combine(Repo.Root, "examples", "dotnet", "MpiNetDemo", "bin", "Debug", "net10.0", name);
        return File.Exists(path) ? path : throw new InvalidOperationException($"{path} is not built: run scripts/setup");
    }

    public static TheoryData<int> RankCounts => new() { 1, 2, 4 };

    [Theory]
    [MemberData(nameof(RankCounts))]
    public async Task MpiNet_demo_output_matches_hydra(int np)
    {
        var tag = Leaks.NewTag();
        string[] program = ["dotnet", DemoDll, "100000", "4"];
        var sf = await CommandRun.RunAsync(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-np", np.ToString(), .. program], bound: Bound);
        var hy = await CommandRun.RunAsync(Repo.Hydra, ["-np", np.ToString(), .. program], bound: Bound);
        Assert.True(hy.ExitCode == 0, hy.Err);
        Assert.True(sf.ExitCode == 0, sf.Err);
        Assert.Equal(hy.Out, sf.Out);
        Assert.StartsWith("pi is approximately 3.14159", sf.OutLines[0]);
        Assert.EndsWith($"({np} processes, 100000 intervals)", sf.OutLines[0]);
        Assert.Equal($"ring: {np} ranks, 4 laps, token {(long)np * (np - 1) / 2 * 4} ok", sf.OutLines[1]);
        Assert.Equal(["ring", "allreduce record", "allreduce struct", "allgather record", "streamed strings"],
            sf.OutLines.Skip(1).Select(l => l[..l.IndexOf(':')]));
        Assert.All(sf.OutLines.Skip(1), l => Assert.EndsWith(" ok", l));
        // MPI.NET's cached datatypes are freed before MPI_Finalize, so MPICH has no leak to report.
        Assert.DoesNotContain("leaked", sf.Err);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task MpiNet_pi_is_bit_for_bit_the_c_example()
    {
        // Same loop, same MPI_Reduce(MPI_SUM) in MPICH, same printf("%.16f") digits.
        var net = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "4", "dotnet", DemoDll, "100000"], bound: Bound);
        var c = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "4", Repo.Example("cpi"), "100000"], bound: Bound);
        Assert.True(net.ExitCode == 0, net.Err);
        Assert.True(c.ExitCode == 0, c.Err);
        Assert.Equal(c.OutLines[0], net.OutLines[0]);
    }

    [Fact]
    public async Task MpiNet_demo_runs_through_its_apphost_too()
    {
        var tag = Leaks.NewTag();
        var sf = await CommandRun.RunAsync(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-np", "2", DemoAppHost, "5000", "3"], bound: Bound);
        var hy = await CommandRun.RunAsync(Repo.Hydra, ["-np", "2", DemoAppHost, "5000", "3"], bound: Bound);
        Assert.True(hy.ExitCode == 0, hy.Err);
        Assert.True(sf.ExitCode == 0, sf.Err);
        Assert.Equal(hy.Out, sf.Out);
        Assert.Contains("ring: 2 ranks, 3 laps, token 3 ok", sf.OutLines);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task A_rank_dying_of_an_unhandled_exception_ends_the_job_like_under_hydra()
    {
        // .NET runs finally blocks on an unhandled exception: without the abort, the dying rank
        // would sit in MPI_Finalize and the others in their collective, and the job would hang.
        var tag = Leaks.NewTag();
        string[] program = ["dotnet", DemoDll, "1000", "2", "--throw-on-rank", "1"];
        var sf = await CommandRun.RunAsync(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-np", "3", .. program], bound: Bound);
        var hy = await CommandRun.RunAsync(Repo.Hydra, ["-np", "3", .. program], bound: Bound);
        Assert.Equal(1, hy.ExitCode);
        Assert.Equal(1, sf.ExitCode);
        Assert.Contains("rank 1: unhandled exception, aborting the MPI job: System.InvalidOperationException: rank 1 fails on purpose", sf.Err);
        Assert.Equal(hy.Out, sf.Out);
        await Leaks.AssertNoneAsync(tag);
    }
}
