namespace Snowflock.Mpi.Pmi;

/// <summary>One PMI-1 wire command: <c>cmd=NAME key=value ...</c>, one line, as a rank sends it.</summary>
public sealed record PmiCommand(string Name, IReadOnlyDictionary<string, string> Arguments)
{
    public string? this[string key] => Arguments.TryGetValue(key, out var v) ? v : null;

    public bool TryGetInt(string key, out int value)
    {
        value = 0;
        return this[key] is { } s && int.TryParse(s, System.Globalization.NumberStyles.AllowLeadingSign,
            System.Globalization.CultureInfo.InvariantCulture, out value);
    }
}

/// <summary>What <see cref="PmiWire.Parse"/> returns: a command, or why the line is not one.</summary>
public readonly record struct PmiParseResult(PmiCommand? Command, string? Error)
{
    public bool Ok => Command is not null;
    public static PmiParseResult Fail(string error) => new(null, error);
}
