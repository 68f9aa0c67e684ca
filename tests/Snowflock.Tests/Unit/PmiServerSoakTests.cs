using System.Diagnostics;
using Snowflock.Mpi.Pmi;

namespace Snowflock.Tests.Unit;

/// <summary>The PMI server is the piece a long-lived sfrun (warm VMs) keeps for many jobs: run
/// hundreds of complete jobs through it in this process and check that nothing accumulates —
/// open file descriptors, threads, or managed memory.</summary>
[Trait("Area", "unit")]
[Collection(SerialCollection.Name)]
public sealed class PmiServerSoakTests
{
    private const int Jobs = 400, RanksPerJob = 4;

    private static int OpenFds() => Directory.GetFiles("/proc/self/fd").Length;

    private static async Task RunOneJobAsync(int job, CancellationToken ct)
    {
        await using var server = new Pmi1Server(PmiJobLayout.SingleBlock($"kvs_soak_{job}", new int[RanksPerJob]));
        server.Start(System.Net.IPAddress.Loopback);
        var clients = new PmiTestClient[RanksPerJob];
        for (var r = 0; r < RanksPerJob; r++)
            clients[r] = (await PmiTestClient.ConnectAsRankAsync(server.LocalEndPoint, r, ct)).Client;
        try
        {
            for (var r = 0; r < RanksPerJob; r++)
            {
                Assert.StartsWith("cmd=response_to_init", await clients[r].RequestAsync("cmd=init pmi_version=1 pmi_subversion=1", ct));
                Assert.Equal("cmd=put_result rc=0 msg=success",
                    await clients[r].RequestAsync($"cmd=put kvsname=kvs_soak_{job} key=card-{r} value={job:x}-{r}", ct));
                await clients[r].SendLineAsync("cmd=barrier_in", ct);
            }
            foreach (var c in clients)
                Assert.Equal("cmd=barrier_out", await c.ExpectLineAsync(ct));
            for (var r = 0; r < RanksPerJob; r++)
            {
                var peer = (r + 1) % RanksPerJob;
                Assert.Equal($"cmd=get_result rc=0 msg=success value={job:x}-{peer}",
                    await clients[r].RequestAsync($"cmd=get kvsname=kvs_soak_{job} key=card-{peer}", ct));
                Assert.Equal("cmd=finalize_ack", await clients[r].RequestAsync("cmd=finalize", ct));
            }
        }
        finally
        {
            foreach (var c in clients)
                await c.DisposeAsync();
        }
    }

    [Fact]
    public async Task Hundreds_of_jobs_leave_no_fds_threads_or_memory_behind()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        // Warm up so that lazily created runtime threads and pools are counted in the baseline.
        for (var j = 0; j < 20; j++)
            await RunOneJobAsync(j, cts.Token);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var fds = OpenFds();
        var threads = Process.GetCurrentProcess().Threads.Count;
        var memory = GC.GetTotalMemory(forceFullCollection: true);

        for (var j = 0; j < Jobs; j++)
            await RunOneJobAsync(j, cts.Token);

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        // Sockets close asynchronously; give the runtime a moment before counting.
        await Task.Delay(200);
        // A leak would grow with the 400 jobs (1,600 connections); the slack only absorbs the
        // runtime's own thread-pool and GC churn on a loaded 2-core machine.
        Assert.InRange(OpenFds(), 0, fds + 8);
        Assert.InRange(Process.GetCurrentProcess().Threads.Count, 0, threads + 24);
        Assert.InRange(GC.GetTotalMemory(forceFullCollection: true), 0, memory + 16 * 1024 * 1024);
    }
}
