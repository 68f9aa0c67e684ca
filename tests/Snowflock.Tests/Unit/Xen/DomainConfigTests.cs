using Snowflock.Engine.Engines.Xen.Internal;
using Xunit;

namespace Snowflock.Tests.Unit.Xen;

[Trait("Area", "unit")]
public sealed class DomainConfigTests
{
    private static readonly DomainConfig Warm = new("w1", "/var/lib/snowflock/kernel/vmlinux-6.1.0-56-amd64",
        "/var/lib/snowflock/images/ab12.cpio.gz", "console=hvc0 quiet", 256, 1, "00:16:3e:12:3f:ff", "xenbr0");

    [Fact]
    public void A_rendered_configuration_reads_back_as_itself()
    {
        Assert.Equal(Warm, DomainConfig.Parse(Warm.Render()));
    }

    [Fact]
    public void Program_comments_and_blank_lines_are_not_part_of_it()
    {
        var text = "# snowflock-program = /usr/bin/app\n\n" + Warm.Render();
        Assert.Equal(Warm, DomainConfig.Parse(text));
    }

    [Fact]
    public void A_configuration_that_lacks_a_field_is_not_one_of_ours()
    {
        foreach (var field in new[] { "name", "kernel", "ramdisk", "extra", "memory", "vcpus", "vif" })
        {
            var text = string.Join('\n', Warm.Render().Split('\n').Where(l => !l.StartsWith(field + " ", StringComparison.Ordinal)));
            Assert.Null(DomainConfig.Parse(text));
        }
        Assert.Null(DomainConfig.Parse("memory = lots\n" + Warm.Render().Replace("memory = 256", "")));
    }

    [Fact]
    public void A_clone_differs_from_its_master_only_in_name_and_mac()
    {
        var clone = Warm.ForClone("sf-1a-1", "00:16:3e:00:00:01");
        Assert.Equal(Warm with { Name = "sf-1a-1", Mac = "00:16:3e:00:00:01" }, clone);
        Assert.Contains("vif = [ \"mac=00:16:3e:00:00:01,bridge=xenbr0\" ]", clone.Render());
    }
}
