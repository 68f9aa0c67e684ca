using Snowflock.Tests.Integration.Hosts.Support;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Hosts;

/// <summary>The test bed itself is real: ssh, Slurm and MPICH's own ssh launcher work across its
/// fake hosts, and its leftover check sees what a job leaves. These are the baselines the sfrun
/// multi-host tests compare against.</summary>
[Collection(TestBedCollection.Name)]
[Trait("Area", "scaleout")]
public sealed class TestBedTests(TestBed bed)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Ssh_from_head_logs_in_on_h2_with_strict_host_keys()
    {
        Assert.Equal("head h1 h2 h3 h4", string.Join(' ', bed.Hosts));
        Assert.Equal("10.250.77.12", bed.AddressOf("h2"));

        var local = await bed.RunOnAsync(TestBed.Head, "hostname", timeout: Bound);
        Assert.Equal("head", local.Out.Trim());

        // The hosts' ssh_config says BatchMode and StrictHostKeyChecking: a prompt would fail this.
        var r = await bed.RunOnAsync(TestBed.Head, "ssh", ["h2", "hostname; ip -o -4 addr show dev eth0"], timeout: Bound);
        Assert.True(r.ExitCode == 0, $"ssh h2 failed ({r.ExitCode}): {r.Err}");
        Assert.Equal("h2", r.OutLines[0]);
        Assert.Contains(bed.AddressOf("h2") + "/24", r.OutLines[1]);
        Assert.Empty(await bed.LeftoversAsync());
    }

    [Fact]
    public async Task Srun_on_head_runs_on_the_four_nodes_and_16_ranks_fit()
    {
        var r = await bed.RunOnAsync(TestBed.Head, "srun", ["-N", "4", "hostname"], timeout: Bound);
        Assert.True(r.ExitCode == 0, $"srun failed ({r.ExitCode}): {r.Err}");
        Assert.Equal(["h1", "h2", "h3", "h4"], r.OutLines.Order(StringComparer.Ordinal));

        var wide = await bed.RunOnAsync(TestBed.Head, "srun", ["-N", "4", "-n", "16", "hostname"], timeout: Bound);
        Assert.True(wide.ExitCode == 0, $"srun -n 16 failed ({wide.ExitCode}): {wide.Err}");
        Assert.Equal(["h1 4", "h2 4", "h3 4", "h4 4"],
            wide.OutLines.GroupBy(l => l).Select(g => $"{g.Key} {g.Count()}").Order(StringComparer.Ordinal));
        Assert.Empty(await bed.LeftoversAsync());
    }

    [Fact]
    public async Task Hydra_over_ssh_runs_cpi_on_h1_and_h2()
    {
        var tag = Leaks.NewTag();
        string[] launch = ["-launcher", "ssh", "-hosts", "h1,h2", .. Leaks.TagArgs(tag), "-n", "4"];

        var where = await bed.RunOnAsync(TestBed.Head, Repo.Hydra, [.. launch, "hostname"], timeout: Bound);
        Assert.True(where.ExitCode == 0, $"mpiexec.hydra hostname failed ({where.ExitCode}): {where.Err}");
        Assert.Equal(["h1", "h1", "h2", "h2"], where.OutLines.Order(StringComparer.Ordinal));

        var r = await bed.RunOnAsync(TestBed.Head, Repo.Hydra, [.. launch, Repo.Example("cpi")], timeout: Bound);
        Assert.True(r.ExitCode == 0, $"mpiexec.hydra cpi failed ({r.ExitCode}): {r.Err}");
        Assert.Contains("pi is approximately 3.14159", r.Out);
        Assert.Contains("(4 processes", r.Out);
        Assert.Empty(await bed.LeftoversAsync(tag));
    }

    [Fact]
    public async Task Leftovers_are_seen_per_host_and_gone_once_removed()
    {
        var tag = Leaks.NewTag();
        // A detached process on h3 that outlives its ssh session, and a file in h3's own /dev/shm.
        var plant = await bed.RunOnAsync(TestBed.Head, "ssh",
            ["h3", $"SFRUN_TEST_TAG={tag} setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $!; touch /dev/shm/{tag}"], timeout: Bound);
        Assert.True(plant.ExitCode == 0, $"ssh h3 failed ({plant.ExitCode}): {plant.Err}");
        var pid = int.Parse(plant.OutLines[0].Trim());
        try
        {
            var left = await bed.LeftoversAsync(tag, grace: TimeSpan.Zero);
            Assert.Contains(left, l => l.StartsWith($"h3 process {pid} sleep 60", StringComparison.Ordinal));
            Assert.Contains($"h3 file /dev/shm/{tag}", left);
            Assert.Contains(left, l => l.StartsWith($"any process {pid} ", StringComparison.Ordinal));
            // /dev/shm is each host's own: the file is on h3 only, not on the machine nor on h2.
            Assert.False(File.Exists($"/dev/shm/{tag}"));
            Assert.DoesNotContain(left, l => l.StartsWith("h2 ", StringComparison.Ordinal));
        }
        finally
        {
            Posix.Kill(pid, 9);
            await bed.RunOnAsync("h3", "rm", ["-f", $"/dev/shm/{tag}"], timeout: Bound);
        }
        Assert.Empty(await bed.LeftoversAsync(tag));
    }
}
