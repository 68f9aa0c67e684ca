using Snowflock.Launcher;
using Snowflock.Launcher.Placement;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed class PlacementTests
{
    [Theory]
    [InlineData("node01", new[] { "node01" })]
    [InlineData("a,b", new[] { "a", "b" })]
    [InlineData("node[01-04,07]", new[] { "node01", "node02", "node03", "node04", "node07" })]
    [InlineData("gpu[1-2],cpu[8-10]", new[] { "gpu1", "gpu2", "cpu8", "cpu9", "cpu10" })]
    [InlineData("n[098-101].cluster", new[] { "n098.cluster", "n099.cluster", "n100.cluster", "n101.cluster" })]
    public void Slurm_host_lists_expand_like_scontrol(string list, string[] hosts) =>
        Assert.Equal(hosts, SlurmHostList.Expand(list));

    [Theory]
    [InlineData("node[04-01]")]
    [InlineData("node[1-x]")]
    [InlineData("node[1-2")]
    public void Bad_Slurm_host_lists_are_refused(string list) =>
        Assert.Throws<PlacementException>(() => SlurmHostList.Expand(list));

    [Theory]
    [InlineData("2(x3),1", new[] { 2, 2, 2, 1 })]
    [InlineData("4", new[] { 4 })]
    [InlineData("1,3(x2)", new[] { 1, 3, 3 })]
    public void Slurm_task_counts_expand(string counts, int[] expected) =>
        Assert.Equal(expected, SlurmHostList.ExpandCounts(counts));

    [Fact]
    public void Host_files_accept_hydra_and_Open_MPI_forms_and_comments()
    {
        var hosts = HostFile.Parse(["# cluster", "a", "b:4", "", "c slots=2 max_slots=8  # fat node", "a:2"], "test");
        Assert.Equal([new HostSlots("a", 3), new HostSlots("b", 4), new HostSlots("c", 2)], hosts);
    }

    [Theory]
    [InlineData("a:0")]
    [InlineData("a:x")]
    [InlineData("a slots=")]
    [InlineData("a cores=4")]
    [InlineData("bad/host")]
    public void Bad_host_file_lines_name_the_line(string line)
    {
        var e = Assert.Throws<PlacementException>(() => HostFile.Parse(["ok", line], "hosts.txt"));
        Assert.Contains("hosts.txt line 2", e.Message);
    }

    [Fact]
    public void An_empty_host_file_is_an_error() =>
        Assert.Throws<PlacementException>(() => HostFile.Parse(["# nothing"], "f"));

    private static Func<string, string?> Env(params (string, string)[] vars) => name => vars.FirstOrDefault(v => v.Item1 == name).Item2;

    [Fact]
    public void The_allocation_comes_from_hosts_then_host_file_then_Slurm_then_PBS_then_this_host()
    {
        var slurm = Env(("SLURM_JOB_NODELIST", "n[1-2]"), ("SLURM_TASKS_PER_NODE", "3,1"), ("PBS_NODEFILE", "/nonexistent"));
        Assert.Equal("-hosts", Allocation.Resolve("x:2", null, null, slurm).Source);
        var a = Allocation.Resolve(null, null, null, slurm);
        Assert.Equal([new HostSlots("n1", 3), new HostSlots("n2", 1)], a.Hosts);
        Assert.True(a.Explicit);
        var local = Allocation.Resolve(null, null, null, Env());
        Assert.False(local.Explicit);
        Assert.Equal("localhost", Assert.Single(local.Hosts).Host);
    }

    [Fact]
    public void PBS_node_files_list_one_line_per_slot()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(file, ["n1", "n1", "n2"]);
            var a = Allocation.Resolve(null, null, null, Env(("PBS_NODEFILE", file)));
            Assert.Equal([new HostSlots("n1", 2), new HostSlots("n2", 1)], a.Hosts);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Ranks_fill_each_hosts_slots_then_wrap_and_ppn_overrides_slots()
    {
        var a = Allocation.Resolve("a:2,b:1", null, null, Env());
        Assert.Equal(["a", "a", "b", "a", "a"], a.HostOfRanks(5));
        var ppn = Allocation.Resolve("a:2,b:1", null, 3, Env());
        Assert.Equal(["a", "a", "a", "b", "b", "b"], ppn.HostOfRanks(6));
    }

    [Fact]
    public void SLURM_TASKS_PER_NODE_must_match_the_node_list() =>
        Assert.Throws<PlacementException>(() => Allocation.Resolve(null, null, null,
            Env(("SLURM_JOB_NODELIST", "n[1-3]"), ("SLURM_TASKS_PER_NODE", "2(x2)"))));

    [Theory]
    [InlineData("localhost", true)]
    [InlineData("127.0.0.1", true)]
    [InlineData("surely-not-this-host.example", false)]
    public void Local_host_names_are_recognised(string host, bool local) => Assert.Equal(local, Allocation.IsLocal(host));

    [Fact]
    public void This_hosts_own_name_is_local() => Assert.True(Allocation.IsLocal(System.Net.Dns.GetHostName()));
}
