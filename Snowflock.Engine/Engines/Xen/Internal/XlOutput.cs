using System.Globalization;

namespace Snowflock.Engine.Engines.Xen.Internal;

/// <summary>One row of <c>xl list</c>. <paramref name="State"/> is xl's six flag columns
/// (r running, b blocked, p paused, s shutdown, c crashed, d dying), '-' where a flag is clear.</summary>
internal sealed record XlDomain(string Name, int Id, int MemoryMiB, int Vcpus, string State, double CpuSeconds)
{
    public bool Paused => State.Contains('p');
    public bool Crashed => State.Contains('c');
    public bool Dying => State.Contains('d');
}

/// <summary>What a failed xl command said went wrong, as far as the engine must tell causes apart.</summary>
internal enum XlFailure
{
    Other,
    /// <summary>The domain named does not exist (any more).</summary>
    NoSuchDomain,
    /// <summary>A domain with that name exists already.</summary>
    NameInUse,
    /// <summary>The hypervisor has too little free memory for the domain.</summary>
    OutOfMemory,
    /// <summary>This build of xl lacks the subcommand (e.g. fork-vm on Debian's Xen).</summary>
    NotImplemented,
    /// <summary>xl itself died (signal), not a refusal: worth one more try.</summary>
    Crashed,
    /// <summary>A hotplug script (vif-bridge) failed while xl set a device up: seen when several
    /// domains are restored at once under nested TCG; worth one more try for a restore.</summary>
    HotplugFailed,
}

/// <summary>
/// Every reading of xl's text output lives here: pure functions from what xl printed to records,
/// tested on output captured from Xen 4.17 and fed random bytes. Anything unexpected yields a
/// <see cref="FormatException"/> naming the line, never a wrong value.
/// </summary>
internal static partial class XlOutput
{
    /// <summary>Parses <c>xl list</c> (with or without domain names given).</summary>
    public static IReadOnlyList<XlDomain> ParseList(string text)
    {
        var lines = Lines(text);
        if (lines.Count == 0 || !lines[0].StartsWith("Name", StringComparison.Ordinal) || !lines[0].Contains("ID", StringComparison.Ordinal))
            throw new FormatException($"xl list: expected a header line, got '{First(lines)}'");
        var domains = new List<XlDomain>(lines.Count - 1);
        foreach (var line in lines.Skip(1))
        {
            // Names may hold blanks only in theory (xl refuses them); the last five columns are fixed.
            var cols = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (cols.Length < 6)
                throw new FormatException($"xl list: short row '{line}'");
            var n = cols.Length;
            var name = string.Join(' ', cols[..(n - 5)]);
            var state = cols[n - 2];
            if (state.Length != 6 || state.Any(c => c is not ('-' or 'r' or 'b' or 'p' or 's' or 'c' or 'd')))
                throw new FormatException($"xl list: bad state '{state}' in '{line}'");
            domains.Add(new XlDomain(name, Int(cols[n - 5], line), Int(cols[n - 4], line), Int(cols[n - 3], line), state,
                Double(cols[n - 1], line)));
        }
        return domains;
    }

