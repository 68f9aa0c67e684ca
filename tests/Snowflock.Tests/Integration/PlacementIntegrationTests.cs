using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>Host files, -hosts, -ppn, Slurm and PBS allocations and config files decide how many
/// ranks run and where, as with mpiexec.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class PlacementIntegrationTests
{
    private static string[] Sorted(CommandResult r) => [.. r.OutLines.Order(StringComparer.Ordinal)];
    private static string[] Hellos(int n) => [.. Enumerable.Range(0, n).Select(i => $"hello from rank {i} of {n}").Order(StringComparer.Ordinal)];

    [Fact]
    public async Task Without_np_a_host_file_gives_one_rank_per_slot_like_hydra()
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllLinesAsync(file, ["localhost:3"]);
            var sf = await CommandRun.SfrunAsync("-f", file, Repo.Example("hello"));
            var hy = await CommandRun.RunAsync(Repo.Hydra, ["-f", file, Repo.Example("hello")]);
            Assert.Equal(0, sf.ExitCode);
            Assert.Equal(Sorted(hy), Sorted(sf));
            Assert.Equal(Hellos(3), Sorted(sf));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Hosts_and_ppn_set_the_rank_count()
    {
        Assert.Equal(Hellos(2), Sorted(await CommandRun.SfrunAsync("-hosts", "localhost:2", Repo.Example("hello"))));
        Assert.Equal(Hellos(4), Sorted(await CommandRun.SfrunAsync("-hosts", "localhost", "-ppn", "4", Repo.Example("hello"))));
        Assert.Equal(Hellos(1), Sorted(await CommandRun.SfrunAsync(Repo.Example("hello"))));
    }

    [Fact]
    public async Task Inside_a_one_node_Slurm_allocation_sfrun_runs_the_allocated_tasks()
    {
        var r = await CommandRun.RunAsync(Repo.Sfrun, [Repo.Example("hello")], env: new Dictionary<string, string>
        {
            ["SLURM_JOB_NODELIST"] = System.Net.Dns.GetHostName(),
            ["SLURM_TASKS_PER_NODE"] = "5",
        });
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(Hellos(5), Sorted(r));
    }

    [Fact]
    public async Task Inside_a_PBS_allocation_sfrun_reads_the_node_file()
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllLinesAsync(file, ["localhost", "localhost"]);
            var r = await CommandRun.RunAsync(Repo.Sfrun, [Repo.Example("hello")], env: new Dictionary<string, string> { ["PBS_NODEFILE"] = file });
            Assert.Equal(Hellos(2), Sorted(r));
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>An allocation of hosts that do not exist (no Slurm job id, so ssh reaches them, as
    /// hydra's choice): one line naming a host and why, exit 1 — not a hang and not a stack.</summary>
    [Fact]
    public async Task Ranks_placed_on_hosts_that_cannot_be_reached_are_one_line_naming_the_host()
    {
        var r = await CommandRun.RunAsync(Repo.Sfrun, [Repo.Example("hello")], env: new Dictionary<string, string>
        {
            ["SLURM_JOB_NODELIST"] = "nosuchnode[01-02]",
            ["SLURM_TASKS_PER_NODE"] = "2(x2)",
        });
        Assert.Equal(1, r.ExitCode);
        var line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Matches(@"^sfrun: host nosuchnode0[12]: ssh failed: .*nosuchnode0[12]", line);
    }

    [Fact]
    public async Task A_bad_host_file_is_one_line_naming_the_line()
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllLinesAsync(file, ["localhost:2", "localhost:many"]);
            var r = await CommandRun.SfrunAsync("-f", file, Repo.Example("hello"));
            Assert.Equal(1, r.ExitCode);
            Assert.Equal($"sfrun: host file {file} line 2: slot count 'many' is not a positive number", r.Err.Trim());
            var missing = await CommandRun.SfrunAsync("-f", "/no/such/hostfile", Repo.Example("hello"));
            Assert.Equal(1, missing.ExitCode);
            Assert.StartsWith("sfrun: host file /no/such/hostfile:", missing.Err);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_config_file_runs_MPMD_blocks_in_one_world_like_hydra()
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllLinesAsync(file, ["# one world, two blocks", $"-n 1 {Repo.Example("hello")}", $"-n 2 {Repo.Example("hello")}"]);
            var sf = await CommandRun.SfrunAsync("-configfile", file);
            var hy = await CommandRun.RunAsync(Repo.Hydra, ["-configfile", file]);
            Assert.Equal(0, sf.ExitCode);
            Assert.Equal(Sorted(hy), Sorted(sf));
            Assert.Equal(Hellos(3), Sorted(sf));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData("slurm.sbatch", "SLURM_JOB_NODELIST")]
    [InlineData("pbs.qsub", "PBS_NODEFILE")]
    public async Task The_example_batch_scripts_run_in_a_generated_allocation(string script, string variable)
    {
        var nodeFile = Path.GetTempFileName();
        try
        {
            await File.WriteAllLinesAsync(nodeFile, Enumerable.Repeat(System.Net.Dns.GetHostName(), 8));
            var env = new Dictionary<string, string>
            {
                ["PATH"] = Path.GetDirectoryName(Repo.Sfrun) + ":" + Environment.GetEnvironmentVariable("PATH"),
                [variable] = variable == "PBS_NODEFILE" ? nodeFile : System.Net.Dns.GetHostName(),
            };
            if (variable == "SLURM_JOB_NODELIST")
                env["SLURM_TASKS_PER_NODE"] = "8";
            var r = await CommandRun.RunAsync("/bin/bash", [Path.Combine(Repo.Root, "examples", "batch", script)], env: env);
            Assert.True(r.ExitCode == 0, r.Err);
            Assert.Contains("(8 processes, 1000000 intervals)", r.Out);
        }
        finally
        {
            File.Delete(nodeFile);
        }
    }
}
