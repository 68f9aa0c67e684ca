namespace Snowflock.Mpi.Pmi;

/// <summary>
/// The job-scoped PMI key-value space. Owned by the server's single dispatcher, so not thread-safe
/// by design. Bounded so that one misbehaving rank cannot exhaust sfrun's memory.
/// </summary>
public sealed class KeyValueSpace
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public KeyValueSpace(string name, int maxKeys)
    {
        Name = name;
        MaxKeys = maxKeys;
    }

    public string Name { get; }
    public int MaxKeys { get; }
    public int Count => _values.Count;

    /// <summary>Stores a value; a later put of the same key replaces it, as MPICH's hydra does.</summary>
    public bool TryPut(string key, string value, out string? error)
    {
        error = null;
        if (key.Length == 0 || key.Length > PmiWire.MaxKeyLength)
            error = $"key length {key.Length} outside 1..{PmiWire.MaxKeyLength}";
        else if (value.Length > PmiWire.MaxValueLength)
            error = $"value length {value.Length} exceeds {PmiWire.MaxValueLength}";
        else if (!_values.ContainsKey(key) && _values.Count >= MaxKeys)
            error = $"key-value space is full ({MaxKeys} keys)";
        if (error is not null)
            return false;
        _values[key] = value;
        return true;
    }

    public bool TryGet(string key, out string value) => _values.TryGetValue(key, out value!);
}
