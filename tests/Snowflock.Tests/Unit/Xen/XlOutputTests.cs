using Snowflock.Engine.Engines.Xen.Internal;

namespace Snowflock.Tests.Unit.Xen;

/// <summary>xl's output as Xen 4.17 printed it (see <see cref="XlCaptures"/>), read by the one parser the engine has.</summary>
[Trait("Area", "unit")]
public sealed class XlOutputTests
{
    [Fact]
    public void List_of_a_host_without_guests_is_dom0_alone()
    {
        var d = Assert.Single(XlOutput.ParseList(XlCaptures.ListDom0Only));
        Assert.Equal(("Domain-0", 0, 1024, 2, "r-----"), (d.Name, d.Id, d.MemoryMiB, d.Vcpus, d.State));
        Assert.Equal(69.7, d.CpuSeconds, 3);
        Assert.False(d.Paused);
    }

    [Fact]
    public void List_shows_a_clone_restored_paused()
    {
        var list = XlOutput.ParseList(XlCaptures.ListWithPausedClone);
        Assert.Equal(["Domain-0", "ntest", "c1"], list.Select(d => d.Name));
        Assert.Equal([0, 2, 3], list.Select(d => d.Id));
        Assert.True(list[2].Paused);
        Assert.False(list[1].Paused);
        Assert.Equal(128, list[2].MemoryMiB);
        Assert.All(list, d => Assert.False(d.Crashed || d.Dying));
    }

