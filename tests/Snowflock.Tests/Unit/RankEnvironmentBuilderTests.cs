using System.Collections;
using Snowflock.Launcher;
using Snowflock.Launcher.Internal;
using Snowflock.Mpi.Pmi;
using Xunit;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed class RankEnvironmentBuilderTests
{
    private static readonly ProgramBlock PlainBlock = new(1, "./a", []);

    private static Hashtable Current(params (string Name, string Value)[] variables)
    {
        var table = new Hashtable();
        foreach (var (name, value) in variables)
            table[name] = value;
        return table;
    }

    private static JobSpec Spec(EnvironmentPolicy policy = EnvironmentPolicy.All, IReadOnlyList<string>? list = null,
        Dictionary<string, string>? genv = null) => new()
    {
        Blocks = [PlainBlock],
        Inherit = policy,
        InheritList = list ?? [],
        GlobalEnvironment = genv ?? [],
    };

    private static readonly Dictionary<string, string> NoWiring = [];

    [Fact]
    public void The_whole_environment_is_inherited_by_default()
    {
        var env = new RankEnvironmentBuilder(Spec(), Current(("HOME", "/root"), ("PATH", "/bin"), ("EMPTY", ""))).For(PlainBlock, NoWiring);
        Assert.Equal(new Dictionary<string, string> { ["HOME"] = "/root", ["PATH"] = "/bin", ["EMPTY"] = "" }, env);
    }

    [Fact]
    public void An_outer_Flux_or_PMIx_jobs_wiring_is_not_inherited_but_explicit_settings_win()
    {
        var parent = Current(("FLUX_JOB_ID", "f123"), ("FLUX_PMI_LIBRARY_PATH", "/usr/lib/flux/libpmi.so"),
            ("PMIX_RANK", "3"), ("PMIX_NAMESPACE", "slurm.pmix.1.0"), ("OMPI_MCA_orte_hnp_uri", "x"),
            ("OMPI_COMM_WORLD_RANK", "3"), ("PMIXNOT", "kept"), ("KEEP", "me"));
        var bare = new RankEnvironmentBuilder(Spec(), parent).For(PlainBlock, NoWiring);
        Assert.Equal(new Dictionary<string, string> { ["PMIXNOT"] = "kept", ["KEEP"] = "me" }, bare);

        var spec = Spec() with { GlobalEnvironment = new Dictionary<string, string> { ["PMIX_MCA_gds"] = "hash" } };
        Assert.Equal("hash", new RankEnvironmentBuilder(spec, parent).For(PlainBlock, NoWiring)["PMIX_MCA_gds"]);
    }

    [Fact]
    public void Stale_PMI_variables_of_a_parent_job_are_removed()
    {
        var parent = Current(("PMI_FD", "5"), ("PMI_PORT", "10.0.0.1:999"), ("PMI_ID", "7"), ("PMI_RANK", "7"), ("PMI_SIZE", "8"),
            ("MPI_LOCALRANKID", "3"), ("MPI_LOCALNRANKS", "4"), ("MPI_APPNUM", "1"), ("PMI_SPAWNED", "1"), ("KEEP", "me"));
        var builder = new RankEnvironmentBuilder(Spec(), parent);

        var bare = builder.For(PlainBlock, NoWiring);
        Assert.Equal(new Dictionary<string, string> { ["KEEP"] = "me" }, bare);
        foreach (var name in RankEnvironment.Inherited)
            Assert.False(bare.ContainsKey(name), name);

        // With this job's wiring, the rank sees this job's values and no leftover of the parent's.
        var wiring = RankEnvironment.For("127.0.0.1", 4000, rank: 1, size: 2, localRank: 1, localSize: 2, appnum: 0);
        var env = builder.For(PlainBlock, wiring);
        Assert.Equal("127.0.0.1:4000", env["PMI_PORT"]);
        Assert.Equal("1", env["PMI_ID"]);
        Assert.Equal("2", env["PMI_SIZE"]);
        Assert.Equal("0", env["MPI_APPNUM"]);
        Assert.False(env.ContainsKey("PMI_FD"));
        Assert.False(env.ContainsKey("PMI_SPAWNED"));
    }

    [Fact]
    public void Stale_PMI_variables_are_removed_even_when_listed()
    {
        var spec = Spec(EnvironmentPolicy.Listed, ["PMI_FD", "A"]);
        var env = new RankEnvironmentBuilder(spec, Current(("PMI_FD", "5"), ("A", "1"))).For(PlainBlock, NoWiring);
        Assert.Equal(new Dictionary<string, string> { ["A"] = "1" }, env);
    }

    [Fact]
    public void Later_layers_win_inherited_then_genv_then_block_env_then_wiring()
    {
        var parent = Current(("ONLY_INHERITED", "i"), ("GENV", "i"), ("BLOCK", "i"), ("WIRED", "i"));
        var spec = Spec(genv: new() { ["GENV"] = "g", ["BLOCK"] = "g", ["WIRED"] = "g", ["ONLY_GENV"] = "g" });
        var block = PlainBlock with { Environment = new Dictionary<string, string> { ["BLOCK"] = "b", ["WIRED"] = "b" } };
        var env = new RankEnvironmentBuilder(spec, parent).For(block, new Dictionary<string, string> { ["WIRED"] = "w" });
        Assert.Equal(new Dictionary<string, string>
        {
            ["ONLY_INHERITED"] = "i",
            ["ONLY_GENV"] = "g",
            ["GENV"] = "g",
            ["BLOCK"] = "b",
            ["WIRED"] = "w",
        }, env);
    }

    [Fact]
    public void Genv_may_set_a_PMI_name_but_the_wiring_still_wins()
    {
        var spec = Spec(genv: new() { ["PMI_PORT"] = "user", ["PMI_DEBUG"] = "1" });
        var builder = new RankEnvironmentBuilder(spec, Current());
        Assert.Equal("user", builder.For(PlainBlock, NoWiring)["PMI_PORT"]);
        var wired = builder.For(PlainBlock, new Dictionary<string, string> { ["PMI_PORT"] = "127.0.0.1:1" });
        Assert.Equal("127.0.0.1:1", wired["PMI_PORT"]);
        Assert.Equal("1", wired["PMI_DEBUG"]);
    }

    [Fact]
    public void Block_environments_do_not_leak_into_other_blocks()
    {
        var builder = new RankEnvironmentBuilder(Spec(), Current(("X", "parent")));
        var a = PlainBlock with { Environment = new Dictionary<string, string> { ["X"] = "a" } };
        var b = PlainBlock with { Program = "./b" };
        Assert.Equal("a", builder.For(a, NoWiring)["X"]);
        Assert.Equal("parent", builder.For(b, NoWiring)["X"]);
    }

    [Fact]
    public void None_passes_explicit_variables_and_HOME_and_PATH_as_hydra_on_this_host()
    {
        var spec = Spec(EnvironmentPolicy.None, genv: new() { ["G"] = "1" });
        var block = PlainBlock with { Environment = new Dictionary<string, string> { ["B"] = "2" } };
        var env = new RankEnvironmentBuilder(spec, Current(("HOME", "/root"), ("PATH", "/bin"))).For(block, new Dictionary<string, string> { ["PMI_ID"] = "0" });
        Assert.Equal(new Dictionary<string, string> { ["HOME"] = "/root", ["PATH"] = "/bin", ["G"] = "1", ["B"] = "2", ["PMI_ID"] = "0" }, env);
    }

    [Fact]
    public void Listed_passes_only_the_listed_variables_plus_explicit_ones()
    {
        var spec = Spec(EnvironmentPolicy.Listed, ["A", "C", "NOT_SET"], new() { ["G"] = "1" });
        var env = new RankEnvironmentBuilder(spec, Current(("A", "1"), ("B", "2"), ("C", "3"), ("a", "lower"))).For(PlainBlock, NoWiring);
        Assert.Equal(new Dictionary<string, string> { ["A"] = "1", ["C"] = "3", ["G"] = "1" }, env);
    }

    [Fact]
    public void Each_call_returns_a_fresh_dictionary()
    {
        var builder = new RankEnvironmentBuilder(Spec(), Current(("A", "1")));
        var first = builder.For(PlainBlock, NoWiring);
        first["A"] = "changed";
        first["NEW"] = "x";
        Assert.Equal(new Dictionary<string, string> { ["A"] = "1" }, builder.For(PlainBlock, NoWiring));
    }
}
