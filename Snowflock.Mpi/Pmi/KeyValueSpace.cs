namespace Snowflock.Mpi.Pmi;

/// <summary>
/// The job-scoped PMI key-value space. Owned by the server's single dispatcher, so not thread-safe
/// by design. Bounded in keys and in bytes, per rank and for the whole job, so that one
/// misbehaving rank cannot exhaust sfrun's memory.
/// </summary>
public sealed class KeyValueSpace
{
    /// <summary>Who put an entry that no rank owns (PMI_process_mapping): not charged to anyone.</summary>
    public const int Server = -1;

    private readonly Dictionary<string, (string Value, int Owner)> _values = new(StringComparer.Ordinal);
    private readonly Dictionary<int, long> _bytesOf = [];
    private long _bytes;

    public KeyValueSpace(string name, int maxKeys, long maxBytesPerRank = long.MaxValue, long maxBytes = long.MaxValue)
    {
        Name = name;
        MaxKeys = maxKeys;
        MaxBytesPerRank = maxBytesPerRank;
        MaxBytes = maxBytes;
    }

    public string Name { get; }
    public int MaxKeys { get; }
    public long MaxBytesPerRank { get; }
    public long MaxBytes { get; }
    public int Count => _values.Count;

    /// <summary>Bytes of keys and values held for ranks (what the budgets count).</summary>
    public long Bytes => _bytes;

    /// <summary>Stores a value; a later put of the same key replaces it, as MPICH's hydra does.
    /// The entry's bytes (key plus value) are charged to <paramref name="owner"/>, and a
    /// replaced entry's bytes are given back to whoever put it.</summary>
    public bool TryPut(string key, string value, out string? error, int owner = Server)
    {
        error = null;
        var exists = _values.TryGetValue(key, out var old);
        long size = key.Length + value.Length;
        long freed = exists && old.Owner == owner ? key.Length + old.Value.Length : 0;
        long freedJob = exists && old.Owner != Server ? key.Length + old.Value.Length : 0;
        if (key.Length == 0 || key.Length > PmiWire.MaxKeyLength)
            error = $"key length {key.Length} outside 1..{PmiWire.MaxKeyLength}";
        else if (value.Length > PmiWire.MaxValueLength)
            error = $"value length {value.Length} exceeds {PmiWire.MaxValueLength}";
        else if (!exists && _values.Count >= MaxKeys)
            error = $"key-value space is full ({MaxKeys} keys)";
        else if (owner != Server && _bytesOf.GetValueOrDefault(owner) - freed + size > MaxBytesPerRank)
            error = $"rank {owner} has used up its key-value space budget of {MaxBytesPerRank} bytes";
        else if (owner != Server && _bytes - freedJob + size > MaxBytes)
            error = $"the job's key-value space budget of {MaxBytes} bytes is used up";
        if (error is not null)
            return false;
        if (exists && old.Owner != Server)
        {
            _bytesOf[old.Owner] -= key.Length + old.Value.Length;
            _bytes -= key.Length + old.Value.Length;
        }
        if (owner != Server)
        {
            _bytesOf[owner] = _bytesOf.GetValueOrDefault(owner) + size;
            _bytes += size;
        }
        _values[key] = (value, owner);
        return true;
    }

    /// <summary>Every entry now, in no particular order.</summary>
    public IEnumerable<(string Key, string Value)> Entries => _values.Select(kv => (kv.Key, kv.Value.Value));

    public bool TryGet(string key, out string value)
    {
        var found = _values.TryGetValue(key, out var entry);
        value = entry.Value;
        return found;
    }
}
