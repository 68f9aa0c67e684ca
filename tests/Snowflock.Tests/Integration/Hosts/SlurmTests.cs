using Snowflock.Tests.Integration.Hosts.Support;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Hosts;

/// <summary>
/// Issue #12 under the bed's real Slurm: a batch script that calls <c>sfrun</c> runs unchanged,
/// and inside an allocation sfrun gives what <c>srun --mpi=pmi2</c> gives for the same program —
/// the same output and the same exit code — and leaves nothing on any host.
/// </summary>
[Collection(TestBedCollection.Name)]
[Trait("Area", "scaleout")]
public sealed class SlurmTests(TestBed bed)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task An_sbatch_script_that_calls_sfrun_runs_on_its_nodes_unchanged()
    {
        var tag = Leaks.NewTag();
        // /var/tmp is one folder for every host (each /tmp is its own), so the batch host writes
        // where the head reads.
        var dir = Path.Combine("/var/tmp", $"sfrun-sbatch-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var script = Path.Combine(dir, "job.sh");
            await File.WriteAllTextAsync(script, $"""
                #!/bin/sh
                #SBATCH -N 3
                #SBATCH -n 6
                #SBATCH -o {dir}/out
                #SBATCH -e {dir}/err
                {Repo.Sfrun} {string.Join(' ', Leaks.TagArgs(tag))} /bin/sh -c 'echo $(hostname) rank=$PMI_RANK of $PMI_SIZE'
                {Repo.Sfrun} {string.Join(' ', Leaks.TagArgs(tag))} {Repo.Example("cpi")} 20000
                """);
            var r = await bed.RunOnAsync(TestBed.Head, "sbatch", ["--wait", "--quiet", script], timeout: Bound);
            var err = File.Exists(Path.Combine(dir, "err")) ? await File.ReadAllTextAsync(Path.Combine(dir, "err")) : "";
            Assert.True(r.ExitCode == 0, $"sbatch: {r.Err}{err}");
            var lines = (await File.ReadAllLinesAsync(Path.Combine(dir, "out"))).ToList();
            var ranks = lines.Where(l => l.Contains(" rank=", StringComparison.Ordinal)).ToList();
            Assert.Equal(6, ranks.Count);
            Assert.All(ranks, l => Assert.EndsWith(" of 6", l));
            Assert.Equal(3, ranks.Select(l => l.Split(' ')[0]).Distinct().Count());
            Assert.Single(lines, l => l.StartsWith("pi is approximately", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
        Assert.Empty(await bed.LeftoversAsync(tag));
    }

    [Theory]
    [InlineData("cpi")]
    [InlineData("exit3")]
    public async Task Inside_salloc_sfrun_gives_what_srun_mpi_pmi2_gives(string program)
    {
        var tag = Leaks.NewTag();
        string[] run = program == "cpi"
            ? [Repo.Example("cpi"), "20000"]
            : ["/bin/sh", "-c", "echo rank $PMI_RANK; [ $PMI_RANK = 2 ] && exit 3; exit 0"];
        var srun = await bed.RunOnAsync(TestBed.Head, "salloc", ["-N", "2", "-n", "4", "--quiet", "srun", "--mpi=pmi2", .. run], timeout: Bound);
        var sfrun = await bed.RunOnAsync(TestBed.Head, "salloc", ["-N", "2", "-n", "4", "--quiet", Repo.Sfrun, .. Leaks.TagArgs(tag), .. run],
            timeout: Bound);
        Assert.Equal(srun.ExitCode, sfrun.ExitCode);
        if (program == "cpi")
        {
            Assert.True(sfrun.ExitCode == 0, sfrun.Err);
            Assert.Equal(Cpi.PiLine(srun.Out), Cpi.PiLine(sfrun.Out));
        }
        else
        {
            Assert.Equal(3, sfrun.ExitCode);
            Assert.Equal(srun.OutLines.Order(StringComparer.Ordinal), sfrun.OutLines.Order(StringComparer.Ordinal));
        }
        Assert.Empty(await bed.LeftoversAsync(tag));
    }
}
