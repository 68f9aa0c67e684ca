using System.Buffers;
using System.Net.Sockets;
using NLog;

namespace Snowflock.Mpi.Pmi.Internal;

/// <summary>
/// The PMI side of one host's agent, as hydra's proxy: the host's ranks speak PMI-1 to it over
/// their PMI_FD, and it answers what it can on the host, so the head sees one message per host
/// where it would see one per rank. A put is answered at once and held; when the last of the
/// host's ranks enters a barrier, the held puts and one barrier message go to the head together
/// (<see cref="PmiDispatcher.AttachHost"/> describes that stream); the head's barrier end brings
/// every pair put in the epoch, which then answers gets here; the job's constants (maxes, kvs
/// name, universe size, the rank's appnum) are answered here too. Everything else — init,
/// finalize, abort, a get of a key not seen here — goes on the rank's own stream to the head
/// unchanged, so the head still sees each rank's life cycle in order.
/// </summary>
internal sealed class PmiHostProxy
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Mpi.Pmi");
    private static readonly byte[] BarrierOut = PmiWire.Format("barrier_out");

    /// <summary>Held puts are sent ahead of the barrier once they reach this many bytes.</summary>
    private const int MaxHeldBytes = 256 * 1024;

    private readonly int _localRanks;
    private readonly Func<ReadOnlyMemory<byte>, CancellationToken, Task> _send;
    private readonly SemaphoreSlim _sendGate = new(1, 1);
    private readonly Lock _gate = new();
    private readonly Dictionary<string, string> _cache = new(StringComparer.Ordinal);
    private readonly MemoryStream _held = new();
    private readonly HashSet<Rank> _inBarrier = [];
    private readonly List<byte> _fromHead = [];
    private string? _kvsName;
    private string? _size;
    private readonly TaskCompletionSource _greeted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Done once the head's hello arrived: from then on puts and gets stay on the host
    /// (before it they go to the head, which answers the same).</summary>
    public Task Greeted => _greeted.Task;

    /// <param name="localRanks">How many ranks this host runs: the barrier goes on once all are in it.</param>
    /// <param name="toHead">Writes bytes on the host's aggregated stream to the head.</param>
    public PmiHostProxy(int localRanks, Func<ReadOnlyMemory<byte>, CancellationToken, Task> toHead)
    {
        _localRanks = localRanks;
        _send = toHead;
    }

    /// <summary>One batch at a time on the host's stream: a batch may span several frames.</summary>
    private async Task ToHeadAsync(byte[] batch, CancellationToken ct)
    {
        await _sendGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await _send(batch, ct).ConfigureAwait(false);
        }
        finally
        {
            _sendGate.Release();
        }
    }

    /// <summary>One rank's PMI_FD, its number, and its own stream to the head.</summary>
    public sealed class Rank(int number, int appnum, Socket socket, Func<ReadOnlyMemory<byte>, CancellationToken, Task> toHead)
    {
        private readonly SemaphoreSlim _write = new(1, 1);
        public int Number => number;
        public int Appnum => appnum;
        public Socket Socket => socket;
        public Func<ReadOnlyMemory<byte>, CancellationToken, Task> ToHead => toHead;

        /// <summary>Writes to the rank; local answers and the head's replies never interleave.</summary>
        public async Task WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct)
        {
            await _write.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                await socket.SendAsync(bytes, SocketFlags.None, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // The rank is gone; its exit reaches the head another way.
            }
            finally
            {
                _write.Release();
            }
        }
    }

    /// <summary>Reads the rank's requests until it closes its PMI_FD; the caller then ends the
    /// rank's stream to the head.</summary>
    public async Task ServeAsync(Rank rank, CancellationToken ct)
    {
        var stream = new NetworkStream(rank.Socket, ownsSocket: false);
        try
        {
            await PmiLineReader.ReadAsync(stream, line => new ValueTask(OnLineAsync(rank, line.ToArray(), ct)),
                // Not PMI: the head refuses it and fails the job, as for a rank of its own.
                async tooLong => await rank.ToHead(tooLong.ToArray(), ct).ConfigureAwait(false), ct).ConfigureAwait(false);
        }
        finally
        {
            lock (_gate)
                _inBarrier.Remove(rank);
        }
    }

    private async Task OnLineAsync(Rank rank, byte[] line, CancellationToken ct)
    {
        var parsed = PmiWire.Parse(line);
        if (parsed.Command is { } c)
        {
            string? kvs, size;
            lock (_gate)
                (kvs, size) = (_kvsName, _size);
            switch (c.Name)
            {
                // What the head would answer the same for every rank, once it has said hello.
                case "get_maxes":
                    await rank.WriteAsync(PmiWire.Format("maxes", ("kvsname_max", PmiWire.MaxKvsNameLength.ToString()),
                        ("keylen_max", PmiWire.MaxKeyLength.ToString()), ("vallen_max", PmiWire.MaxValueLength.ToString())), ct).ConfigureAwait(false);
                    return;
                case "get_appnum":
                    await rank.WriteAsync(PmiWire.Format("appnum", ("appnum", rank.Appnum.ToString())), ct).ConfigureAwait(false);
                    return;
                case "get_my_kvsname" when kvs is not null:
                    await rank.WriteAsync(PmiWire.Format("my_kvsname", ("kvsname", kvs)), ct).ConfigureAwait(false);
                    return;
                case "get_universe_size" when size is not null:
                    await rank.WriteAsync(PmiWire.Format("universe_size", ("size", size)), ct).ConfigureAwait(false);
                    return;
                case "put" when kvs is not null && c["kvsname"] == kvs && c["key"] is { } key && c["value"] is { } value:
                    byte[]? early = null;
                    lock (_gate)
                    {
                        _cache[key] = value;
                        _held.Write(PmiWire.Format("sfa_put", ("rank", rank.Number.ToString()), ("key", key), ("value", value)));
                        // The head keeps the KVS budgets: a rank that puts without end is judged
                        // there, and the agent holds no more than this meanwhile.
                        if (_held.Length >= MaxHeldBytes)
                            early = TakeHeld();
                    }
                    if (early is not null)
                        await ToHeadAsync(early, ct).ConfigureAwait(false);
                    await rank.WriteAsync(PmiWire.Format("put_result", ("rc", "0"), ("msg", "success")), ct).ConfigureAwait(false);
                    return;
                case "get" when kvs is not null && c["kvsname"] == kvs && c["key"] is { } key:
                    string? found;
                    lock (_gate)
                        found = _cache.GetValueOrDefault(key);
                    if (found is not null)
                    {
                        await rank.WriteAsync(PmiWire.Format("get_result", ("rc", "0"), ("msg", "success"), ("value", found)), ct).ConfigureAwait(false);
                        return;
                    }
                    break;
                case "barrier_in":
                    byte[]? batch = null;
                    lock (_gate)
                    {
                        if (_inBarrier.Add(rank) && _inBarrier.Count == _localRanks)
                        {
                            _held.Write(PmiWire.Format("sfa_barrier_in"));
                            batch = TakeHeld();
                        }
                    }
                    if (batch is not null)
                        await ToHeadAsync(batch, ct).ConfigureAwait(false);
                    return;
            }
        }
        // Not answered here (or not PMI at all, which the head judges): the rank's own stream.
        var forward = new byte[line.Length + 1];
        line.CopyTo(forward, 0);
        forward[^1] = (byte)'\n';
        await rank.ToHead(forward, ct).ConfigureAwait(false);
    }

    /// <summary>The held lines, which are then gone; under <see cref="_gate"/>.</summary>
    private byte[] TakeHeld()
    {
        var bytes = _held.ToArray();
        _held.SetLength(0);
        return bytes;
    }

    /// <summary>Bytes the head sent on the host's stream (frames cut anywhere).</summary>
    public async Task FromHeadAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct)
    {
        List<byte[]> lines = [];
        lock (_gate)
        {
            _fromHead.AddRange(bytes.Span);
            int start = 0, nl;
            while ((nl = _fromHead.IndexOf((byte)'\n', start)) >= 0)
            {
                lines.Add(_fromHead.GetRange(start, nl - start).ToArray());
                start = nl + 1;
            }
            _fromHead.RemoveRange(0, start);
        }
        foreach (var line in lines)
        {
            if (PmiWire.Parse(line).Command is not { } c)
                continue;
            switch (c.Name)
            {
                case "sfa_hello":
                    lock (_gate)
                        (_kvsName, _size) = (c["kvsname"], c["size"]);
                    _greeted.TrySetResult();
                    break;
                case "sfa_kv" when c["key"] is { } key && c["value"] is { } value:
                    lock (_gate)
                        _cache[key] = value;
                    break;
                case "sfa_barrier_out":
                    Rank[] waiting;
                    lock (_gate)
                    {
                        waiting = [.. _inBarrier];
                        _inBarrier.Clear();
                    }
                    await Task.WhenAll(waiting.Select(r => r.WriteAsync(BarrierOut, ct))).ConfigureAwait(false);
                    break;
                default:
                    Log.ForDebugEvent().Message("host PMI line {Command} from the head ignored", c.Name).Property("EventName", "PmiProxyIgnored").Log();
                    break;
            }
        }
    }
}
