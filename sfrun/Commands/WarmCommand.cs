using System.Globalization;
using Snowflock.Cli.Logging;
using Snowflock.Engine;
using Snowflock.Launcher;

namespace Snowflock.Cli.Commands;

/// <summary>
/// <c>sfrun warm create NAME [--engine E] [--] PROGRAM [ARGS...]</c>, <c>sfrun warm list</c>,
/// <c>sfrun warm rm NAME...|--all</c>: warm VMs that outlive jobs; <c>sfrun --vm NAME</c> forks
/// a job's ranks from one. Failures are the exceptions sfrun's entry point turns into one line.
/// </summary>
internal static class WarmCommand
{
    public const string Usage = "usage: sfrun warm create NAME [--engine E] [--] PROGRAM [ARGS...] | sfrun warm list | sfrun warm rm NAME...|--all";

    public static int Run(IReadOnlyList<string> args, TextWriter stdout)
    {
        var verbosity = args.Contains("-vv") ? 2 : args.Contains("-v") || args.Contains("--verbose") ? 1 : 0;
        if (args.Count == 0)
            throw new UsageException(Usage);
        if (args[0] is "-h" or "--help" or "help")
        {
            stdout.WriteLine(Usage);
            return 0;
        }
        LogSetup.Configure(verbosity, Environment.GetEnvironmentVariable("SFRUN_LOG"));
        var rest = args.Skip(1).Where(a => a is not ("-v" or "-vv" or "--verbose")).ToList();
        switch (args[0])
        {
            case "create":
                return Create(args.Skip(1).ToList(), stdout);
            case "list" or "ls":
                if (rest.Count > 0)
                    throw new UsageException("sfrun warm list takes no arguments");
                return List(stdout);
            case "rm" or "remove":
                return Remove(rest, stdout);
            default:
                throw new UsageException($"unknown warm command '{args[0]}'; {Usage}");
        }
    }

    private static int Create(List<string> args, TextWriter stdout)
    {
        if (args.Count == 0 || args[0].StartsWith('-'))
            throw new UsageException("sfrun warm create needs a NAME; " + Usage);
        var name = args[0];
        // Not EngineCatalog.Default: only the process engine keeps warm VMs so far.
        var engine = "process";
        var i = 1;
        // Options of `warm create` come before the program; everything from it on is the program's.
        for (; i < args.Count && args[i].StartsWith('-'); i++)
        {
            var a = args[i];
            if (a == "--")
            {
                i++;
                break;
            }
            if (a is "-v" or "-vv" or "--verbose")
                continue;
            if (a is "--engine" or "-engine")
            {
                if (++i >= args.Count)
                    throw new UsageException($"option {a} needs NAME");
                engine = args[i];
            }
            else if (a.StartsWith("--engine=", StringComparison.Ordinal) || a.StartsWith("-engine=", StringComparison.Ordinal))
                engine = a[(a.IndexOf('=') + 1)..];
            else
                throw new UsageException($"unknown option {a} for sfrun warm create; " + Usage);
        }
        if (i >= args.Count)
            throw new UsageException("sfrun warm create needs a PROGRAM; " + Usage);
        var record = WarmVmSetup.Create(name, engine, args[i], args.Skip(i + 1).ToList());
        stdout.WriteLine($"warm VM '{record.Name}' is ready: pid {record.Pid}, {record.Program}; run jobs with 'sfrun -np N --vm {record.Name}'");
        return 0;
    }

    private static int List(TextWriter stdout)
    {
        var all = WarmVms.List();
        if (all.Count == 0)
        {
            stdout.WriteLine("no warm VMs ('sfrun warm create NAME ./app' makes one)");
            return 0;
        }
        var width = Math.Max(4, all.Max(s => s.Record.Name.Length));
        stdout.WriteLine($"{"NAME".PadRight(width)}  {"ENGINE",-8} {"STATE",-6} {"PID",8} {"AGE",9} {"JOBS",5}  PROGRAM");
        foreach (var s in all)
        {
            var r = s.Record;
            var program = string.Join(' ', new[] { r.Program }.Concat(r.Arguments));
            var jobs = s.JobsServed is { } j ? j.ToString(CultureInfo.InvariantCulture) : "-";
            stdout.WriteLine($"{r.Name.PadRight(width)}  {r.Engine,-8} {(s.Alive ? "alive" : "dead"),-6} {r.Pid,8} {Age(DateTime.UtcNow - r.CreatedUtc),9} {jobs,5}  {program}");
        }
        return 0;
    }

    private static string Age(TimeSpan t) =>
        t.TotalDays >= 1 ? $"{(int)t.TotalDays}d{t.Hours}h"
        : t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes}m"
        : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds}s"
        : $"{(int)t.TotalSeconds}s";

    private static int Remove(List<string> names, TextWriter stdout)
    {
        if (names.Count == 0)
            throw new UsageException("sfrun warm rm needs a NAME or --all; " + Usage);
        if (names.Contains("--all"))
        {
            if (names.Count > 1)
                throw new UsageException("sfrun warm rm --all takes no names");
            foreach (var n in WarmVms.RemoveAll())
                stdout.WriteLine($"removed warm VM '{n}'");
            return 0;
        }
        if (names.FirstOrDefault(n => n.StartsWith('-')) is { } bad)
            throw new UsageException($"unknown option {bad} for sfrun warm rm; " + Usage);
        foreach (var n in names)
        {
            WarmVms.Remove(n);
            stdout.WriteLine($"removed warm VM '{n}'");
        }
        return 0;
    }
}
