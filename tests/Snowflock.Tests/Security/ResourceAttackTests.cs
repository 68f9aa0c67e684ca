using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Snowflock.Launcher.Internal;
using Snowflock.Mpi.Pmi;
using Snowflock.Tests.Integration.Support;
using Snowflock.Tests.Security.Support;

namespace Snowflock.Tests.Security;

/// <summary>
/// Attacks on what sfrun has a finite amount of (issue 13, items 4 and 7): fds and memory. A
/// connection flood against the PMI listener (idle connections, random bytes, endless lines),
/// a rank's output into a slow reader, a rank filling the key-value space. Each must cost sfrun a
/// bounded number of fds and bytes, and the job must go on or fail with a clear message.
/// Alone, after the parallel tests: a flood of 10,000 connections from the host's address (and
/// the fds it costs this process for a moment) must not starve other tests' jobs of ports or
/// fds, and the fd and memory figures measured here must be this test's alone.
/// </summary>
[Trait("Area", "security")]
[Trait("Engine", "process")]
[Collection(SerialCollection.Name)]
public sealed class ResourceAttackTests(SecondUser attacker) : IClassFixture<SecondUser>
{
    private static int OpenFds(int pid) => Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length;

    private static long RssKiB(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        return 0;
    }

    /// <summary>The flood: CONNS connections from the host's own address, a third idle
    /// (slowloris), a third random bytes, a third an endless line; all held open for HOLD seconds.</summary>
    internal const string Flood = """
        import socket, os, random, resource, time
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        port = int(os.environ['PORT']); eth = os.environ['ETH']; n = int(os.environ['CONNS'])
        socks = []; failed = 0; t0 = time.time()
        for i in range(n):
            try:
                s = socket.socket(); s.setblocking(False); s.bind((eth, 0))
                try: s.connect(('127.0.0.1', port))
                except BlockingIOError: pass
                socks.append(s)
            except OSError:
                failed += 1
                for old in socks[:100]: old.close()
                socks = socks[100:]
        time.sleep(0.5)
        for i, s in enumerate(socks):
            try:
                if i % 3 == 1: s.send(os.urandom(512))
                elif i % 3 == 2: s.send(b'cmd=put kvsname=x key=k value=' + b'A' * 3000)
            except OSError: pass
        print('opened', len(socks), 'failed', failed, 'in', round(time.time() - t0, 2), flush=True)
        time.sleep(float(os.environ['HOLD']))
        """;

    [Fact]
    public async Task Ten_thousand_hostile_connections_cost_the_PMI_server_bounded_fds_and_memory_and_a_rank_still_gets_in()
    {
        var check = new PmiPeerCheck(1);
        await using var server = new Pmi1Server(PmiJobLayout.SingleBlock("kvs_flood", [0]) with { Admission = check.Admit });
        server.Start(IPAddress.Loopback);
        var self = Environment.ProcessId;
        GC.Collect();
        var (fds0, rss0) = (OpenFds(self), RssKiB(self));
        await using var flood = attacker.StartPython(Flood, new Dictionary<string, string>
        {
            ["PORT"] = server.LocalEndPoint.Port.ToString(), ["ETH"] = PmiAttackTests.HostAddress(), ["CONNS"] = "10000", ["HOLD"] = "6",
        });
        await flood.WaitForLinesAsync("opened", 1, TimeSpan.FromSeconds(90));
        var (maxFds, maxRss) = (0, 0L);
        for (var i = 0; i < 20; i++)
        {
            maxFds = Math.Max(maxFds, OpenFds(self) - fds0);
            maxRss = Math.Max(maxRss, RssKiB(self) - rss0);
            await Task.Delay(100);
        }

        // While the flood holds its connections, a rank (a connection of this process) is served.
        using var rank = new TcpClient();
        await rank.ConnectAsync(IPAddress.Loopback, server.LocalEndPoint.Port);
        var stream = rank.GetStream();
        await stream.WriteAsync("cmd=initack pmiid=0\ncmd=init pmi_version=1 pmi_subversion=1\n"u8.ToArray());
        var reply = new StringBuilder();
        var buffer = new byte[1024];
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
            while (!reply.ToString().Contains("response_to_init"))
                reply.Append(Encoding.ASCII.GetString(buffer, 0, await stream.ReadAsync(buffer, cts.Token)));
        var result = await flood.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Contains("opened 10000", result.Out);
        Assert.True(server.OpenConnections <= 1, $"{server.OpenConnections} connections still open");
        // Refused at accept: each costs an fd for a moment, never one per hostile connection.
        Assert.True(maxFds < 300, $"+{maxFds} fds under the flood");
        Assert.True(maxRss < 64 * 1024, $"+{maxRss} KiB RSS under the flood");
        Console.WriteLine($"flood of 10000: +{maxFds} fds, +{maxRss / 1024} MiB RSS at most ({result.Out.Trim()})");
    }

