using System.Text;

namespace Snowflock.Cli;

/// <summary>
/// hydra's <c>-configfile FILE</c>: each non-empty line (after '#' comments) is one program block,
/// written as on the command line (<c>-n 2 ./a "x y"</c>); the blocks become one MPMD job.
/// </summary>
internal static class ConfigFile
{
    public static List<string> ReadAsArguments(string path)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"-configfile {path}: {Snowflock.Engine.IoMessages.Describe(e, path)}");
        }
        var args = new List<string>();
        var number = 0;
        foreach (var raw in lines)
        {
            number++;
            var words = Words(raw, path, number);
            if (words.Count == 0)
                continue;
            if (args.Count > 0)
                args.Add(":");
            args.AddRange(words);
        }
        if (args.Count == 0)
            throw new UsageException($"-configfile {path}: no program blocks in the file");
        return args;
    }

    /// <summary>Splits one line into words the way a POSIX shell would for plain words, quotes and
    /// backslashes (no variables, no globbing); '#' at the start of a word begins a comment.</summary>
    public static List<string> Words(string line, string path, int number)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        var inWord = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (char.IsWhiteSpace(c))
            {
                if (inWord)
                    words.Add(word.ToString());
                word.Clear();
                inWord = false;
                continue;
            }
            if (c == '#' && !inWord)
                break;
            inWord = true;
            if (c == '\\' && i + 1 < line.Length)
                word.Append(line[++i]);
            else if (c is '\'' or '"')
            {
                var end = line.IndexOf(c, i + 1);
                if (end < 0)
                    throw new UsageException($"-configfile {path} line {number}: unterminated {c} quote");
                word.Append(line, i + 1, end - i - 1);
                i = end;
            }
            else
                word.Append(c);
        }
        if (inWord)
            words.Add(word.ToString());
        return words;
    }
}