    /// <summary>Parses <c>xl info</c>: "key : value" lines (a value may be empty).</summary>
    public static IReadOnlyDictionary<string, string> ParseInfo(string text)
    {
        var info = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in Lines(text))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0)
                throw new FormatException($"xl info: no 'key : value' in '{line}'");
            var key = line[..colon].Trim();
            if (key.Length == 0 || key.Any(c => !(char.IsAsciiLetterOrDigit(c) || c == '_')))
                throw new FormatException($"xl info: bad key in '{line}'");
            info[key] = line[(colon + 1)..].Trim();
        }
        if (!info.ContainsKey("xen_version"))
            throw new FormatException("xl info: no xen_version line");
        return info;
    }

    /// <summary>Parses <c>xl domid NAME</c>: one decimal domain id.</summary>
    public static int ParseDomId(string text)
    {
        var t = text.Trim();
        return int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id < 0x7FF0
            ? id : throw new FormatException($"xl domid: expected a domain id, got '{Clip(t)}'");
    }

    /// <summary>Tells why a failed xl command failed, from its exit status and stderr.</summary>
    public static XlFailure Classify(int exitCode, string stderr)
    {
        // Killed by a signal: a shell reports 128+s, ssh passes the remote shell's status on.
        if (exitCode > 128 || stderr.Contains("Segmentation fault", StringComparison.Ordinal)
            || stderr.Contains("Aborted", StringComparison.Ordinal) || HotplugCrash().IsMatch(stderr))
            return XlFailure.Crashed;
        if (HotplugFailure().IsMatch(stderr))
            return XlFailure.HotplugFailed;
        if (stderr.Contains("is an invalid domain identifier", StringComparison.Ordinal)
            || stderr.Contains("Can't get domid of domain name", StringComparison.Ordinal)
            || stderr.Contains("Non-existant domain", StringComparison.Ordinal) && !stderr.Contains("already exists", StringComparison.Ordinal))
            return XlFailure.NoSuchDomain;
        if (stderr.Contains("already exists", StringComparison.Ordinal))
            return XlFailure.NameInUse;
        if (stderr.Contains("command not implemented", StringComparison.Ordinal))
            return XlFailure.NotImplemented;
        if (stderr.Contains("failed to free memory", StringComparison.Ordinal)
            || stderr.Contains("not enough memory", StringComparison.OrdinalIgnoreCase)
            || stderr.Contains("Cannot allocate memory", StringComparison.Ordinal))
            return XlFailure.OutOfMemory;
        return XlFailure.Other;
    }

    /// <summary>The one line worth showing a user: libxl's first error line, else the last line xl printed.</summary>
    public static string Reason(string stderr)
    {
        var lines = Lines(stderr);
        var error = lines.FirstOrDefault(l => l.StartsWith("libxl: error:", StringComparison.Ordinal));
        if (error is not null)
        {
            // "libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain 4:Domain with name ..." -> the message.
            var m = LibxlError().Match(error);
            return Clip(m.Success ? m.Groups["msg"].Value.Trim() : error);
        }
        return lines.Count == 0 ? "no message" : Clip(lines[^1]);
    }

    /// <summary>A hotplug script (or a program it ran) killed by a signal: "... exited with error status 139".</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"exited with error status 1(29|[3-5][0-9])\b")]
    private static partial System.Text.RegularExpressions.Regex HotplugCrash();

    /// <summary>A hotplug script that failed ("/etc/xen/scripts/vif-bridge online [7823] exited with
    /// error status 1") or overran libxl's timeout ("killing execution of ... because of timeout").</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"/scripts/[^ ]+ [a-z]+ \[\d+\] exited with error status \d+|killing execution of [^ ]*/scripts/[^ ]+ [a-z]+ because of timeout")]
    private static partial System.Text.RegularExpressions.Regex HotplugFailure();

    [System.Text.RegularExpressions.GeneratedRegex(@"^libxl: error: [^:]*:\d+:[^:]*:\s*(Domain \d+:)?(?<msg>.*)$")]
    private static partial System.Text.RegularExpressions.Regex LibxlError();

    private static List<string> Lines(string text) =>
        text.Split('\n').Select(l => l.TrimEnd('\r', ' ', '\t')).Where(l => l.Length > 0).ToList();

    private static string First(List<string> lines) => lines.Count == 0 ? "" : Clip(lines[0]);

    private static string Clip(string s) => s.Length <= 200 ? s : s[..200] + "...";

    private static int Int(string s, string line) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : throw new FormatException($"xl list: bad number '{Clip(s)}' in '{Clip(line)}'");

    private static double Double(string s, string line) =>
        double.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var v) ? v : throw new FormatException($"xl list: bad time '{Clip(s)}' in '{Clip(line)}'");
}
