using System.Text.RegularExpressions;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Dialects;

/// <summary>Issue #14: the options users type daily do, side by side with mpirun.openmpi and
/// mpiexec.hydra, what they do there — bindings read from /proc, files where Open MPI puts them.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class OptionDialectTests
{
    private const string ShowCpus = "echo $PMI_RANK $(grep Cpus_allowed_list /proc/self/status | cut -f2)";

    /// <summary>One rank per core, as many ranks as cores (at most 4): what mpirun's --bind-to core gives.</summary>
    private static int Ranks => Math.Clamp(Environment.ProcessorCount, 1, 4);

    [Theory]
    [InlineData("warm")]
    [InlineData("cold")]
    public async Task Bind_to_core_pins_each_rank_as_mpirun_does(string start)
    {
        string[] warm = start == "cold" ? ["--no-warm"] : [];
        var ours = await Dialect.Sfrun([.. warm, "-n", Ranks.ToString(), "--bind-to", "core", "sh", "-c", ShowCpus]);
        var theirs = await Dialect.MpirunOpenMpi("-n", Ranks.ToString(), "--bind-to", "core", "sh", "-c", "echo $OMPI_COMM_WORLD_RANK $(grep Cpus_allowed_list /proc/self/status | cut -f2)");
        Assert.True(ours.ExitCode == 0, ours.Err);
        Assert.Equal(Dialect.Sorted(theirs), Dialect.Sorted(ours));
        Assert.Equal(Ranks, Dialect.Sorted(ours).Select(l => l.Split(' ')[1]).Distinct().Count());
    }

    [Fact]
    public async Task An_MPI_rank_is_pinned_before_main_and_hydras_spelling_works()
    {
        // An MPI program bound with hydra's spelling runs; a plain one reads its mask from /proc.
        var r = await Dialect.Sfrun("-n", Ranks.ToString(), "-bind-to", "core", Repo.Example("hello"));
        Assert.True(r.ExitCode == 0, r.Err);
        var pinned = await Dialect.Sfrun("-n", "1", "-binding", "hwthread", "grep", "Cpus_allowed_list", "/proc/self/status");
        Assert.Equal("Cpus_allowed_list:\t0", pinned.Out.Trim());
    }

    [Fact]
    public async Task Report_bindings_says_what_mpirun_says()
    {
        var ours = await Dialect.Sfrun("-n", Ranks.ToString(), "--bind-to", "core", "--report-bindings", "true");
        var theirs = await Dialect.MpirunOpenMpi("-n", Ranks.ToString(), "--bind-to", "core", "--report-bindings", "true");
        static string[] Lines(CommandResult r) => r.Err.Split('\n').Where(l => l.Contains(" MCW rank ")).Select(l => Regex.Replace(l, @"^\[[^\]]*\] ", "")).Order().ToArray();
        Assert.Equal(Ranks, Lines(ours).Length);
        Assert.Equal(Lines(theirs), Lines(ours));
    }

    [Fact]
    public async Task Output_filename_writes_the_files_mpirun_writes()
    {
        var ours = Path.Combine(Path.GetTempPath(), "sfrun-ofn-" + Guid.NewGuid().ToString("N"));
        var theirs = ours + "-ompi";
        try
        {
            const string script = "echo out $PMI_RANK; echo err >&2";
            var r = await Dialect.Sfrun("-n", "2", "--output-filename", ours, "sh", "-c", script);
            Assert.True(r.ExitCode == 0, r.Err);
            await Dialect.MpirunOpenMpi("-n", "2", "--output-filename", theirs, "sh", "-c", script.Replace("PMI_RANK", "OMPI_COMM_WORLD_RANK"));
            static string[] Files(string dir) => Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(dir, f)).Order().ToArray();
            Assert.Equal(Files(theirs), Files(ours));
            foreach (var f in Files(ours))
                Assert.Equal(File.ReadAllText(Path.Combine(theirs, f)), File.ReadAllText(Path.Combine(ours, f)));
        }
        finally
        {
            foreach (var d in new[] { ours, theirs })
                if (Directory.Exists(d))
                    Directory.Delete(d, recursive: true);
        }
    }

    [Fact]
    public async Task Mca_reaches_Open_MPI_ranks_as_mpirun_passes_it()
    {
        const string show = "echo $OMPI_MCA_mpi_show_mca_params_file";
        var ours = await Dialect.Sfrun("--mca", "mpi_show_mca_params_file", "/tmp/x", "-n", "1", "sh", "-c", show);
        var theirs = await Dialect.MpirunOpenMpi("--mca", "mpi_show_mca_params_file", "/tmp/x", "-n", "1", "sh", "-c", show);
        Assert.Equal("/tmp/x", ours.Out.Trim());
        Assert.Equal(theirs.Out, ours.Out);
        var hello = await Dialect.Sfrun("-mca", "btl", "self,vader", "-n", "2", Dialect.OpenMpiExample("hello"));
        Assert.True(hello.ExitCode == 0, hello.Err);
    }

    [Fact]
    public async Task Genv_NAME_is_VALUE_as_hydra()
    {
        var ours = await Dialect.Sfrun("-genv", "FOO=a=b", "-n", "2", "sh", "-c", "echo $FOO");
        var hydra = await Dialect.Hydra("-genv", "FOO=a=b", "-n", "2", "sh", "-c", "echo $FOO");
        Assert.Equal(["a=b", "a=b"], Dialect.Sorted(ours));
        Assert.Equal(Dialect.Sorted(hydra), Dialect.Sorted(ours));
    }

    [Fact]
    public async Task Daily_Open_MPI_flags_are_accepted_and_mapping_sets_ranks_per_host()
    {
        var r = await Dialect.Sfrun("--oversubscribe", "--allow-run-as-root", "-q", "--use-hwthread-cpus", "--prefix", "/usr",
            "--map-by", "ppr:2:node", "--rank-by", "slot", "-n", "2", "sh", "-c", "echo $MPI_LOCALNRANKS");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(["2", "2"], Dialect.Sorted(r));
    }

    [Fact]
    public async Task Display_map_lists_every_rank()
    {
        var r = await Dialect.Sfrun("--display-map", "--display-allocation", "-n", "2", "true");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("ALLOCATED NODES", r.Out);
        Assert.Contains("JOB MAP", r.Out);
        Assert.Contains("Process rank: 1 Bound: N/A", r.Out);
    }

    [Fact]
    public async Task Stdin_goes_to_the_rank_asked_for()
    {
        var r = await CommandRun.RunAsync(Repo.Sfrun, ["--stdin", "1", "-n", "2", "sh", "-c", "echo $PMI_RANK $(cat)"], stdin: "hi\n"u8.ToArray());
        Assert.Equal(["0", "1 hi"], Dialect.Sorted(r));
    }

    [Fact]
    public async Task Hydras_launchers_run_and_unknown_ones_are_one_line_errors()
    {
        Assert.Equal(0, (await Dialect.Sfrun("-launcher", "fork", "-iface", "lo", "-usize", "4", "-n", "1", "true")).ExitCode);
        // ssh with every rank on this host starts no ssh, as hydra's.
        Assert.Equal(0, (await Dialect.Sfrun("-launcher", "ssh", "-n", "1", "true")).ExitCode);
        var lsf = await Dialect.Sfrun("-launcher", "lsf", "-n", "1", "true");
        Assert.Equal(2, lsf.ExitCode);
        Assert.Single(lsf.Err.Trim().Split('\n'));
        Assert.Contains("ssh, slurm, fork, manual", lsf.Err);
        var info = await Dialect.Sfrun("-info");
        Assert.Equal(0, info.ExitCode);
        Assert.Contains("Launchers available", info.Out);
    }
}
