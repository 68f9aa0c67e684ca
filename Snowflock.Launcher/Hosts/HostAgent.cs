using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using NLog;
using Snowflock.Engine;
using Snowflock.Engine.Engines.Process;
using Snowflock.Engine.Guest.Internal;
using Snowflock.Launcher.Internal.Hosts;
using Snowflock.Mpi.Pmi.Internal;

namespace Snowflock.Launcher.Hosts;

/// <summary>
/// <c>sfrun agent</c>: the one process per host of a multi-host job. It dials the head, answers
/// its challenge with the job's secret (read from the environment or the first line of stdin,
/// never argv), takes its share of the job, forks the host's ranks from warm masters of its own
/// (the process engine), and then relays each rank's stdio, signals and exit. Its ranks' PMI_FDs
/// end in the host's <see cref="PmiHostProxy"/>, which answers puts and gets on the host and
/// sends one barrier message per host (stream 0); the rest of each rank's PMI goes to the head's
/// PMI server unchanged on the rank's own stream. When the head's connection ends —
/// QUIT, or the head killed — the agent kills its ranks, ends its engine and exits.
/// </summary>
public static class HostAgent
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Launcher.Agent");

    /// <summary>Runs the agent to its end; returns its exit code.</summary>
    /// <param name="head">The head's <c>HOST:PORT</c>.</param>
    /// <param name="index">This host's index in the plan (ssh, fork); null: found by name (srun).</param>
    public static async Task<int> RunAsync(string head, int? index, TextReader stdin, TextWriter stderr, CancellationToken ct)
    {
        var secret = Environment.GetEnvironmentVariable(AgentHandshake.SecretVariable);
        Environment.SetEnvironmentVariable(AgentHandshake.SecretVariable, null); // no rank inherits it
        if (string.IsNullOrEmpty(secret))
            secret = (await stdin.ReadLineAsync(ct).ConfigureAwait(false))?.Trim();
        if (string.IsNullOrEmpty(secret))
        {
            stderr.WriteLine($"sfrun agent: no job secret ({AgentHandshake.SecretVariable} or the first line of stdin); the agent is started by sfrun, not by hand");
            return 2;
        }
        var colon = head.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(head.AsSpan(colon + 1), out var port) || port is <= 0 or > 65535)
        {
            stderr.WriteLine($"sfrun agent: --head {head}: expected HOST:PORT");
            return 2;
        }
        var host = Environment.GetEnvironmentVariable("SLURMD_NODENAME") is { Length: > 0 } node ? node : System.Net.Dns.GetHostName();
        Socket socket;
        try
        {
            socket = await DialAsync(head[..colon], port, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or TimeoutException)
        {
            stderr.WriteLine($"sfrun agent on {host}: cannot reach the head at {head}: {e.Message}");
            return 1;
        }
        await using var stream = new NetworkStream(socket, ownsSocket: true);
        var challenge = await AgentFrame.ReadOneAsync(stream, ct).ConfigureAwait(false);
        if (challenge is not { Header.Type: AgentFrameType.Challenge } c)
        {
            stderr.WriteLine($"sfrun agent on {host}: {head} is not an sfrun head");
            return 1;
        }
        await stream.WriteAsync(AgentFrame.Encode(AgentFrameType.Hello, 0,
            AgentHandshake.Hello(host, index, AgentHandshake.Proof(secret, c.Payload))), ct).ConfigureAwait(false);
        await using var session = new Session(stream, host);
        await session.RunAsync(ct).ConfigureAwait(false);
        return 0;
    }

    private static async Task<Socket> DialAsync(string host, int port, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var s = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await s.ConnectAsync(host, port, ct).ConfigureAwait(false);
                return s;
            }
            // Refused means nothing listens there: the head listens before it starts any agent, so
            // it has given up on the job (another host failed) and this agent must not linger.
            catch (SocketException e) when (e.SocketErrorCode != SocketError.ConnectionRefused && DateTime.UtcNow < deadline)
            {
                s.Dispose();
                await Task.Delay(200, ct).ConfigureAwait(false);
            }
            catch
            {
                s.Dispose();
                throw;
            }
        }
    }

    /// <summary>One head connection: a single reader of the head's frames, writers under one gate.</summary>
    private sealed class Session(NetworkStream stream, string host) : IAsyncDisposable
    {
        private readonly SemaphoreSlim _writeGate = new(1, 1);
        private readonly ConcurrentDictionary<ushort, IRankProcess> _ranks = new();
        private readonly ConcurrentDictionary<ushort, PmiHostProxy.Rank> _pmi = new();
        private PmiHostProxy? _proxy;
        private readonly List<Task> _relays = [];
        private readonly CancellationTokenSource _stop = new();
        private ProcessEngine? _engine;
        private IReadOnlyList<IClone> _clones = [];

        public async Task RunAsync(CancellationToken ct)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _stop.Token);
            var reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 2 * AgentFrame.MaxPayload));
            try
            {
                while (true)
                {
                    var result = await reader.ReadAsync(linked.Token).ConfigureAwait(false);
                    var buffer = result.Buffer;
                    while (AgentFrame.TryRead(ref buffer, out var header, out var payload))
                        if (!await DispatchAsync(header, payload.ToArray(), linked.Token).ConfigureAwait(false))
                            return;
                    reader.AdvanceTo(buffer.Start, buffer.End);
                    if (result.IsCompleted)
                        return;
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or AgentProtocolException or ObjectDisposedException)
            {
                Log.ForDebugEvent().Message("agent on {Host}: head connection ended: {Error}", host, e.Message).Property("EventName", "AgentHeadGone").Log();
            }
            finally
            {
                await reader.CompleteAsync().ConfigureAwait(false);
            }
        }

        /// <summary>False when the head said QUIT.</summary>
        private async ValueTask<bool> DispatchAsync(AgentFrameHeader header, byte[] payload, CancellationToken ct)
        {
            switch (header.Type)
            {
                case AgentFrameType.Job:
                    await PrepareAsync(AgentJob.Decode(payload), ct).ConfigureAwait(false);
                    break;
                case AgentFrameType.Start:
                    _ = StartAsync(header.Channel, payload, ct);
                    break;
                case AgentFrameType.Stdin when _ranks.TryGetValue(header.Channel, out var rank):
                    try
                    {
                        if (payload.Length == 0)
                            rank.StandardInput.Dispose();
                        else
                            await rank.StandardInput.WriteAsync(payload, ct).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is IOException or ObjectDisposedException)
                    {
                        // The rank closed its stdin or ended: what is left goes nowhere, as with a pipe.
                    }
                    break;
                case AgentFrameType.Signal when _ranks.TryGetValue(header.Channel, out var rank) && payload.Length == 4:
                    rank.Signal((int)BinaryPrimitives.ReadUInt32LittleEndian(payload));
                    break;
                case AgentFrameType.PmiData when header.Channel == 0:
                    if (_proxy is not null && payload.Length > 0)
                        await _proxy.FromHeadAsync(payload, ct).ConfigureAwait(false);
                    break;
                case AgentFrameType.PmiData when _pmi.TryGetValue((ushort)(header.Channel - 1), out var pmi):
                    try
                    {
                        if (payload.Length == 0)
                            pmi.Socket.Shutdown(SocketShutdown.Send);
                        else
                            await pmi.WriteAsync(payload, ct).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is SocketException or ObjectDisposedException)
                    {
                    }
                    break;
                case AgentFrameType.Quit:
                    return false;
            }
            return true;
        }

        private async Task PrepareAsync(AgentJob job, CancellationToken ct)
        {
            try
            {
                // The head's environment, as hydra's proxies take it: the warm masters load the
                // program's libraries with the user's LD_LIBRARY_PATH, not sshd's.
                foreach (var (k, v) in job.Environment)
                    if (k != AgentHandshake.SecretVariable)
                        Environment.SetEnvironmentVariable(k, v);
                _proxy = new PmiHostProxy(job.Ranks, (bytes, token) => SendChunkedAsync(AgentFrameType.PmiData, 0, bytes, token));
                _engine = new ProcessEngine();
                var localJob = $"{Environment.ProcessId}-{Random.Shared.Next(0x10000):x4}";
                await _engine.PrepareAsync(new WarmMasterSpec(localJob, job.Executables) { Warm = job.Warm }, ct).ConfigureAwait(false);
                _clones = job.Ranks > 0 ? await _engine.CloneAsync(job.Ranks, ct).ConfigureAwait(false) : [];
                Log.ForDebugEvent().Message("agent on {Host}: job {JobId} ready, {Ranks} ranks", host, job.JobId, job.Ranks)
                    .Property("EventName", "AgentReady").Log();
                await SendAsync(AgentFrameType.IdentityAck, 0, Encoding.UTF8.GetBytes("ready"), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                await SendAsync(AgentFrameType.Error, 0, Encoding.UTF8.GetBytes(e.Message), ct).ConfigureAwait(false);
            }
        }

        private async Task StartAsync(ushort slot, byte[] payload, CancellationToken ct)
        {
            Socket? rankEnd = null;
            try
            {
                var start = ParseStart(payload);
                if (slot >= _clones.Count)
                    throw new RankStartException($"slot {slot} is beyond this host's {_clones.Count} ranks");
                (var mine, rankEnd) = SocketPair.Open();
                var appnum = start.Environment.TryGetValue("MPI_APPNUM", out var a) && int.TryParse(a, out var n) ? n : 0;
                var pmiRank = new PmiHostProxy.Rank(start.Rank, appnum, mine,
                    (bytes, token) => SendChunkedAsync(AgentFrameType.PmiData, (ushort)(slot + 1), bytes, token));
                _pmi[slot] = pmiRank;
                lock (_relays)
                    _relays.Add(ServePmiAsync(slot, pmiRank, ct));
                var process = await _clones[slot].StartRankAsync(start with { PmiSocket = rankEnd }, ct).ConfigureAwait(false);
                _ranks[slot] = process;
                var pid = new byte[4];
                BinaryPrimitives.WriteUInt32LittleEndian(pid, (uint)(process.HostPid ?? 0));
                await SendAsync(AgentFrameType.Started, slot, pid, ct).ConfigureAwait(false);
                var output = Task.WhenAll(PumpAsync(process.StandardOutput, AgentFrameType.Stdout, slot, ct),
                    PumpAsync(process.StandardError, AgentFrameType.Stderr, slot, ct));
                var exit = await process.Exited.ConfigureAwait(false);
                // The rank's output is all sent before its exit, as the guest agent does.
                await Task.WhenAny(output, Task.Delay(TimeSpan.FromSeconds(5), ct)).ConfigureAwait(false);
                var status = new byte[8];
                BinaryPrimitives.WriteUInt32LittleEndian(status, (uint)exit.ExitCode);
                BinaryPrimitives.WriteUInt32LittleEndian(status.AsSpan(4), (uint)(exit.Signal ?? 0));
                await SendAsync(AgentFrameType.Exit, slot, status, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is RankStartException or SocketException or IOException or ProgramNotFoundException)
            {
                await SendAsync(AgentFrameType.Error, slot, Encoding.UTF8.GetBytes(e.Message), ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                rankEnd?.Dispose();
            }
        }

        private static RankStart ParseStart(byte[] payload)
        {
            var parts = Encoding.UTF8.GetString(payload).Split('\0');
            if (parts.Length < 2)
                throw new RankStartException("START without an executable and a working directory");
            var args = parts.Skip(2).Where(p => p.StartsWith('A')).Select(p => p[1..]).ToList();
            var env = new Dictionary<string, string>();
            foreach (var p in parts.Skip(2).Where(p => p.StartsWith('E')))
                if (p.IndexOf('=') is var eq and > 1)
                    env[p[1..eq]] = p[(eq + 1)..];
            var rank = env.TryGetValue("PMI_RANK", out var r) && int.TryParse(r, out var n) ? n : 0;
            return new RankStart(rank, parts[0], args, env, parts[1]);
        }

        /// <summary>The rank's PMI through the host's proxy; its stream to the head (slot + 1)
        /// ends when the rank closes its PMI_FD.</summary>
        private async Task ServePmiAsync(ushort slot, PmiHostProxy.Rank rank, CancellationToken ct)
        {
            await _proxy!.ServeAsync(rank, ct).ConfigureAwait(false);
            await SendAsync(AgentFrameType.PmiData, (ushort)(slot + 1), ReadOnlyMemory<byte>.Empty, CancellationToken.None).ConfigureAwait(false);
        }

        private async Task SendChunkedAsync(AgentFrameType type, ushort channel, ReadOnlyMemory<byte> bytes, CancellationToken ct)
        {
            for (var at = 0; at < bytes.Length; at += AgentFrame.MaxPayload)
                await SendAsync(type, channel, bytes.Slice(at, Math.Min(AgentFrame.MaxPayload, bytes.Length - at)), ct).ConfigureAwait(false);
        }

        private async Task PumpAsync(Stream from, AgentFrameType type, ushort slot, CancellationToken ct)
        {
            var buffer = new byte[AgentFrame.MaxPayload];
            try
            {
                int n;
                while ((n = await from.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                    await SendAsync(type, slot, buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
            {
            }
            await SendAsync(type, slot, ReadOnlyMemory<byte>.Empty, CancellationToken.None).ConfigureAwait(false);
        }

        private async Task SendAsync(AgentFrameType type, ushort channel, ReadOnlyMemory<byte> payload, CancellationToken ct)
        {
            var frame = AgentFrame.Encode(type, channel, payload.Span);
            await _writeGate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                // Waits while the head reads slowly: backpressure reaches the rank through its pipe.
                await stream.WriteAsync(frame, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or OperationCanceledException)
            {
                // The head is gone: the reader sees it too and the session ends.
                _stop.Cancel();
            }
            finally
            {
                _writeGate.Release();
            }
        }

        /// <summary>Kills every rank and ends the engine (masters, cgroup, folders).</summary>
        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            foreach (var rank in _ranks.Values)
                rank.Signal(Signals.SIGKILL);
            if (_engine is not null)
                await _engine.TeardownAsync(CancellationToken.None).ConfigureAwait(false);
            foreach (var s in _pmi.Values)
                s.Socket.Dispose();
            foreach (var rank in _ranks.Values)
                await rank.DisposeAsync().ConfigureAwait(false);
            _stop.Dispose();
        }
    }
}
