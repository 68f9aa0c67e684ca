using System.Text;

namespace Snowflock.Mpi.Pmi;

/// <summary>
/// The PMI-1 text protocol, parsed in one place. A line is <c>cmd=NAME</c> followed by
/// space-separated <c>key=value</c> pairs. <c>value=</c> (the KVS payload of put/get) is the rest
/// of the line, because clients are free to put spaces in it and Open MPI pads it.
/// </summary>
public static class PmiWire
{
    /// <summary>MPICH's simple PMI client caps a request at 1 KiB of value plus key and kvsname;
    /// anything longer is not a PMI line.</summary>
    public const int MaxLineBytes = 4096;
    public const int MaxKeyLength = 64;
    public const int MaxValueLength = 1024;
    public const int MaxKvsNameLength = 256;

    /// <summary>Parses one line (without its trailing newline). Pure: no state, no I/O, never throws.</summary>
    public static PmiParseResult Parse(ReadOnlySpan<byte> line)
    {
        if (line.Length > MaxLineBytes)
            return PmiParseResult.Fail($"line of {line.Length} bytes exceeds the PMI limit of {MaxLineBytes}");
        if (line.Length > 0 && line[^1] == (byte)'\r')
            line = line[..^1];
        foreach (var b in line)
            if (b < 0x20 && b != (byte)'\t' || b == 0x7f)
                return PmiParseResult.Fail($"line holds control byte 0x{b:x2}");
        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(line);
        }
        catch (DecoderFallbackException)
        {
            return PmiParseResult.Fail("line is not valid UTF-8");
        }
        return ParseText(text);
    }

    private static PmiParseResult ParseText(string text)
    {
        var rest = text.TrimStart(' ', '\t');
        if (rest.StartsWith("mcmd=", StringComparison.Ordinal))
            return PmiParseResult.Fail("multi-line commands (mcmd=, used by MPI_Comm_spawn) are not supported");
        if (!rest.StartsWith("cmd=", StringComparison.Ordinal))
            return PmiParseResult.Fail($"line does not start with cmd=: \"{Shorten(text)}\"");

        var args = new Dictionary<string, string>(StringComparer.Ordinal);
        string? name = null;
        while (rest.Length > 0)
        {
            var eq = rest.IndexOf('=');
            if (eq <= 0)
                return PmiParseResult.Fail($"expected key=value at \"{Shorten(rest)}\"");
            var key = rest[..eq];
            if (key.AsSpan().IndexOfAny(' ', '\t') >= 0)
                return PmiParseResult.Fail($"expected key=value at \"{Shorten(rest)}\"");
            string value;
            if (IsRestOfLine(name, key))
            {
                value = rest[(eq + 1)..].TrimEnd(' ', '\t');
                rest = "";
            }
            else
            {
                var end = rest.IndexOfAny([' ', '\t'], eq + 1);
                value = end < 0 ? rest[(eq + 1)..] : rest[(eq + 1)..end];
                rest = end < 0 ? "" : rest[end..].TrimStart(' ', '\t');
            }
            if (name is null)
            {
                if (value.Length == 0)
                    return PmiParseResult.Fail("empty command name");
                name = value;
                continue;
            }
            if (!args.TryAdd(key, value))
                return PmiParseResult.Fail($"key {key} given twice");
        }
        if (args.TryGetValue("key", out var k) && k.Length > MaxKeyLength)
            return PmiParseResult.Fail($"key of {k.Length} characters exceeds the PMI limit of {MaxKeyLength}");
        if (args.TryGetValue("value", out var v) && v.Length > MaxValueLength)
            return PmiParseResult.Fail($"value of {v.Length} characters exceeds the PMI limit of {MaxValueLength}");
        return new PmiParseResult(new PmiCommand(name!, args), null);
    }

    /// <summary>Keys whose value is free text to the end of the line: the KVS payload, and the
    /// message MPICH 4.1+ sends unescaped with <c>cmd=abort exitcode=N message=...</c>.</summary>
    private static bool IsRestOfLine(string? command, string key) =>
        key == "value" || command == "abort" && key is "message" or "error_msg";

    /// <summary>Formats one reply line, newline included. <c>value</c>, if present, goes last.</summary>
    public static byte[] Format(string command, params (string Key, string Value)[] args)
    {
        var sb = new StringBuilder("cmd=").Append(command);
        foreach (var (key, value) in args.Where(a => a.Key != "value"))
            sb.Append(' ').Append(key).Append('=').Append(value);
        foreach (var (_, value) in args.Where(a => a.Key == "value"))
            sb.Append(" value=").Append(value);
        return Encoding.UTF8.GetBytes(sb.Append('\n').ToString());
    }

    private static string Shorten(string s) => s.Length <= 60 ? s : s[..60] + "...";
}
