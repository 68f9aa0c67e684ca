using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Snowflock.Launcher.Internal;
using Snowflock.Mpi.Pmi;
using Snowflock.Tests.Integration.Support;
using Snowflock.Tests.Security.Support;

namespace Snowflock.Tests.Security;

/// <summary>
/// Another local user tries to take part in root's job through PMI (issue 13, item 1): it polls
/// the kernel's socket table for new listeners, binds a socket to the host's own non-loopback
/// address (which Linux lets connect to 127.0.0.1, and which the old peer check let through as
/// "not loopback") and claims each rank with <c>initack</c>, then reads the KVS and sends
/// <c>abort exitcode=42</c>. Before PMI_FD this claimed rank 0 of a plain job and made sfrun exit 42.
/// </summary>
/// <remarks>Runs alone: its attacker dials every new listener root opens on this machine, as a
/// real one would — also the control port of an <c>mpiexec.hydra</c> that a test running in
/// parallel compares with, which reads the attacker's "cmd=" as a proxy id and dies ("cannot find
/// proxy with ID 1029991779"). That is hydra's weakness, not a fault of the test that ran it.</remarks>
[Trait("Area", "security")]
[Trait("Engine", "process")]
[Collection(SerialCollection.Name)]
public sealed class PmiAttackTests(SecondUser attacker) : IClassFixture<SecondUser>
{
    /// <summary>The attack: every listener owned by root that appears while it runs, every rank.
    /// Prints what it got: CLAIMED (port, rank) pairs, KVS replies, and whether it sent an abort.</summary>
    internal const string ClaimRanks = """
        import socket, time, sys, os
        eth = os.environ['ETH']; deadline = time.time() + float(os.environ['SECONDS_'])
        ranks = int(os.environ.get('RANKS', '8'))
        def listeners():
            out = set()
            for t in ('/proc/net/tcp', '/proc/net/tcp6'):
                try: lines = open(t).read().splitlines()[1:]
                except OSError: continue
                for l in lines:
                    c = l.split()
                    if c[3] == '0A' and c[7] == '0': out.add(int(c[1].split(':')[1], 16))
            return out
        old = listeners(); tried = set(); claimed = []; kvs = []; aborted = False
        print('scanning', flush=True)
        while time.time() < deadline and not aborted:
            for port in sorted(listeners() - old - tried):
                tried.add(port)
                for rank in range(ranks):
                    try:
                        s = socket.socket(); s.settimeout(1.0)
                        s.bind((eth, 0)); s.connect(('127.0.0.1', port))
                        s.sendall(b'cmd=initack pmiid=%d\n' % rank)
                        r = s.recv(400)
                    except OSError:
                        continue
                    if b'cmd=initack' not in r: continue
                    claimed.append((port, rank))
                    s.sendall(b'cmd=get_my_kvsname\n'); time.sleep(0.1)
                    r2 = s.recv(2000).decode(errors='replace')
                    if 'kvsname=' in r2:
                        name = r2.split('kvsname=')[1].split()[0]
                        s.sendall(('cmd=get kvsname=%s key=PMI_process_mapping\n' % name).encode()); time.sleep(0.1)
                        kvs.append(s.recv(2000).decode(errors='replace').strip())
                    s.sendall(b'cmd=abort exitcode=42\n'); aborted = True; time.sleep(0.2)
                    break
            time.sleep(0.005)
        print('TRIED', len(tried)); print('CLAIMED', claimed); print('KVS', kvs); print('ABORTED', aborted)
        """;

    /// <summary>The host's first non-loopback IPv4 address (eth0's); loopback's 127.0.0.2 where
    /// there is none, which the old check treated as loopback, so the attack is then weaker.</summary>
    internal static string HostAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a))?.ToString() ?? "127.0.0.2";

    [Fact]
    public async Task A_second_user_cannot_claim_a_rank_read_the_KVS_or_abort_a_process_engine_job()
    {
        var tag = Leaks.NewTag();
        // Ranks that never speak PMI leave every rank free: the attacker's best case.
        await using var attack = attacker.StartPython(ClaimRanks, new Dictionary<string, string>
            { ["ETH"] = HostAddress(), ["SECONDS_"] = "8", ["RANKS"] = "4" });
        await attack.WaitForLinesAsync("scanning", 1, TimeSpan.FromSeconds(30));
        var job = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "4", "/bin/sleep", "5"]);
        var got = await attack.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(0, job.ExitCode);
        Assert.DoesNotContain("MPI_Abort", job.Err);
        Assert.Contains("CLAIMED []", got.Out);
        Assert.Contains("KVS []", got.Out);
        Assert.Contains("ABORTED False", got.Out);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task A_second_user_cannot_claim_a_rank_of_a_warm_or_cold_MPI_job_that_is_initializing()
    {
        // Real MPICH ranks, warm and cold, while the attacker polls: the job's exit and output stay its own.
        foreach (var warm in new[] { true, false })
        {
            var tag = Leaks.NewTag();
            await using var attack = attacker.StartPython(ClaimRanks, new Dictionary<string, string>
                { ["ETH"] = HostAddress(), ["SECONDS_"] = "6", ["RANKS"] = "4" });
            await attack.WaitForLinesAsync("scanning", 1, TimeSpan.FromSeconds(30));
            string[] mode = warm ? [] : ["--no-warm"];
            var job = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), .. mode, "-np", "4", Repo.Example("cpi"), "100000"]);
            var got = await attack.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.True(job.ExitCode == 0, job.Err);
            Assert.Contains("pi is approximately", job.Out);
            Assert.Contains("CLAIMED []", got.Out);
            await Leaks.AssertNoneAsync(tag);
        }
    }

    /// <summary>Where a listener must exist (VM guests' relays), the attack from eth0's address
    /// meets the kernel's word on who the peer is: refused at accept, nothing read, no rank bound.</summary>
    [Fact]
    public async Task A_second_user_dialling_the_TCP_listener_from_the_hosts_own_address_is_refused_at_accept()
    {
        var check = new PmiPeerCheck(2);
        await using var server = new Pmi1Server(PmiJobLayout.SingleBlock("kvs_attack", [0, 0]) with { Admission = check.Admit });
        server.Start(IPAddress.Loopback);
        var port = server.LocalEndPoint.Port;
        var got = await attacker.PythonAsync($$"""
            import socket
            replies = []
            for rank in range(2):
                s = socket.socket(); s.settimeout(5); s.bind(('{{HostAddress()}}', 0)); s.connect(('127.0.0.1', {{port}}))
                try:
                    s.sendall(b'cmd=initack pmiid=%d\ncmd=get kvsname=kvs_attack key=PMI_process_mapping\ncmd=abort exitcode=42\n' % rank)
                    replies.append(s.recv(400))
                except OSError as e:
                    replies.append(str(e).encode())
            print('ANSWERED', any(b'cmd=' in r for r in replies), replies)
            """);
        Assert.Contains("ANSWERED False", got.Out);

        // A connection of sfrun's own (what a VM relay is) is still served.
        using var own = new TcpClient();
        await own.ConnectAsync(IPAddress.Loopback, port);
        var stream = own.GetStream();
        await stream.WriteAsync("cmd=initack pmiid=0\n"u8.ToArray());
        var reply = new byte[256];
        var n = await stream.ReadAsync(reply).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.StartsWith("cmd=initack", System.Text.Encoding.ASCII.GetString(reply, 0, n));
        Assert.False(server.Events.TryRead(out var ev), $"unexpected event {ev}");
    }
}
