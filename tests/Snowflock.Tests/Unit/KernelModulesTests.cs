using Snowflock.Engine.Guest;
using Snowflock.Engine.Guest.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>Load order from the host kernel's own modules.dep (Debian's linux-image-amd64), and the
/// rules on small made-up ones.</summary>
[Trait("Area", "unit")]
public sealed class KernelModulesTests
{
    [Fact]
    public void The_clone_devices_modules_load_after_what_they_need()
    {
        var kernel = HostKernel.FindNewest();
        var order = KernelModules.LoadOrder(["virtio_mmio", "virtio_console", "virtio_net"],
            File.ReadAllText(Path.Combine(kernel.ModulesDirectory, "modules.dep")),
            File.ReadAllText(Path.Combine(kernel.ModulesDirectory, "modules.builtin")))
            .Select(KernelModules.NameOf).ToList();

        Assert.Equal(order.Distinct().Count(), order.Count);
        Assert.Contains("virtio_mmio", order);
        Assert.Contains("virtio_net", order);
        Assert.Contains("virtio_console", order);
        void Before(string first, string then)
        {
            if (order.Contains(first))
                Assert.True(order.IndexOf(first) < order.IndexOf(then), $"{first} must load before {then}: {string.Join(' ', order)}");
        }
        Before("virtio_ring", "virtio");
        Before("virtio", "virtio_mmio");
        Before("virtio", "virtio_console");
        Before("failover", "net_failover");
        Before("net_failover", "virtio_net");
    }

    [Fact]
    public void Dependencies_come_first_builtins_are_skipped_and_dashes_equal_underscores()
    {
        const string dep = "kernel/c.ko: kernel/b.ko kernel/a.ko\nkernel/b.ko: kernel/a.ko\nkernel/a.ko:\nkernel/d-x.ko: kernel/a.ko kernel/e.ko\n";
        Assert.Equal(["kernel/a.ko", "kernel/b.ko", "kernel/c.ko"], KernelModules.LoadOrder(["c"], dep, ""));
        Assert.Equal(["kernel/a.ko", "kernel/d-x.ko"], KernelModules.LoadOrder(["d_x"], dep, "kernel/e.ko\n"));
        Assert.Empty(KernelModules.LoadOrder(["e"], dep, "kernel/e.ko\n"));
    }

    [Fact]
    public void A_missing_module_or_a_cycle_is_a_clear_error()
    {
        var missing = Assert.Throws<GuestImageException>(() => KernelModules.LoadOrder(["nope"], "kernel/a.ko:\n", ""));
        Assert.Contains("nope", missing.Message);
        var cycle = Assert.Throws<GuestImageException>(() => KernelModules.LoadOrder(["a"], "kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n", ""));
        Assert.Contains("cycle", cycle.Message);
    }
}
