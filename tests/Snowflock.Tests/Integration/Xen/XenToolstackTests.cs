using System.Net;
using System.Net.Sockets;
using Snowflock.Engine.Engines.Xen.Internal;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Xen;

/// <summary>
/// The xen engine's toolstack path against a real Xen 4.17 (the nested test host): xl through
/// ssh, a PV master with a vif on dom0's bridge, <c>xl save -c</c>, clones restored paused with
/// their own name and MAC, identity through xenstore, and clones reaching this machine over the
/// bridge, as ranks will reach sfrun. Afterwards nothing is left in dom0.
/// </summary>
[Trait("Area", "integration")]
[Trait("Engine", "xen")]
[Collection(XenHostCollection.Name)]
public sealed class XenToolstackTests(XenHost host)
{
    private XlClient Xl => XenGuests.Xl(host);

    [Fact]
    public async Task Dom0_boots_and_answers_xl_over_ssh()
    {
        Assert.InRange(host.BootSeconds, 1, 600);
        var info = await Xl.InfoAsync(CancellationToken.None);
        Assert.StartsWith("4.17", info["xen_version"]);
        Assert.Contains("pv", info["virt_caps"].Split(' '));
        var dom0 = Assert.Single(await Xl.ListAsync(CancellationToken.None));
        Assert.Equal(("Domain-0", 0), (dom0.Name, dom0.Id));
        // Debian builds Xen without mem_sharing: no fork-vm, so the engine must restore instead.
        Assert.False(await Xl.HasForkVmAsync(CancellationToken.None));
        Assert.Null(await Xl.FindAsync("sf-no-such-domain", CancellationToken.None));
    }

    [Fact]
    public async Task Xl_failures_name_their_cause()
    {
        var e = await Assert.ThrowsAsync<XlCommandException>(() => Xl.DomIdAsync("sf-no-such-domain", CancellationToken.None));
        Assert.Equal(XlFailure.NoSuchDomain, e.Failure);
        Assert.Contains("dom0 at xen-host", e.Message);
        await Xl.DestroyAsync("sf-no-such-domain", CancellationToken.None); // already gone is fine
    }

    [Fact]
    public async Task A_checkpointed_master_restores_into_clones_that_take_their_identity_from_xenstore()
    {
        var ct = CancellationToken.None;
        var xl = Xl;
        var tag = Guid.NewGuid().ToString("N")[..6];
        var master = $"sftest-{tag}";
        var dir = $"/var/lib/snowflock/test-{tag}";
        var checkpoint = $"/var/lib/xen/save/{master}.chk";
        string[] clones = [$"{master}-c1", $"{master}-c2"];
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var reports = CollectReportsAsync(listener, clones.Length);
        try
        {
            await using (var probe = File.OpenRead(host.ProbeInitrd))
                await xl.WriteFileAsync($"{dir}/initrd.gz", probe, ct);
            var config = new DomainConfig(master, host.GuestKernel, $"{dir}/initrd.gz", "console=hvc0 quiet", 128, 1,
                MacAddress.For(0x5f, 0), "xenbr0");
            await XenGuests.UploadAsync(xl, $"{dir}/{master}.cfg", config.Render());
            await xl.CreateAsync($"{dir}/{master}.cfg", paused: false, ct);
            await XenGuests.WaitForConsoleAsync(host, master, "SF-PROBE-WAITING");
            await xl.CheckpointAsync(master, checkpoint, ct);
            // The checkpoint is all the clones need; the master would only compete for the CPU.
            await xl.DestroyAsync(master, ct);

            for (var i = 0; i < clones.Length; i++)
            {
                var cfg = $"{dir}/{clones[i]}.cfg";
                await XenGuests.UploadAsync(xl, cfg, config.ForClone(clones[i], MacAddress.For(0x5f, i + 1)).Render());
                await xl.RestoreCloneAsync(clones[i], cfg, checkpoint, ct);
                var clone = await xl.FindAsync(clones[i], ct);
                Assert.NotNull(clone);
                Assert.True(clone.Paused, $"{clones[i]} should wait paused for its identity: {clone.State}");
                var at = $"/local/domain/{clone.Id}/data/snowflock";
                await xl.XenstoreWriteAsync(new Dictionary<string, string>
                {
                    [$"{at}/ip"] = $"10.0.2.{101 + i}/24",
                    [$"{at}/mac"] = MacAddress.For(0x5f, i + 1),
                    [$"{at}/gateway"] = "10.0.2.2",
                    [$"{at}/report"] = $"10.0.2.2:{port}",
                    [$"{at}/clone"] = (i + 1).ToString(),
                }, ct);
                await xl.UnpauseAsync(clones[i], ct);
            }

            var got = await reports.WaitAsync(TimeSpan.FromMinutes(3));
            var ids = (await xl.ListAsync(ct)).ToDictionary(d => d.Name, d => d.Id);
            Assert.Equal(
                [$"clone=1 ip=10.0.2.101 domid={ids[clones[0]]}", $"clone=2 ip=10.0.2.102 domid={ids[clones[1]]}"],
                got.Order());
        }
        finally
        {
            foreach (var name in clones.Append(master))
                await xl.DestroyAsync(name, ct);
            await xl.RemoveFilesAsync([dir, checkpoint], ct);
        }

        await XenGuests.AssertDom0CleanAsync(host);
    }

    private static async Task<List<string>> CollectReportsAsync(TcpListener listener, int count)
    {
        var lines = new List<string>();
        while (lines.Count < count)
        {
            using var client = await listener.AcceptTcpClientAsync();
            using var reader = new StreamReader(client.GetStream());
            if (await reader.ReadLineAsync() is { Length: > 0 } line)
                lines.Add(line);
        }
        return lines;
    }
}