    [Fact]
    public async Task Idle_connections_of_sfruns_own_user_are_capped_and_closed_when_they_never_identify()
    {
        // Strangers of another uid are refused outright; this is what is left: connections the
        // kernel admits (sfrun's own uid) that then stall without a full line (slowloris).
        await using var server = new Pmi1Server(PmiJobLayout.SingleBlock("kvs_slow", [0]) with
            { MaxConnections = 50, IdentifyWithin = TimeSpan.FromSeconds(2) });
        server.Start(IPAddress.Loopback);
        var clients = new List<Socket>();
        try
        {
            for (var i = 0; i < 200; i++)
            {
                var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await c.ConnectAsync(IPAddress.Loopback, server.LocalEndPoint.Port);
                await c.SendAsync("cmd=init"u8.ToArray()); // never a newline
                clients.Add(c);
            }
            await Task.Delay(500);
            Assert.InRange(server.OpenConnections, 1, 50);
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (server.OpenConnections > 0 && DateTime.UtcNow < deadline)
                await Task.Delay(100);
            Assert.Equal(0, server.OpenConnections);
        }
        finally
        {
            foreach (var c in clients)
                c.Dispose();
        }
    }

    /// <summary>A rank writes far faster than sfrun's stdout is read: sfrun must hold a bounded
    /// amount (the rank waits in write()), and every byte still arrives, in order.</summary>
    [Fact]
    public async Task Output_into_a_slow_reader_keeps_sfruns_memory_bounded_and_loses_nothing()
    {
        const long total = 96L << 20;
        const long rate = 16L << 20; // bytes per second the reader takes
        var psi = new ProcessStartInfo(Repo.Sfrun)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-np", "1", "/bin/sh", "-c", $"yes 0123456789012345678901234567890123456789012345678901234567890123456789 | head -c {total}" })
            psi.ArgumentList.Add(a);
        using var sfrun = Process.Start(psi)!;
        var errors = sfrun.StandardError.ReadToEndAsync();
        var peak = 0L;
        var got = 0L;
        var buffer = new byte[64 * 1024];
        var clock = Stopwatch.StartNew();
        var source = sfrun.StandardOutput.BaseStream;
        int n;
        while ((n = await source.ReadAsync(buffer)) > 0)
        {
            got += n;
            var due = TimeSpan.FromSeconds((double)got / rate) - clock.Elapsed;
            if (due > TimeSpan.Zero)
                await Task.Delay(due);
            try
            {
                peak = Math.Max(peak, RssKiB(sfrun.Id));
            }
            catch (IOException)
            {
            }
        }
        await sfrun.WaitForExitAsync();
        Assert.True(sfrun.ExitCode == 0, await errors);
        Assert.Equal(total, got);
        Assert.True(peak < 64 * 1024, $"sfrun's RSS peaked at {peak} KiB");
        Console.WriteLine($"{total >> 20} MiB of output at {rate >> 20} MiB/s: sfrun peak RSS {peak / 1024} MiB");
    }

    [Fact]
    public async Task A_rank_that_fills_the_KVS_beyond_its_budget_fails_the_job_with_a_clear_message()
    {
        var tag = Leaks.NewTag();
        const string rank = """
            import os, socket, time
            s = socket.socket(fileno=int(os.environ['PMI_FD']))
            f = s.makefile('rwb', buffering=0)
            f.write(b'cmd=init pmi_version=1 pmi_subversion=1\n'); f.readline()
            f.write(b'cmd=get_my_kvsname\n'); name = f.readline().split(b'kvsname=')[1].strip()
            for i in range(100000):
                f.write(b'cmd=put kvsname=' + name + b' key=k%d value=' % i + b'v' * 1000 + b'\n')
                if b'rc=0' not in f.readline(): break
            time.sleep(30)
            """;
        var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "1", "/usr/bin/python3", "-c", rank]);
        Assert.Equal(255, r.ExitCode);
        Assert.Contains("rank 0 has used up its key-value space budget of 1048576 bytes", r.Err);
        await Leaks.AssertNoneAsync(tag);
    }
}
