using System.Globalization;
using Snowflock.Cli.Logging;
using Snowflock.Engine;
using Snowflock.Engine.Engines.Xen;
using Snowflock.Launcher;

namespace Snowflock.Cli.Commands;

/// <summary>
/// <c>sfrun warm create NAME [--engine E] [--] PROGRAM [ARGS...]</c>, <c>sfrun warm list</c>,
/// <c>sfrun warm rm NAME...|--all</c>: warm VMs that outlive jobs; <c>sfrun --vm NAME</c> forks
/// a job's ranks from one. With <c>--engine xen</c> (or <c>--xen-host USER@HOST</c>) they are
/// warm domUs in dom0 instead (<see cref="XenWarmDomains"/>). Failures are the exceptions sfrun's
/// entry point turns into one line.
/// </summary>
internal static class WarmCommand
{
    public const string Usage = "usage: sfrun warm create NAME [--engine E] [--xen-host USER@HOST] [--] PROGRAM [ARGS...] | "
        + "sfrun warm list [--engine xen] | sfrun warm rm [--engine xen] NAME...|--all";

    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter stdout, CancellationToken ct)
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
                return await CreateAsync(args.Skip(1).ToList(), stdout, ct);
            case "list" or "ls":
            {
                var xen = XenTarget(rest);
                if (rest.Count > 0)
                    throw new UsageException("sfrun warm list takes no arguments but --engine xen and --xen-host");
                return xen.Xen ? await ListXenAsync(xen.Host, stdout, ct) : List(stdout);
            }
            case "rm" or "remove":
            {
                var xen = XenTarget(rest);
                return xen.Xen ? await RemoveXenAsync(rest, xen.Host, stdout, ct) : Remove(rest, stdout);
            }
            default:
                throw new UsageException($"unknown warm command '{args[0]}'; {Usage}");
        }
    }

    /// <summary>Takes <c>--engine E</c> and <c>--xen-host H</c> out of <paramref name="args"/>: whether they select xen, and its dom0.</summary>
    private static (bool Xen, string? Host) XenTarget(List<string> args)
    {
        string? engine = null, host = null;
        for (var i = 0; i < args.Count; i++)
        {
            if (args[i] is not ("--engine" or "-engine" or "--xen-host"))
                continue;
            if (i + 1 >= args.Count)
                throw new UsageException($"option {args[i]} needs a value");
            if (args[i] == "--xen-host")
                host = args[i + 1];
            else
                engine = args[i + 1];
            args.RemoveRange(i, 2);
            i--;
        }
        if (host is not null && engine is not null and not "xen")
            throw new UsageException($"--xen-host is for the xen engine, not --engine {engine}");
        if (engine is not null and not ("xen" or "process"))
            throw new UsageException($"the {engine} engine keeps no warm VMs; process and xen do");
        return (engine == "xen" || host is not null, host);
    }

    private static async Task<int> ListXenAsync(string? host, TextWriter stdout, CancellationToken ct)
    {
        var all = await XenWarmDomains.ListAsync(host, ct);
        if (all.Count == 0)
        {
            stdout.WriteLine("no warm domUs ('sfrun warm create NAME --engine xen ./app' makes one)");
            return 0;
        }
        var width = Math.Max(4, all.Max(d => d.Name.Length));
        stdout.WriteLine($"{"NAME".PadRight(width)}  {"ENGINE",-8} {"STATE",-8} PROGRAM");
        foreach (var d in all)
            stdout.WriteLine($"{d.Name.PadRight(width)}  {"xen",-8} {(d.Running ? "running" : "gone"),-8} {string.Join(' ', d.Programs)}");
        return 0;
    }

    private static async Task<int> RemoveXenAsync(List<string> names, string? host, TextWriter stdout, CancellationToken ct)
    {
        if (names.Count == 0 || names.Contains("--all"))
            throw new UsageException("sfrun warm rm --engine xen needs the NAMEs of warm domUs");
        if (names.FirstOrDefault(n => n.StartsWith('-')) is { } bad)
            throw new UsageException($"unknown option {bad} for sfrun warm rm; " + Usage);
        foreach (var n in names)
        {
            await XenWarmDomains.RemoveAsync(n, host, ct);
            stdout.WriteLine($"removed warm domU '{n}'");
        }
        return 0;
    }

    private static async Task<int> CreateAsync(List<string> args, TextWriter stdout, CancellationToken ct)
    {
        if (args.Count == 0 || args[0].StartsWith('-'))
            throw new UsageException("sfrun warm create needs a NAME; " + Usage);
        var name = args[0];
        string? engine = null;
        string? xenHost = null;
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
            if (a is "--engine" or "-engine" or "--xen-host")
            {
                if (++i >= args.Count)
                    throw new UsageException($"option {a} needs a value");
                if (a == "--xen-host")
                    xenHost = args[i];
                else
                    engine = args[i];
            }
            else if (a.StartsWith("--engine=", StringComparison.Ordinal) || a.StartsWith("-engine=", StringComparison.Ordinal))
                engine = a[(a.IndexOf('=') + 1)..];
            else
                throw new UsageException($"unknown option {a} for sfrun warm create; " + Usage);
        }
        if (i >= args.Count)
            throw new UsageException("sfrun warm create needs a PROGRAM; " + Usage);
        if (xenHost is not null && engine is not null and not "xen")
            throw new UsageException($"--xen-host is for the xen engine, not --engine {engine}");
        if (xenHost is not null || engine == "xen")
        {
            var domain = await XenWarmDomains.CreateAsync(name, [WarmVmSetup.Resolve(args[i])], xenHost, ct);
            stdout.WriteLine($"warm domU '{domain.Name}' is ready in dom0, holding {string.Join(", ", domain.Programs)}; "
                + $"run jobs with 'sfrun --engine xen -np N --vm {domain.Name} {args[i]}'");
            return 0;
        }
        // Not EngineCatalog.Default: the process engine's warm VMs unless xen is named.
        var record = WarmVmSetup.Create(name, engine ?? "process", args[i], args.Skip(i + 1).ToList());
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