    [Fact]
    public void List_flags_crashed_and_dying_domains()
    {
        var text = XlCaptures.ListDom0Only + "c2                                           7   128     1     ----c-       1.2\n"
                                            + "c3                                           8   128     1     -----d       0.9\n";
        var list = XlOutput.ParseList(text);
        Assert.True(list[1].Crashed);
        Assert.True(list[2].Dying);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Domain-0 0 1024 2 r----- 1.0\n")]
    [InlineData("Name ID Mem VCPUs State Time(s)\nDomain-0 0 1024 2 r----- \n")]
    [InlineData("Name ID Mem VCPUs State Time(s)\nDomain-0 x 1024 2 r----- 1.0\n")]
    [InlineData("Name ID Mem VCPUs State Time(s)\nDomain-0 0 1024 2 r--- 1.0\n")]
    [InlineData("Name ID Mem VCPUs State Time(s)\nDomain-0 0 1024 2 rxxxxx 1.0\n")]
    [InlineData("Name ID Mem VCPUs State Time(s)\nDomain-0 -1 1024 2 r----- 1.0\n")]
    public void List_refuses_what_xl_does_not_print(string text) =>
        Assert.Throws<FormatException>(() => XlOutput.ParseList(text));

    [Fact]
    public void Info_gives_version_memory_and_capabilities()
    {
        var info = XlOutput.ParseInfo(XlCaptures.Info);
        Assert.Equal("4.17.7", info["xen_version"]);
        Assert.Equal("4095", info["total_memory"]);
        Assert.Equal("2900", info["free_memory"]);
        Assert.Contains("pv", info["virt_caps"].Split(' '));
        Assert.Equal("", info["xen_changeset"]);
        Assert.StartsWith("console=com1", info["xen_commandline"]);
    }

    [Theory]
    [InlineData("")]
    [InlineData("host : x\n")]
    [InlineData("no colon here\n")]
    [InlineData("bad key! : 1\nxen_version : 4.17\n")]
    public void Info_refuses_what_xl_does_not_print(string text) =>
        Assert.Throws<FormatException>(() => XlOutput.ParseInfo(text));

    [Theory]
    [InlineData("2\n", 2)]
    [InlineData("0", 0)]
    [InlineData("  17 \n", 17)]
    public void DomId_is_one_number(string text, int id) => Assert.Equal(id, XlOutput.ParseDomId(text));

    [Theory]
    [InlineData("")]
    [InlineData("-1")]
    [InlineData("2 3")]
    [InlineData("99999999999")]
    [InlineData("32752")]
    public void DomId_refuses_anything_else(string text) => Assert.Throws<FormatException>(() => XlOutput.ParseDomId(text));

    [Fact]
    public void Failures_are_told_apart()
    {
        Assert.Equal(XlFailure.NoSuchDomain, XlOutput.Classify(1, XlCaptures.DomIdMissing));
        Assert.Equal(XlFailure.NoSuchDomain, XlOutput.Classify(1, XlCaptures.DestroyMissing));
        Assert.Equal(XlFailure.NameInUse, XlOutput.Classify(1, XlCaptures.RestoreNameInUse));
        Assert.Equal(XlFailure.NotImplemented, XlOutput.Classify(1, XlCaptures.ForkVmMissing));
        Assert.Equal(XlFailure.Crashed, XlOutput.Classify(139, "Segmentation fault\n"));
        Assert.Equal(XlFailure.Crashed, XlOutput.Classify(134, ""));
        // ssh's status when the remote command was killed by a signal: 255, nothing on stderr.
        Assert.Equal(XlFailure.Crashed, XlOutput.Classify(255, ""));
        // Seen under nested TCG: a hotplug script died of SIGSEGV while xl restore waited on it.
        Assert.Equal(XlFailure.Crashed, XlOutput.Classify(1, "/etc/xen/scripts/vif-bridge online [698] exited with error status 139\n"));
        // Seen with four restores at once: vif-bridge failed (not a crash); a restore tries again.
        Assert.Equal(XlFailure.HotplugFailed, XlOutput.Classify(1, "libxl: error: libxl_exec.c:117:libxl_report_child_exitstatus: "
            + "/etc/xen/scripts/vif-bridge online [7823] exited with error status 1\n"));
        Assert.Equal(XlFailure.HotplugFailed, XlOutput.Classify(3, "libxl: error: libxl_aoutils.c:539:hotplug_timeout: "
            + "killing execution of /etc/xen/scripts/vif-bridge online because of timeout\n"));
        Assert.Equal(XlFailure.Other, XlOutput.Classify(1, "something new\n"));
    }

    [Fact]
    public void Reason_is_libxl_first_error_message()
    {
        Assert.Equal("Domain with name \"c1\" already exists.", XlOutput.Reason(XlCaptures.RestoreNameInUse));
        Assert.Equal("nosuch is an invalid domain identifier (rc=-6)", XlOutput.Reason(XlCaptures.DestroyMissing));
        Assert.Equal("no message", XlOutput.Reason(""));
    }

    [Fact]
    public void Random_and_mutated_output_yields_a_value_or_a_FormatException()
    {
        var random = new Random(20261125);
        var seeds = new[] { XlCaptures.ListDom0Only, XlCaptures.ListWithPausedClone, XlCaptures.Info, "3\n" };
        const string alphabet = " \t\n:-rbpscd0123456789.NameIDDomain\0\u00e9";
        var parsed = 0;
        for (var i = 0; i < 20_000; i++)
        {
            var chars = seeds[random.Next(seeds.Length)].ToCharArray();
            var edits = random.Next(1, 6);
            for (var e = 0; e < edits && chars.Length > 0; e++)
                chars[random.Next(chars.Length)] = alphabet[random.Next(alphabet.Length)];
            var text = random.Next(10) == 0 ? new string(chars, 0, random.Next(chars.Length)) : new string(chars);
            parsed += Survives(() => XlOutput.ParseList(text)) + Survives(() => XlOutput.ParseInfo(text))
                      + Survives(() => XlOutput.ParseDomId(text));
            _ = XlOutput.Classify(random.Next(-1, 300), text);
            Assert.False(string.IsNullOrEmpty(XlOutput.Reason(text)));
        }
        Assert.InRange(parsed, 1, 3 * 20_000 - 1);
    }

    private static int Survives(Action parse)
    {
        try
        {
            parse();
            return 1;
        }
        catch (FormatException)
        {
            return 0;
        }
    }
}
