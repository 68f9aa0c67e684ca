using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Snowflock.Engine;
using Snowflock.Engine.Guest.Internal;
using Snowflock.Mpi.Pmi;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Vm;

/// <summary>
/// The guest agent (native/agent/sfagent) and the host side of its control channel
/// (<see cref="AgentChannel"/>), without a VM: the real agent runs as a local process in a network
/// namespace of its own (so its loopback is not the host's, as in a guest) and serves its channel
/// over a unix socket. Every VM engine runs ranks through exactly this code.
/// </summary>
[Trait("Engine", "qemu")]
[Trait("Area", "integration")]
public sealed class GuestAgentTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    private sealed class LocalAgent : IAsyncDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("sfagent").FullName;
        private readonly Process _process;
        public AgentChannel Channel { get; }

        private LocalAgent(Process process, AgentChannel channel)
        {
            _process = process;
            Channel = channel;
        }

        public static async Task<LocalAgent> StartAsync()
        {
            var dir = Directory.CreateTempSubdirectory("sfagent").FullName;
            var path = Path.Combine(dir, "ctl.sock");
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen(1);
            var agent = Path.Combine(Repo.Root, "native", "build", "sfagent");
            var process = Process.Start(new ProcessStartInfo("/usr/bin/unshare", ["--net", "--", agent, "--loopback-up", "--channel-unix=" + path])
            {
                RedirectStandardError = true,
                UseShellExecute = false,
            })!;
            using var cts = new CancellationTokenSource(Bound);
            var socket = await listener.AcceptAsync(cts.Token);
            Directory.Delete(dir, recursive: true);
            return new LocalAgent(process, new AgentChannel(new NetworkStream(socket, ownsSocket: true), "local-agent", IPAddress.Loopback));
        }

        public async ValueTask DisposeAsync()
        {
            await Channel.QuitAsync(CancellationToken.None);
            using var cts = new CancellationTokenSource(Bound);
            await _process.WaitForExitAsync(cts.Token);
            await Channel.DisposeAsync();
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static RankStart Shell(int rank, string script, IReadOnlyDictionary<string, string>? env = null) =>
        new(rank, "/bin/sh", ["-c", script], env ?? new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin" }, "/");

    private static async Task<string> ReadAllAsync(Stream s)
    {
        using var reader = new StreamReader(s);
        return await reader.ReadToEndAsync();
    }

    [Fact]
    public async Task Hello_then_a_rank_with_its_output_streams_and_exit_code()
    {
        await using var agent = await LocalAgent.StartAsync();
        using var cts = new CancellationTokenSource(Bound);
        Assert.Equal("snowflock-agent 1\n", await agent.Channel.PingAsync(TimeSpan.FromMilliseconds(200), cts.Token));
        var rank = await agent.Channel.StartRankAsync(0, Shell(0, "echo out; echo err >&2; exit 3"), cts.Token);
        var output = ReadAllAsync(rank.StandardOutput);
        var errors = ReadAllAsync(rank.StandardError);
        Assert.Equal(new RankExit(3, null), await rank.Exited.WaitAsync(cts.Token));
        Assert.Equal("out\n", await output);
        Assert.Equal("err\n", await errors);
    }

    [Fact]
    public async Task Stdin_is_delivered_and_closed()
    {
        await using var agent = await LocalAgent.StartAsync();
        using var cts = new CancellationTokenSource(Bound);
        var rank = await agent.Channel.StartRankAsync(0, Shell(0, "wc -c"), cts.Token);
        var output = ReadAllAsync(rank.StandardOutput);
        var big = new byte[200_000];
        Array.Fill(big, (byte)'x');
        await rank.StandardInput.WriteAsync(big, cts.Token);
        rank.StandardInput.Dispose();
        Assert.Equal(new RankExit(0, null), await rank.Exited.WaitAsync(cts.Token));
        Assert.Equal("200000", (await output).Trim());
    }

    [Fact]
    public async Task A_signal_reaches_the_rank_and_its_death_is_reported()
    {
        await using var agent = await LocalAgent.StartAsync();
        using var cts = new CancellationTokenSource(Bound);
        var rank = await agent.Channel.StartRankAsync(3, Shell(3, "echo up; exec sleep 100"), cts.Token);
        using var reader = new StreamReader(rank.StandardOutput);
        Assert.Equal("up", await reader.ReadLineAsync(cts.Token));
        rank.Signal(15);
        Assert.Equal(new RankExit(0, 15), await rank.Exited.WaitAsync(cts.Token));
    }

    [Fact]
    public async Task A_program_that_cannot_start_is_a_RankStartException_naming_it()
    {
        await using var agent = await LocalAgent.StartAsync();
        using var cts = new CancellationTokenSource(Bound);
        var e = await Assert.ThrowsAsync<RankStartException>(() => agent.Channel.StartRankAsync(0,
            new RankStart(0, "/nonexistent/app", [], new Dictionary<string, string>(), "/"), cts.Token));
        Assert.Contains("cannot start /nonexistent/app: exec: No such file or directory", e.Message);
    }

    /// <summary>A real MPICH rank finds sfrun's PMI server through the agent's relay: it dials
    /// PMI_PORT on its own loopback (another namespace than the server's) and completes MPI_Init and
    /// MPI_Finalize over frames.</summary>
    [Fact]
    public async Task An_MPICH_rank_reaches_the_PMI_server_through_the_relay()
    {
        await using var agent = await LocalAgent.StartAsync();
        using var cts = new CancellationTokenSource(Bound);
        await using var pmi = new Pmi1Server(PmiJobLayout.SingleBlock("kvs_relay", [0]));
        pmi.Start(IPAddress.Loopback);
        var env = new Dictionary<string, string>(RankEnvironment.For("10.0.0.1", pmi.LocalEndPoint.Port, 0, 1, 0, 1, 0))
        {
            ["PATH"] = "/usr/bin:/bin",
        };
        var rank = await agent.Channel.StartRankAsync(0, new RankStart(0, Repo.Example("cpi"), ["1000"], env, "/"), cts.Token);
        var output = ReadAllAsync(rank.StandardOutput);
        var errors = ReadAllAsync(rank.StandardError);
        Assert.Equal(new RankExit(0, null), await rank.Exited.WaitAsync(cts.Token));
        Assert.StartsWith("pi is approximately", await output);
        Assert.Equal("", await errors);
        var events = new List<PmiEvent>();
        while (pmi.Events.TryRead(out var ev))
            events.Add(ev);
        Assert.Contains(new PmiRankInitialized(0), events);
        Assert.Contains(new PmiRankFinalized(0), events);
    }
}
