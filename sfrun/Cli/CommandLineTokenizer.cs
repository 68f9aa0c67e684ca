namespace Snowflock.Cli;

/// <summary>One program block of the command line: its option tokens, normalized to
/// <c>--name=value</c> for CommandLineParser, and the program with its own arguments.</summary>
internal sealed record CommandSection(IReadOnlyList<string> OptionTokens, string? Program, IReadOnlyList<string> ProgramArguments);

/// <summary>
/// Splits an mpiexec command line before CommandLineParser sees it. mpiexec's grammar is not
/// GNU's: long options take one dash (<c>-np 4</c>), <c>-genv</c> takes two values, the first
/// word that is not an option is the program and everything after it is the program's, and
/// <c>:</c> separates MPMD blocks.
/// </summary>
internal static class CommandLineTokenizer
{
    public static IReadOnlyList<CommandSection> Split(IReadOnlyList<string> args)
    {
        args = ExpandConfigFiles(args);
        var sections = new List<CommandSection>();
        var options = new List<string>();
        var i = 0;
        while (i < args.Count)
        {
            var token = args[i];
            if (token == ":")
            {
                sections.Add(new CommandSection(options, null, []));
                options = [];
                i++;
                continue;
            }
            if (token.Length > 1 && token[0] == '-' && token != "--")
            {
                i = TakeOption(args, i, options);
                continue;
            }
            if (token == "--")
                i++;
            if (i >= args.Count)
                break;
            // The program: it and every word up to the next ':' belong to it.
            var end = i + 1;
            while (end < args.Count && args[end] != ":")
                end++;
            sections.Add(new CommandSection(options, args[i], args.Skip(i + 1).Take(end - i - 1).ToList()));
            options = [];
            i = end < args.Count ? end + 1 : end;
            if (end < args.Count && i >= args.Count)
                throw new UsageException("':' must be followed by another program block");
        }
        if (options.Count > 0 || sections.Count == 0)
            sections.Add(new CommandSection(options, null, []));
        return sections;
    }

    /// <summary>Replaces <c>-configfile FILE</c> (before any program) with the blocks it holds.</summary>
    private static IReadOnlyList<string> ExpandConfigFiles(IReadOnlyList<string> args)
    {
        var result = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            // Open MPI's appfile has the same one-block-per-line grammar as hydra's configfile.
            if (a is "-configfile" or "--configfile" or "-app" or "--app")
            {
                if (i + 1 >= args.Count)
                    throw new UsageException($"option {a} needs FILE");
                result.AddRange(ConfigFile.ReadAsArguments(args[++i]));
                continue;
            }
            if (a.StartsWith("-configfile=", StringComparison.Ordinal) || a.StartsWith("--configfile=", StringComparison.Ordinal)
                || a.StartsWith("-app=", StringComparison.Ordinal) || a.StartsWith("--app=", StringComparison.Ordinal))
            {
                result.AddRange(ConfigFile.ReadAsArguments(a[(a.IndexOf('=') + 1)..]));
                continue;
            }
            // Everything from the program on is the program's, -configfile included.
            if (!a.StartsWith('-') || a == "--")
            {
                result.AddRange(args.Skip(i));
                break;
            }
            result.Add(a);
            if (OptionCatalog.Find(a.TrimStart('-').Split('=')[0]) is { Arity: > 0 } def && !a.Contains('='))
            {
                // -genv NAME=VALUE is one word, as TakeOption reads it.
                var arity = def.Arity == 2 && i + 1 < args.Count && args[i + 1].IndexOf('=') > 0 && def.Canonical is "genv" or "env" ? 1 : def.Arity;
                for (var k = 0; k < arity && i + 1 < args.Count; k++)
                    result.Add(args[++i]);
            }
        }
        return result;
    }

    private static int TakeOption(IReadOnlyList<string> args, int i, List<string> into)
    {
        var token = args[i];
        var name = token.StartsWith("--", StringComparison.Ordinal) ? token[2..] : token[1..];
        string? inline = null;
        var eq = name.IndexOf('=');
        if (eq > 0)
        {
            inline = name[(eq + 1)..];
            name = name[..eq];
        }
        var def = OptionCatalog.Find(name)
            ?? throw new UsageException($"unknown option {token}; run 'sfrun --help' for the options sfrun supports");
        if (def.Support == Support.Refused)
            throw new UsageException($"{token} {def.Why}");
        var values = new List<string>();
        if (inline is not null)
            values.Add(inline);
        var next = i + 1;
        // hydra takes -genv NAME=VALUE as well as -genv NAME VALUE (and -env likewise).
        if (def.Arity == 2 && def.Canonical is "genv" or "env" && values.Count == 0 && next < args.Count
            && args[next].IndexOf('=') is > 0 and var eq2)
        {
            values.Add(args[next][..eq2]);
            values.Add(args[next][(eq2 + 1)..]);
            next++;
        }
        while (values.Count < def.Arity)
        {
            if (next >= args.Count)
                throw new UsageException($"option {token} needs {def.Value}");
            values.Add(args[next++]);
        }
        if (def.Arity == 0 && inline is not null)
            throw new UsageException($"option {token} takes no value");
        into.Add(Token(def.Canonical, values));
        return next;
    }

    /// <summary>CommandLineParser refuses a value that is empty or starts with a blank, so every
    /// value travels behind a guard character; NAME VALUE pairs are joined by NUL, which no argv
    /// string can hold, so a NAME containing '=' is still seen as wrong.</summary>
    public const char Guard = '\u001f';
    public const char PairSeparator = '\0';

    public static string Token(string canonical, IReadOnlyList<string> values) => values.Count switch
    {
        0 => $"--{canonical}",
        1 => $"--{canonical}={Guard}{values[0]}",
        _ => $"--{canonical}={Guard}{values[0]}{PairSeparator}{values[1]}",
    };

    /// <summary>The value as the user wrote it (for pairs: NAME, NUL, VALUE).</summary>
    public static string Unguard(string token) => token.Length > 0 && token[0] == Guard ? token[1..] : token;
}
