using System.Globalization;

namespace Snowflock.Launcher.Internal.Clones;

/// <summary>A request from libsf.so (native/sf/protocol.h), parsed.</summary>
internal abstract record CloneRequest
{
    public sealed record Hello(int Version) : CloneRequest;
    public sealed record Ticket(int Count) : CloneRequest;
    public sealed record Cloned(int TicketId, IReadOnlyList<int> Pids) : CloneRequest;
    public sealed record Done(int TicketId) : CloneRequest;
}

/// <summary>The clone agent's line protocol, in one place: a pure function from a line to a
/// request, and the replies. Mirrors native/sf/protocol.h.</summary>
internal static class CloneWire
{
    public const int Version = 1;

    /// <summary>Longest line with its newline (SF_MAX_LINE): a <c>cloned</c> line for the largest ticket fits.</summary>
    public const int MaxLine = 65536;

    /// <summary>The variable naming the agent's socket in every rank's environment.</summary>
    public const string Variable = "SF_AGENT";

    /// <summary>Parses one line (without its newline).</summary>
    /// <exception cref="FormatException">The line is not a request; the message says why.</exception>
    public static CloneRequest Parse(string line)
    {
        if (line.Length == 0)
            throw new FormatException("empty line");
        if (line.Length >= MaxLine)
            throw new FormatException("line too long");
        var words = line.Split(' ');
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var word in words.Skip(1))
        {
            var eq = word.IndexOf('=');
            if (eq <= 0 || !fields.TryAdd(word[..eq], word[(eq + 1)..]))
                throw new FormatException($"bad field '{Shorten(word)}'");
        }
        CloneRequest request = words[0] switch
        {
            "hello" => new CloneRequest.Hello(Number(fields, "version")),
            "ticket" => new CloneRequest.Ticket(Number(fields, "n")),
            "cloned" => new CloneRequest.Cloned(Number(fields, "ticket"), Pids(fields)),
            "done" => new CloneRequest.Done(Number(fields, "ticket")),
            var other => throw new FormatException($"unknown request '{Shorten(other)}'"),
        };
        var expected = words[0] == "cloned" ? 2 : 1;
        if (fields.Count != expected)
            throw new FormatException($"'{words[0]}' takes {expected} field(s), got {fields.Count}");
        return request;
    }

    private static int Number(Dictionary<string, string> fields, string name) =>
        fields.TryGetValue(name, out var text) && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new FormatException($"'{name}' must be a positive whole number");

    private static List<int> Pids(Dictionary<string, string> fields)
    {
        if (!fields.TryGetValue("pids", out var text) || text.Length == 0)
            throw new FormatException("'pids' is missing");
        var pids = new List<int>();
        foreach (var part in text.Split(','))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid <= 1)
                throw new FormatException($"bad pid '{Shorten(part)}'");
            pids.Add(pid);
        }
        if (pids.Distinct().Count() != pids.Count)
            throw new FormatException("a pid is listed twice");
        return pids;
    }

    private static string Shorten(string s) => s.Length <= 40 ? s : s[..40] + "...";

    public static string Ok() => "ok\n";

    public static string Ok(string field, int value) => $"ok {field}={value.ToString(CultureInfo.InvariantCulture)}\n";

    /// <summary>An error reply: <paramref name="errno"/> is the errno name libsf sets (EINVAL, E2BIG, ...).</summary>
    public static string Error(string errno, string text) => $"error {errno} {text.ReplaceLineEndings(" ")}\n";
}
