using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Snowflock.Engine;
using Snowflock.Engine.Guest.Internal;
using Snowflock.Mpi.Pmi;
using Snowflock.Mpi.Pmi.Internal;

namespace Snowflock.Tests.Security;

/// <summary>
/// A compromised guest on the other end of its agent channel (issue 13, items 5 and 7): it asks
/// for relays to ports of its choosing on sfrun's loopback, for more relays than any rank needs,
/// and sends random and malformed frames. The host side must relay only to the job's PMI port, cap
/// relays per clone, and treat a bad frame as that clone's error — never fault its reader.
/// </summary>
[Trait("Area", "security")]
[Trait("Engine", "qemu")]
public sealed class AgentChannelAttackTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private static byte[] Frame(AgentFrameType type, ushort channel, ReadOnlySpan<byte> payload) => AgentFrame.Encode(type, channel, payload);

    private static byte[] Port(uint port)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, port);
        return b;
    }

    /// <summary>The guest's end: reads every frame the host sends (so the host never blocks on a
    /// full socket) and keeps the ones it may want to look at.</summary>
    private sealed class HostileGuest : IAsyncDisposable
    {
        private readonly Socket _socket;
        private readonly Task _drain;
        public readonly System.Collections.Concurrent.ConcurrentQueue<(AgentFrameType Type, ushort Channel, int Length)> Received = new();

        public HostileGuest(Socket socket)
        {
            _socket = socket;
            _drain = Task.Run(DrainAsync);
        }

        public Task SendAsync(byte[] frame) => _socket.SendAsync(frame, SocketFlags.None);

        /// <summary>Answers the host's START frames as an agent would: the rank is running.</summary>
        public bool AnswerStarts { get; set; }

        /// <summary>What it answers PING with (as an agent does, HELLO): an answer to a ping sent
        /// after a burst of frames shows the host's reader got through all of them.</summary>
        public string HelloText { get; set; } = "hello";

        private async Task DrainAsync()
        {
            var stream = new NetworkStream(_socket, ownsSocket: false);
            try
            {
                while (await AgentFrame.ReadOneAsync(stream, CancellationToken.None) is { } f)
                {
                    Received.Enqueue((f.Header.Type, f.Header.Channel, f.Header.Length));
                    if (f.Header.Type == AgentFrameType.Ping)
                        await SendAsync(Frame(AgentFrameType.Hello, 0, System.Text.Encoding.UTF8.GetBytes(HelloText)));
                    if (AnswerStarts && f.Header.Type == AgentFrameType.Start)
                        await SendAsync(Frame(AgentFrameType.Started, f.Header.Channel, Port(4242)));
                }
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            _socket.Dispose();
            await _drain;
        }
    }

    private static (AgentChannel Channel, HostileGuest Guest) Connect()
    {
        var (host, guest) = SocketPair.Open();
        return (new AgentChannel(new NetworkStream(host, ownsSocket: true), "hostile-vm", IPAddress.Loopback), new HostileGuest(guest));
    }

    private static int OpenFds() => Directory.GetFileSystemEntries("/proc/self/fd").Length;

    [Fact]
    public async Task PMI_OPEN_for_any_port_but_the_jobs_is_refused_and_the_channel_goes_on()
    {
        var (channel, guest) = Connect();
        await using var _ = channel;
        await using var __ = guest;
        await guest.SendAsync(Frame(AgentFrameType.PmiOpen, 1, Port(70000))); // faulted the reader before
        await guest.SendAsync(Frame(AgentFrameType.PmiOpen, 2, Port(22)));    // before any rank: nothing to relay to
        await guest.SendAsync(Frame(AgentFrameType.PmiOpen, 3, [1, 2]));       // short payload
        guest.HelloText = "still here";
        using var cts = new CancellationTokenSource(Bound);
        Assert.Equal("still here", await channel.PingAsync(TimeSpan.FromSeconds(1), cts.Token));
        Assert.False(channel.Closed.IsCompleted);
        // Each refused stream was closed at once (an empty PMI_DATA), none was relayed.
        var deadline = DateTime.UtcNow + Bound;
        while (guest.Received.Count(f => f.Type == AgentFrameType.PmiData && f.Length == 0) < 3 && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        Assert.Equal([1, 2, 3], guest.Received.Where(f => f.Type == AgentFrameType.PmiData).Select(f => (int)f.Channel).Order());
    }

    [Fact]
    public async Task A_guest_gets_relays_only_to_the_jobs_PMI_port_and_at_most_MaxRelays()
    {
        await using var pmi = new Pmi1Server(PmiJobLayout.SingleBlock("kvs_guest", [0]));
        pmi.Start(IPAddress.Loopback);
        using var other = new TcpListener(IPAddress.Loopback, 0); // a host service the guest must not reach
        other.Start();
        var (channel, guest) = Connect();
        await using var _ = channel;
        await using var __ = guest;
        guest.AnswerStarts = true;
        using var cts = new CancellationTokenSource(Bound);
        var env = new Dictionary<string, string>(RankEnvironment.For("10.0.0.1", pmi.LocalEndPoint.Port, 0, 1, 0, 1, 0));
        await channel.StartRankAsync(0, new RankStart(0, "/bin/app", [], env, "/"), cts.Token);

        var fds0 = OpenFds();
        await guest.SendAsync(Frame(AgentFrameType.PmiOpen, 5000, Port((uint)((IPEndPoint)other.LocalEndpoint).Port)));
        for (ushort s = 1; s <= 1000; s++)
            await guest.SendAsync(Frame(AgentFrameType.PmiOpen, s, Port((uint)pmi.LocalEndPoint.Port)));
        guest.HelloText = "done";
        Assert.Equal("done", await channel.PingAsync(TimeSpan.FromSeconds(1), cts.Token));
        var deadline = DateTime.UtcNow + Bound;
        while (pmi.OpenConnections < AgentChannel.MaxRelays && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        await Task.Delay(300);

        Assert.False(other.Pending(), "the guest reached another port on sfrun's loopback");
        Assert.Equal(AgentChannel.MaxRelays, pmi.OpenConnections);
        Assert.InRange(OpenFds() - fds0, 0, 3 * AgentChannel.MaxRelays + 20);
        Assert.False(channel.Closed.IsCompleted);
    }

    [Fact]
    public async Task Random_frames_do_not_fault_the_reader_and_a_huge_length_ends_only_this_channel()
    {
        var (channel, guest) = Connect();
        await using var _ = channel;
        await using var __ = guest;
        var random = new Random(13);
        for (var i = 0; i < 10_000; i++)
        {
            var payload = new byte[random.Next(0, 64)];
            random.NextBytes(payload);
            var type = (AgentFrameType)random.Next(0, 256);
            if (type is AgentFrameType.Hello or AgentFrameType.IdentityAck)
                continue;
            await guest.SendAsync(Frame(type, (ushort)random.Next(0, 65536), payload));
        }
        guest.HelloText = "survived";
        using var cts = new CancellationTokenSource(Bound);
        Assert.Equal("survived", await channel.PingAsync(TimeSpan.FromSeconds(1), cts.Token));
        // No rank was started, so no PMI_OPEN among them may have become a relay.
        Assert.DoesNotContain(guest.Received, f => f.Type == AgentFrameType.PmiData && f.Length > 0);

        // A length beyond the frame limit cannot be framed: the channel ends, cleanly.
        var huge = new byte[8];
        huge[0] = (byte)AgentFrameType.Stdout;
        BinaryPrimitives.WriteUInt32LittleEndian(huge.AsSpan(4), uint.MaxValue);
        await guest.SendAsync(huge);
        await channel.Closed.WaitAsync(Bound);
        Assert.True(channel.Closed.IsCompletedSuccessfully);
    }
}
