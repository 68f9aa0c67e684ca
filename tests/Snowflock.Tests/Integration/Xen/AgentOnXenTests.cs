using System.Net;
using System.Net.Sockets;
using System.Text;
using Snowflock.Engine.Engines.Xen.Internal;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Xen;

/// <summary>
/// The guest agent (native/build/sfagent) as /init of real Xen clones: the master waits for a
/// control address in xenstore, is checkpointed there, and each clone restored from it reads its
/// own identity, connects to this machine over dom0's bridge, proves itself with its token, and
/// runs a program whose output and exit status come back as frames.
/// </summary>
[Trait("Area", "integration")]
[Trait("Engine", "xen")]
[Collection(XenHostCollection.Name)]
public sealed class AgentOnXenTests(XenHost host)
{
    [Fact]
    public async Task Clones_connect_with_their_token_take_their_identity_and_run_a_program()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        var ct = cts.Token;
        var xl = XenGuests.Xl(host);
        var tag = Guid.NewGuid().ToString("N")[..6];
        var master = $"sftest-{tag}";
        var dir = $"/var/lib/snowflock/test-{tag}";
        var checkpoint = $"/var/lib/xen/save/{master}.chk";
        string[] clones = [$"{master}-c1", $"{master}-c2"];
        var tokens = clones.Select(_ => Guid.NewGuid().ToString("N")).ToArray();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var image = Path.Combine(Path.GetTempPath(), $"sftest-xen-agent-{tag}.gz");
        var peers = new List<AgentPeer>();
        try
        {
            var built = await CommandRun.RunAsync(Path.Combine(Repo.Root, "scripts", "xen-host"),
                ["agent-image", Path.Combine(Repo.Root, "native", "build", "sfagent"), image]);
            Assert.True(built.ExitCode == 0, built.Err);
            await using (var file = File.OpenRead(image))
                await xl.WriteFileAsync($"{dir}/initrd.gz", file, ct);
            var config = new DomainConfig(master, host.GuestKernel, $"{dir}/initrd.gz", "console=hvc0 quiet", 128, 1,
                MacAddress.For(0x6a, 0), "xenbr0");
            await XenGuests.UploadAsync(xl, $"{dir}/{master}.cfg", config.Render());
            await xl.CreateAsync($"{dir}/{master}.cfg", paused: false, ct);
            await XenGuests.WaitForConsoleAsync(host, master, "waiting for a control address");
            await xl.CheckpointAsync(master, checkpoint, ct);
            // The checkpoint is all the clones need; the master would only compete for the CPU.
            await xl.DestroyAsync(master, ct);

            for (var i = 0; i < clones.Length; i++)
            {
                var cfg = $"{dir}/{clones[i]}.cfg";
                await XenGuests.UploadAsync(xl, cfg, config.ForClone(clones[i], MacAddress.For(0x6a, i + 1)).Render());
                await xl.RestoreCloneAsync(clones[i], cfg, checkpoint, ct);
                var at = $"/local/domain/{await xl.DomIdAsync(clones[i], ct)}/data/snowflock";
                await xl.XenstoreWriteAsync(new Dictionary<string, string>
                {
                    [$"{at}/clone"] = (i + 1).ToString(),
                    [$"{at}/hostname"] = $"clone{i + 1}",
                    [$"{at}/ip"] = $"10.0.2.{111 + i}/24",
                    [$"{at}/mac"] = MacAddress.For(0x6a, i + 1),
                    [$"{at}/gateway"] = "10.0.2.2",
                    [$"{at}/token"] = tokens[i],
                    [$"{at}/control"] = $"10.0.2.2:{port}",
                }, ct);
                await xl.UnpauseAsync(clones[i], ct);
            }

            // Each clone proves who it is with the first frame; the order of arrival is free.
            var byClone = new AgentPeer?[clones.Length];
            for (var n = 0; n < clones.Length; n++)
            {
                var peer = new AgentPeer(await listener.AcceptTcpClientAsync(ct));
                peers.Add(peer);
                var hello = await peer.ReadAsync(ct);
                Assert.Equal(AgentPeer.Hello, hello.Type);
                Assert.StartsWith("snowflock-agent 1\n", hello.Text);
                var i = Array.FindIndex(tokens, t => hello.Text.Contains($"token={t}\n"));
                Assert.True(i >= 0, $"unknown token in '{hello.Text}'");
                Assert.Null(byClone[i]);
                byClone[i] = peer;
            }

            for (var i = 0; i < clones.Length; i++)
            {
                var peer = byClone[i]!;
                await peer.SendAsync(AgentPeer.Ping, 0, [], ct);
                Assert.Equal(AgentPeer.Hello, (await peer.ReadAsync(ct)).Type);
                await peer.SendTextAsync(AgentPeer.Identity, $"clone={i + 1}\nhostname=clone{i + 1}\nip=10.0.2.{111 + i}/24\nmac={MacAddress.For(0x6a, i + 1)}\n", ct);
                var ack = await peer.ReadUntilAsync(AgentPeer.IdentityAck, ct);
                Assert.Contains($"hostname=clone{i + 1}\n", ack.Frame.Text);
                Assert.Contains($"mac={MacAddress.For(0x6a, i + 1)}\n", ack.Frame.Text);

                await peer.StartAsync(5, "/bin/sh", "/", ["-c", "echo \"$GREETING from $(hostname) $(ip -4 -o addr show eth0 | awk '{print $4}')\"; exit 3"],
                    ["PATH=/bin", "GREETING=hello"], ct);
                var exit = await peer.ReadUntilAsync(AgentPeer.Exit, ct);
                Assert.Equal(5, exit.Frame.Channel);
                Assert.Equal(3, BitConverter.ToInt32(exit.Frame.Payload, 0));
                Assert.Equal(0, BitConverter.ToInt32(exit.Frame.Payload, 4));
                Assert.Contains(exit.Before, f => f.Type == AgentPeer.Started && f.Channel == 5);
                var stdout = string.Concat(exit.Before.Where(f => f.Type == AgentPeer.Stdout && f.Channel == 5).Select(f => f.Text));
                Assert.Equal($"hello from clone{i + 1} 10.0.2.{111 + i}/24\n", stdout);
            }

            // QUIT powers the clone off; on_poweroff=destroy makes the domain go away by itself.
            foreach (var peer in byClone)
                await peer!.SendAsync(AgentPeer.Quit, 0, [], ct);
            var gone = await host.ExecAsync(
                $"for i in $(seq 1 300); do xl list {clones[0]} >/dev/null 2>&1 || xl list {clones[1]} >/dev/null 2>&1 || exit 0; sleep 0.2; done; xl list; exit 1");
            Assert.True(gone.ExitCode == 0, "clones still exist after QUIT: " + gone.Out);
        }
        finally
        {
            foreach (var peer in peers)
                peer.Dispose();
            foreach (var name in clones.Append(master))
                await xl.DestroyAsync(name, CancellationToken.None);
            await xl.RemoveFilesAsync([dir, checkpoint], CancellationToken.None);
            File.Delete(image);
        }
        await XenGuests.AssertDom0CleanAsync(host);
    }
}
