using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using CommandLine;
using Snowflock.Launcher;

namespace Snowflock.Cli;

/// <summary>What the user asked sfrun to do.</summary>
internal sealed record Invocation(JobSpec? Job, bool Help, bool Version, int Verbosity, bool Manual = false, bool Engines = false)
{
    /// <summary><c>-info</c>: print how sfrun was built and exit.</summary>
    public bool Info { get; init; }

    /// <summary><c>--display-allocation</c>, <c>--display-map</c>: print them before the job starts.</summary>
    public bool DisplayAllocation { get; init; }
    public bool DisplayMap { get; init; }
}

/// <summary>argv → <see cref="Invocation"/>: the tokenizer splits blocks, CommandLineParser reads
/// each block's options, and the result is checked and turned into a <see cref="JobSpec"/>.</summary>
internal static class SfrunCommandLine
{
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "SfrunOptions is rooted by DynamicDependency.")]
    [DynamicDependency(DynamicallyAccessedMemberTypes.All, typeof(SfrunOptions))]
    private static SfrunOptions ParseBlockOptions(IReadOnlyList<string> tokens)
    {
        using var parser = new Parser(s =>
        {
            s.CaseSensitive = true;
            s.AllowMultiInstance = true;
            s.AutoHelp = false;
            s.AutoVersion = false;
            s.HelpWriter = null;
            s.ParsingCulture = CultureInfo.InvariantCulture;
        });
        var result = parser.ParseArguments<SfrunOptions>(tokens);
        if (result is NotParsed<SfrunOptions> failed)
            throw new UsageException("cannot read the options: " + string.Join("; ", failed.Errors.Select(Describe)));
        return Unguarded(((Parsed<SfrunOptions>)result).Value);
    }

    private static SfrunOptions Unguarded(SfrunOptions o)
    {
        static string? One(string? v) => v is null ? null : CommandLineTokenizer.Unguard(v);
        static List<string> Many(IEnumerable<string> v) => v.Select(CommandLineTokenizer.Unguard).ToList();
        o.Ranks = One(o.Ranks);
        o.WorkingDirectory = One(o.WorkingDirectory);
        o.OutfilePattern = One(o.OutfilePattern);
        o.ErrfilePattern = One(o.ErrfilePattern);
        o.Timeout = One(o.Timeout);
        o.Engine = One(o.Engine);
        o.Vm = One(o.Vm);
        o.XenHost = One(o.XenHost);
        o.Hosts = One(o.Hosts);
        o.Timeline = One(o.Timeline);
        o.HostFile = One(o.HostFile);
        o.PerNode = One(o.PerNode);
        o.MaxClones = One(o.MaxClones);
        o.GlobalEnv = Many(o.GlobalEnv);
        o.BlockEnv = Many(o.BlockEnv);
        o.Export = Many(o.Export);
        o.GenvList = Many(o.GenvList);
        o.Mca = Many(o.Mca);
        o.PerNodeOpenMpi = One(o.PerNodeOpenMpi);
        o.MapBy = One(o.MapBy);
        o.BindTo = One(o.BindTo);
        o.OutputFilename = One(o.OutputFilename);
        o.Stdin = One(o.Stdin);
        o.Launcher = One(o.Launcher);
        o.LauncherExec = One(o.LauncherExec);
        o.Iface = One(o.Iface);
        o.Prefix = One(o.Prefix);
        o.RankBy = One(o.RankBy);
        o.Usize = One(o.Usize);
        o.EnvList = Many(o.EnvList);
        return o;
    }

    private static string Describe(Error e) => e switch
    {
        NamedError n => $"{e.Tag} (-{n.NameInfo.NameText})",
        _ => e.Tag.ToString(),
    };

    public static Invocation Parse(IReadOnlyList<string> args, Func<string, string?> getEnv)
    {
        var sections = CommandLineTokenizer.Split(args);
        var parsed = sections.Select(s => (Section: s, Options: ParseBlockOptions(s.OptionTokens))).ToList();
        var all = parsed.Select(p => p.Options).ToList();
        var verbosity = all.Any(o => o.VeryVerbose) ? 2 : all.Any(o => o.Verbose) ? 1 : 0;
        if (all.Any(o => o.Engines))
            return new Invocation(null, false, false, verbosity, Engines: true);
        if (all.Any(o => o.Man))
            return new Invocation(null, false, false, verbosity, Manual: true);
        if (all.Any(o => o.Help))
            return new Invocation(null, true, false, verbosity);
        if (all.Any(o => o.Version))
            return new Invocation(null, false, true, verbosity);
        if (all.Any(o => o.Info))
            return new Invocation(null, false, false, verbosity) { Info = true };
        var launcherName = all.Select(o => o.Launcher).LastOrDefault(l => l is not null);
        if (launcherName is not null && !Snowflock.Launcher.Hosts.HostLaunchOptions.Names.Contains(launcherName) && launcherName != "rsh")
            throw new UsageException($"-launcher {launcherName}: sfrun's launchers are {string.Join(", ", Snowflock.Launcher.Hosts.HostLaunchOptions.Names)}");

        var vm = all.Select(o => o.Vm).LastOrDefault(v => v is not null);
        if (all.Any(o => o.Isolate) && all.Any(o => o.NoWarm))
            throw new UsageException("--isolate forks every clone from a warm master; it cannot be combined with --no-warm");
        var xenHost = all.Select(o => o.XenHost).LastOrDefault(h => h is not null);
        if (xenHost is "")
            throw new UsageException("--xen-host needs USER@HOST, got an empty string");
        var askedEngine = all.Select(o => o.Engine).LastOrDefault(e => e is not null);
        if (xenHost is not null)
        {
            // Naming a dom0 names the engine that uses one.
            if (askedEngine is not null and not "xen")
                throw new UsageException($"--xen-host is for the xen engine, not --engine {askedEngine}");
            askedEngine = "xen";
        }
        if (vm is not null)
            parsed = askedEngine == "xen" ? WithXenWarmDomain(parsed, all.Any(o => o.NoWarm)) : WithWarmVmProgram(parsed, vm, all.Any(o => o.NoWarm));
        var blocks = new List<ProgramBlock>();
        foreach (var (section, options) in parsed)
        {
            if (section.Program is null)
                throw new UsageException("no program given; usage: sfrun -np N program [args...]");
            if (section.OptionTokens.Count(t => t.StartsWith("--np=", StringComparison.Ordinal)) > 1)
                throw new UsageException("-n/-np is given twice for one program; give it once (use ':' for another program block)");
            if (options.WorkingDirectory is "")
                throw new UsageException("-wdir needs a directory, got an empty string");
            blocks.Add(new ProgramBlock(RankCount(options.Ranks), section.Program, section.ProgramArguments)
            {
                Environment = Pairs(options.BlockEnv, "-env"),
                WorkingDirectory = options.WorkingDirectory,
            });
        }

        var genv = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in all.SelectMany(o => Pairs(o.GlobalEnv, "-genv")))
            genv[k] = v;
        foreach (var x in all.SelectMany(o => o.Export))
        {
            var eq = x.IndexOf('=');
            var name = eq < 0 ? x : x[..eq];
            CheckName(name, "-x");
            // -x NAME exports sfrun's own value; unset stays unset, as in Open MPI.
            if (eq >= 0)
                genv[name] = x[(eq + 1)..];
            else if (getEnv(name) is { } current)
                genv[name] = current;
        }

        // Open MPI's MCA parameters reach its ranks as OMPI_MCA_KEY; other programs never read them.
        foreach (var (k, v) in all.SelectMany(o => Pairs(o.Mca, "--mca")))
            genv["OMPI_MCA_" + k] = v;

        // hydra's -envall/-envnone/-envlist are per block there; sfrun applies them to the job.
        var genvList = all.SelectMany(o => o.GenvList.Concat(o.EnvList))
            .SelectMany(l => l.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
        var policy = all.Any(o => o.GenvNone || o.EnvNone) ? EnvironmentPolicy.None
            : genvList.Count > 0 ? EnvironmentPolicy.Listed
            : EnvironmentPolicy.All;
        if (all.Any(o => o.GenvAll || o.EnvAll))
            policy = EnvironmentPolicy.All;
        var perNode = DialectOptions.PerNode(all.Select(o => o.PerNode).LastOrDefault(p => p is not null),
            all.Select(o => o.PerNodeOpenMpi).LastOrDefault(p => p is not null), all.Select(o => o.MapBy).LastOrDefault(m => m is not null));
        var binding = DialectOptions.Binding(all.Select(o => o.BindTo).LastOrDefault(b => b is not null));
        var outputDir = all.Select(o => o.OutputFilename).LastOrDefault(d => d is not null);
        if (outputDir is "")
            throw new UsageException("--output-filename needs a directory, got an empty string");
        if (all.Any(o => o.NoOversubscribe) && blocks.Sum(b => b.Ranks) is var asked && asked > Environment.ProcessorCount)
            throw new UsageException($"--nooversubscribe: {asked} ranks but this host has {Environment.ProcessorCount} CPUs; "
                + "ask for fewer ranks or leave --nooversubscribe out");

        var timeoutText = all.Select(o => o.Timeout).LastOrDefault(t => t is not null) ?? getEnv("MPIEXEC_TIMEOUT");
        var maxClones = all.Select(o => o.MaxClones).LastOrDefault(m => m is not null) is { } mc ? PositiveCount(mc, "--max-clones")
            : getEnv("SF_MAX_CLONES") is { Length: > 0 } env ? PositiveCount(env, "SF_MAX_CLONES") : (int?)null;
        return new Invocation(new JobSpec
        {
            Blocks = blocks,
            Inherit = policy,
            InheritList = genvList,
            GlobalEnvironment = genv,
            Output = new OutputOptions
            {
                // The spelling says the dialect: hydra's -l/-prepend-rank, Open MPI's --tag-output.
                TagLines = all.Any(o => o.TagOutput || o.PrependRank),
                OpenMpiTags = all.Any(o => o.TagOutput) && !all.Any(o => o.PrependRank),
                StdoutPattern = all.Select(o => o.OutfilePattern).LastOrDefault(p => p is not null),
                StderrPattern = all.Select(o => o.ErrfilePattern).LastOrDefault(p => p is not null),
            }.WithOutputDirectory(outputDir),
            Binding = binding,
            ReportBindings = all.Any(o => o.ReportBindings),
            StdinRank = DialectOptions.StdinRank(all.Select(o => o.Stdin).LastOrDefault(s => s is not null)),
            PrintAllExitCodes = all.Any(o => o.PrintAllExitCodes),
            Engine = askedEngine == "xen" ? "xen" : EngineFor(askedEngine, vm),
            XenHost = xenHost,
            Warm = !all.Any(o => o.NoWarm),
            WarmVm = vm,
            Isolate = all.Any(o => o.Isolate),
            TimelinePath = all.Select(o => o.Timeline).LastOrDefault(t => t is not null),
            HostList = all.Select(o => o.Hosts).LastOrDefault(h => h is not null),
            HostFile = all.Select(o => o.HostFile).LastOrDefault(h => h is not null),
            PerNode = perNode,
            MapByNode = all.Select(o => o.MapBy).LastOrDefault(m => m is not null) is "node",
            HostLaunch = new Snowflock.Launcher.Hosts.HostLaunchOptions
            {
                Launcher = launcherName,
                LauncherExec = all.Select(o => o.LauncherExec).LastOrDefault(l => l is not null),
                Interface = all.Select(o => o.Iface).LastOrDefault(i => i is not null),
            },
            Timeout = timeoutText is null ? null : Timeout(timeoutText),
            MaxClones = maxClones,
        }, false, false, verbosity) { DisplayAllocation = all.Any(o => o.DisplayAllocation), DisplayMap = all.Any(o => o.DisplayMap) };
    }

    /// <summary>With <c>--vm NAME</c> there is one program block, and its program may be left out:
    /// it is then the warm VM's own program and arguments.</summary>
    private static List<(CommandSection Section, SfrunOptions Options)> WithWarmVmProgram(
        List<(CommandSection Section, SfrunOptions Options)> parsed, string vm, bool noWarm)
    {
        if (noWarm)
            throw new UsageException("--vm and --no-warm contradict each other: a warm VM's ranks are forked");
        if (parsed.Count > 1)
            throw new UsageException("--vm runs one program block (the warm VM's program); MPMD ':' blocks need their own masters");
        var (section, options) = parsed[0];
        if (section.Program is not null)
            return parsed;
        var record = Snowflock.Engine.WarmVms.Find(vm);
        return [(section with { Program = record.Program, ProgramArguments = record.Arguments }, options)];
    }

    /// <summary>A warm domU (<c>--engine xen --vm NAME</c>) lives in dom0, which the command line
    /// does not ask: the program must be given, and dom0 checks that the domU holds it.</summary>
    private static List<(CommandSection Section, SfrunOptions Options)> WithXenWarmDomain(
        List<(CommandSection Section, SfrunOptions Options)> parsed, bool noWarm)
    {
        if (noWarm)
            throw new UsageException("--vm and --no-warm contradict each other: a warm domU's ranks are cloned");
        if (parsed.Count > 1)
            throw new UsageException("--vm runs one program block (the warm domU's program); MPMD ':' blocks need their own masters");
        if (parsed[0].Section.Program is null)
            throw new UsageException("--engine xen --vm NAME needs the program too (one the warm domU was created with)");
        return parsed;
    }

    /// <summary>The engine asked for; with <c>--vm</c> the warm VM's own (another is an error), else the default.</summary>
    private static string EngineFor(string? asked, string? vm)
    {
        if (vm is null)
            return asked ?? Snowflock.Engine.EngineCatalog.Default;
        string held;
        try
        {
            held = Snowflock.Engine.WarmVms.Find(vm).Engine;
        }
        catch (Snowflock.Engine.WarmVmNotFoundException)
        {
            // The job says so, in one line, when it looks for the warm VM to fork from.
            return asked ?? "process";
        }
        if (asked is not null && asked != held)
            throw new UsageException($"--engine {asked}: warm VM '{vm}' is a {held} engine warm VM");
        return held;
    }

    private static int RankCount(string? text)
    {
        if (text is null)
            return 0; // not given: the launcher decides from the allocation, as mpiexec does
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n <= 0)
            throw new UsageException($"-np needs a positive whole number of ranks, got '{text}'");
        return n;
    }

    internal static int PositiveCount(string text, string option) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new UsageException($"{option} needs a positive whole number, got '{text}'");

    private static TimeSpan Timeout(string text)
    {
        if (!double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var s) || s <= 0 || s > 1e8)
            throw new UsageException($"-timeout needs a positive number of seconds, got '{text}'");
        return TimeSpan.FromSeconds(s);
    }

    private static Dictionary<string, string> Pairs(IEnumerable<string> tokens, string option)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var t in tokens)
        {
            var sep = t.IndexOf(CommandLineTokenizer.PairSeparator);
            var name = sep < 0 ? t : t[..sep];
            CheckName(name, option);
            map[name] = sep < 0 ? "" : t[(sep + 1)..];
        }
        return map;
    }

    private static void CheckName(string name, string option)
    {
        if (name.Length == 0 || name.Contains('=') || name.Contains('\0'))
            throw new UsageException($"{option}: '{name}' is not a valid environment variable name");
    }
}
