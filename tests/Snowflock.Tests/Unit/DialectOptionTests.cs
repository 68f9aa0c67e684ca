using Snowflock.Cli;
using Snowflock.Launcher.Placement;
using Snowflock.Tests.Integration.Support;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>Issue #14: the options hydra's mpiexec and Open MPI's mpirun users type, read from
/// the one option table.</summary>
[Trait("Area", "unit")]
public sealed class DialectOptionTests
{
    private static Snowflock.Launcher.JobSpec Job(params string[] args) => SfrunCommandLine.Parse(args, _ => null).Job!;

    private static UsageException Refused(params string[] args) => Assert.Throws<UsageException>(() => SfrunCommandLine.Parse(args, _ => null));

    [Fact]
    public void Mca_parameters_become_OMPI_MCA_variables()
    {
        Assert.Equal("lo", Job("--mca", "btl_tcp_if_include", "lo", "./a").GlobalEnvironment["OMPI_MCA_btl_tcp_if_include"]);
        Assert.Equal("1", Job("-mca", "mpi_yield_when_idle", "1", "./a").GlobalEnvironment["OMPI_MCA_mpi_yield_when_idle"]);
    }

    [Fact]
    public void Genv_takes_NAME_VALUE_or_NAME_is_VALUE_as_hydra()
    {
        var spec = Job("-genv", "A=b=c", "-genv", "X", "y", "-n", "2", "./a");
        Assert.Equal("b=c", spec.GlobalEnvironment["A"]);
        Assert.Equal("y", spec.GlobalEnvironment["X"]);
        Assert.Equal(2, spec.Blocks[0].Ranks);
    }

    [Theory]
    [InlineData(new[] { "-N", "3" }, 3)]
    [InlineData(new[] { "--map-by", "ppr:2:node" }, 2)]
    [InlineData(new[] { "-ppn", "4", "--map-by", "slot" }, 4)]
    [InlineData(new[] { "--map-by", "node" }, null)]
    [InlineData(new[] { "-map-by", "core" }, null)]
    public void Mapping_options_set_ranks_per_host(string[] options, int? perNode) =>
        Assert.Equal(perNode, Job([.. options, "./a"]).PerNode);

    [Theory]
    [InlineData("--bind-to", "core", BindingPolicy.Core)]
    [InlineData("-bind-to", "socket", BindingPolicy.Socket)]
    [InlineData("-binding", "hwthread", BindingPolicy.HwThread)]
    [InlineData("--bind-to", "core:overload-allowed", BindingPolicy.Core)]
    [InlineData("--bind-to", "none", BindingPolicy.None)]
    public void Binding_options_of_both_dialects(string option, string value, BindingPolicy policy) =>
        Assert.Equal(policy, Job(option, value, "./a").Binding);

    [Theory]
    [InlineData("--oversubscribe")]
    [InlineData("--allow-run-as-root")]
    [InlineData("--use-hwthread-cpus")]
    [InlineData("-q")]
    [InlineData("--quiet")]
    [InlineData("--report-bindings")]
    [InlineData("--display-map")]
    [InlineData("--display-allocation")]
    [InlineData("-envall")]
    public void Flags_users_type_daily_are_accepted(string flag) => Assert.NotNull(Job(flag, "-n", "1", "./a"));

    [Theory]
    [InlineData("--prefix", "/usr")]
    [InlineData("-iface", "eth0")]
    [InlineData("-usize", "8")]
    [InlineData("--rank-by", "slot")]
    [InlineData("-launcher", "fork")]
    [InlineData("-bootstrap", "fork")]
    public void Options_without_meaning_here_are_accepted(string option, string value) => Assert.NotNull(Job(option, value, "./a"));

    [Fact]
    public void Env_policies_of_hydra_blocks_apply_to_the_job()
    {
        Assert.Equal(Snowflock.Launcher.EnvironmentPolicy.None, Job("-envnone", "./a").Inherit);
        var listed = Job("-envlist", "A,B", "./a");
        Assert.Equal(Snowflock.Launcher.EnvironmentPolicy.Listed, listed.Inherit);
        Assert.Equal(["A", "B"], listed.InheritList);
    }

    [Fact]
    public void Output_filename_writes_where_Open_MPI_does()
    {
        var o = Job("--output-filename", "/tmp/out", "./a").Output;
        Assert.Equal("/tmp/out/1/rank.%r/stdout", o.StdoutPattern);
        Assert.Equal("/tmp/out/1/rank.%r/stderr", o.StderrPattern);
        Assert.True(o.CreateFolders);
    }

    [Fact]
    public void Stdin_goes_to_the_rank_asked_for_or_none()
    {
        Assert.Equal(0, Job("./a").StdinRank);
        Assert.Equal(2, Job("--stdin", "2", "./a").StdinRank);
        Assert.Null(Job("--stdin", "none", "./a").StdinRank);
        Assert.Contains("not supported yet", Refused("--stdin", "all", "./a").Message);
    }

