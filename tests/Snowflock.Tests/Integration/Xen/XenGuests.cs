using System.Text;
using Snowflock.Engine.Engines.Xen.Internal;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Xen;

/// <summary>What the Xen tests do to guests in the nested host's dom0.</summary>
internal static class XenGuests
{
    public static XlClient Xl(XenHost host) => new(Dom0Shell.OverSsh(XenHost.Destination, host.SshConfig));

    public static Task UploadAsync(XlClient xl, string path, string text) =>
        xl.WriteFileAsync(path, new MemoryStream(Encoding.UTF8.GetBytes(text)), CancellationToken.None);

    /// <summary>Waits until the domain's console (xenconsoled's log in dom0) shows <paramref name="text"/>.</summary>
    public static async Task WaitForConsoleAsync(XenHost host, string domain, string text)
    {
        var r = await host.ExecAsync(
            $"for i in $(seq 1 900); do grep -q '{text}' /var/log/xen/console/guest-{domain}.log 2>/dev/null && exit 0; sleep 0.2; done; " +
            $"tail -20 /var/log/xen/console/guest-{domain}.log; exit 1");
        Assert.True(r.ExitCode == 0, $"{domain} never printed {text}: {r.Out}{r.Err}");
    }

    /// <summary>Asserts that dom0 holds nothing of any test: only Domain-0, no checkpoint, no xl
    /// process, no vif.</summary>
    public static async Task AssertDom0CleanAsync(XenHost host)
    {
        var left = await Xl(host).ListAsync(CancellationToken.None);
        Assert.Equal(["Domain-0"], left.Select(d => d.Name));
        var leftovers = await host.ExecAsync("ls /var/lib/xen/save; pidof xl libxl-save-helper; ls /sys/class/net | grep '^vif'; true");
        Assert.Equal("", leftovers.Out.Trim());
    }
}
