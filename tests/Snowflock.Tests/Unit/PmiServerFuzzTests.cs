using System.Text;
using Snowflock.Mpi.Pmi;

namespace Snowflock.Tests.Unit;

/// <summary>
/// The PMI server is a network service: feed a live server random and mutated MPICH transcripts
/// over real TCP, from identified ranks and from strangers, for a fixed budget, and check that it
/// never crashes, only ever reports events of its protocol, and still serves a well-behaved rank.
/// </summary>
[Trait("Area", "unit")]
public sealed class PmiServerFuzzTests
{
    /// <summary>Connections per run; each sends a whole mutated transcript.</summary>
    public const int Connections = 5000;

    private static byte[] Mutate(Random rng, string line)
    {
        var bytes = new List<byte>(Encoding.UTF8.GetBytes(line));
        var edits = rng.Next(0, 4);
        for (var i = 0; i < edits && bytes.Count > 0; i++)
        {
            var at = rng.Next(bytes.Count);
            switch (rng.Next(5))
            {
                case 0: bytes[at] ^= (byte)(1 << rng.Next(8)); break;
                case 1: bytes.RemoveAt(at); break;
                case 2: bytes.Insert(at, (byte)rng.Next(256)); break;
                case 3: bytes.InsertRange(at, Encoding.ASCII.GetBytes(new string('k', rng.Next(1, 5000)))); break;
                default: bytes.Insert(at, (byte)'\n'); break;
            }
        }
        bytes.Add((byte)'\n');
        return [.. bytes];
    }

    [Fact]
    public async Task Random_and_mutated_transcripts_never_break_the_server()
    {
        const int size = 64;
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var ct = cts.Token;
        await using var server = new Pmi1Server(PmiJobLayout.SingleBlock("kvs_fuzz_0", new int[size]));
        server.Start(System.Net.IPAddress.Loopback);
        var rng = new Random(20261125);
        var requests = MpichTranscript.Requests.Select(r => r.Replace("kvs_6091_0", "kvs_fuzz_0")).ToList();

        for (var c = 0; c < Connections; c++)
        {
            await using var client = await PmiTestClient.ConnectAsync(server.LocalEndPoint, ct);
            var payload = new List<byte>();
            // Half the connections identify as a (fresh) rank first, so the mutations reach the
            // command handlers and not only the initack gate.
            if (c % 2 == 0 && c / 2 < size - 1)
                payload.AddRange(Encoding.ASCII.GetBytes($"cmd=initack pmiid={c / 2}\n"));
            foreach (var line in requests)
                payload.AddRange(rng.Next(3) == 0 ? Mutate(rng, line) : Encoding.UTF8.GetBytes(line + "\n"));
            if (rng.Next(4) == 0)
                payload.AddRange(Enumerable.Range(0, rng.Next(1, 300)).Select(_ => (byte)rng.Next(256)));
            try
            {
                await client.SendAsync([.. payload], ct);
            }
            catch (IOException)
            {
                // The server may refuse and close first: that is one of the allowed outcomes.
            }
        }

        // The server still serves the one rank number no fuzzing connection claimed.
        var (good, handshake) = await PmiTestClient.ConnectAsRankAsync(server.LocalEndPoint, size - 1, ct);
        await using (good)
        {
            Assert.Equal("cmd=initack", handshake[0]);
            Assert.Equal("cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024", await good.RequestAsync("cmd=get_maxes", ct));
            Assert.StartsWith("cmd=get_result rc=0 msg=success value=(vector,(0,1,64))",
                await good.RequestAsync("cmd=get kvsname=kvs_fuzz_0 key=PMI_process_mapping", ct));
        }

        // Every event is one of the protocol's, about a rank of the job.
        while (server.Events.TryRead(out var e))
            Assert.True(e is PmiRankInitialized or PmiBarrierCompleted or PmiRankFinalized or PmiAbortRequested or PmiProtocolViolation
                && e.Rank is >= -1 and < size, e.ToString());
    }
}