    [Theory]
    [InlineData("-launcher", "lsf", "ssh, slurm, fork, manual")]
    [InlineData("-bootstrap", "pbs", "ssh, slurm, fork, manual")]
    [InlineData("--map-by", "dist", "ppr:N:node")]
    [InlineData("--bind-to", "board", "core, socket")]
    public void Options_that_cannot_work_here_are_one_line_errors(string option, string value, string says) =>
        Assert.Contains(says, Refused(option, value, "./a").Message);

    [Fact]
    public void Launcher_bootstrap_and_their_exec_reach_the_job_as_hydra_spells_them()
    {
        Assert.Equal("ssh", Job("-launcher", "ssh", "./a").HostLaunch.Launcher);
        Assert.Equal("slurm", Job("-bootstrap", "slurm", "./a").HostLaunch.Launcher);
        Assert.Null(Job("./a").HostLaunch.Launcher);
    }

    [Fact]
    public void Nooversubscribe_refuses_more_ranks_than_CPUs()
    {
        Assert.Contains("--nooversubscribe", Refused("--nooversubscribe", "-n", (Environment.ProcessorCount + 1).ToString(), "./a").Message);
        Assert.NotNull(Job("--nooversubscribe", "-n", "1", "./a"));
    }

    [Theory]
    [InlineData("--tag-output", true)]
    [InlineData("-tag-output", true)]
    [InlineData("-l", false)]
    [InlineData("-prepend-rank", false)]
    public void The_tag_dialect_follows_the_options_spelling(string option, bool openMpi)
    {
        var o = Job(option, "./a").Output;
        Assert.True(o.TagLines);
        Assert.Equal(openMpi, o.OpenMpiTags);
    }

    [Fact]
    public void Ranks_given_twice_for_one_block_are_an_error()
    {
        Assert.Contains("given twice", Refused("-n", "2", "-np", "3", "./a").Message);
        Assert.Equal([2, 3], Job("-n", "2", "./a", ":", "-n", "3", "./b").Blocks.Select(b => b.Ranks));
    }

    [Fact]
    public void File_errors_are_described_in_words()
    {
        Assert.Equal("no such file or directory", Snowflock.Engine.IoMessages.Describe(new FileNotFoundException()));
        Assert.Equal("is a directory", Snowflock.Engine.IoMessages.Describe(new UnauthorizedAccessException(), "/"));
        Assert.Equal("permission denied", Snowflock.Engine.IoMessages.Describe(new UnauthorizedAccessException(), "/no/such"));
        Assert.Equal("no space left on device", Snowflock.Engine.IoMessages.Describe(new IOException("x", 28)));
    }

    [Fact]
    public void Info_is_its_own_invocation() => Assert.True(SfrunCommandLine.Parse(["-info"], _ => null).Info);

    [Fact]
    public void Bindings_are_reported_in_Open_MPIs_words()
    {
        var binding = new CpuBinding(BindingPolicy.Core, [(0, 0, 0), (1, 0, 1)]);
        Assert.Equal("MCW rank 1 bound to socket 0[core 1[hwt 0]]: [./B]", binding.Report(1, 1));
        Assert.Equal("0", binding.VariableFor(2));
        var socket = new CpuBinding(BindingPolicy.Socket, [(0, 0, 0), (1, 0, 1)]);
        Assert.Equal("MCW rank 0 bound to socket 0[core 0[hwt 0]], socket 0[core 1[hwt 0]]: [B/B]", socket.Report(0, 0));
        Assert.Null(new CpuBinding(BindingPolicy.None, [(0, 0, 0)]).VariableFor(0));
    }

    /// <summary>The README's table is generated from the catalog; SFRUN_WRITE_README=1 rewrites it.</summary>
    [Fact]
    public void The_README_compatibility_table_is_the_catalogs()
    {
        const string begin = "<!-- options: generated from sfrun/Cli/OptionCatalog.cs -->\n", end = "<!-- options: end -->";
        var path = Path.Combine(Repo.Root, "README.md");
        var readme = File.ReadAllText(path);
        var from = readme.IndexOf(begin, StringComparison.Ordinal) + begin.Length;
        var to = readme.IndexOf(end, StringComparison.Ordinal);
        Assert.True(from >= begin.Length && to >= from, "README.md has no generated options table");
        if (Environment.GetEnvironmentVariable("SFRUN_WRITE_README") == "1")
            File.WriteAllText(path, readme[..from] + OptionCatalog.CompatibilityTable() + readme[to..]);
        else
            Assert.Equal(OptionCatalog.CompatibilityTable(), readme[from..to]);
    }
}
