namespace Snowflock.Launcher;

/// <summary>A whole job as the user asked for it, before anything is resolved or started.</summary>
public sealed record JobSpec
{
    /// <summary>One block per program (MPMD: <c>-np 1 ./a : -np 4 ./b</c>); ranks are numbered across blocks.</summary>
    public required IReadOnlyList<ProgramBlock> Blocks { get; init; }

    /// <summary>Which variables of sfrun's own environment the ranks inherit.</summary>
    public EnvironmentPolicy Inherit { get; init; } = EnvironmentPolicy.All;

    /// <summary>With <see cref="EnvironmentPolicy.Listed"/>: the variables to pass on.</summary>
    public IReadOnlyList<string> InheritList { get; init; } = [];

    /// <summary><c>-genv</c>/<c>-x</c>: variables set for every rank.</summary>
    public IReadOnlyDictionary<string, string> GlobalEnvironment { get; init; } = new Dictionary<string, string>();

    public OutputOptions Output { get; init; } = new();

    /// <summary>Print every rank's exit status at the end, as hydra's <c>-print-all-exitcodes</c>.</summary>
    public bool PrintAllExitCodes { get; init; }

    public string Engine { get; init; } = Snowflock.Engine.EngineCatalog.Default;

    /// <summary><c>--xen-host USER@HOST</c>: the dom0 the xen engine drives over ssh; null: XEN_HOST, or this host.</summary>
    public string? XenHost { get; init; }

    /// <summary>Fork ranks from a warm master where the engine can (<c>--no-warm</c> turns it off).</summary>
    public bool Warm { get; init; } = true;

    /// <summary><c>--vm NAME</c>: fork the ranks from this warm VM (<c>sfrun warm create</c>) instead of a master of the job's own.</summary>
    public string? WarmVm { get; init; }

    /// <summary><c>--isolate</c>: every clone in namespaces of its own, on a per-job bridge.</summary>
    public bool Isolate { get; init; }

    /// <summary><c>-hosts</c>: hosts (and slots) to place ranks on; null: host file, batch allocation, or this host.</summary>
    public string? HostList { get; init; }

    /// <summary><c>-f</c>: a host file.</summary>
    public string? HostFile { get; init; }

    /// <summary><c>-ppn</c>: ranks per host, overriding the slot counts.</summary>
    public int? PerNode { get; init; }

    /// <summary><c>--timeline FILE</c>: write a per-rank timeline of the job (.svg, or .html).</summary>
    public string? TimelinePath { get; init; }

    /// <summary><c>--max-clones</c>/<c>SF_MAX_CLONES</c>: clones the job's ranks may hold at once through the
    /// SnowFlock clone API (native/sf); null: the agent's default.</summary>
    public int? MaxClones { get; init; }

    /// <summary>Ends the job (exit code 255 like hydra's MPIEXEC_TIMEOUT) after this long; null: never.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary><c>--bind-to</c>: what each rank is pinned to (<see cref="Placement.CpuBinding"/>).</summary>
    public Placement.BindingPolicy Binding { get; init; }

    /// <summary><c>--report-bindings</c>: say where each rank is bound, as Open MPI does.</summary>
    public bool ReportBindings { get; init; }

    /// <summary><c>--stdin</c>: the rank that reads sfrun's stdin; null: none. Default 0, as both launchers.</summary>
    public int? StdinRank { get; init; } = 0;

    /// <summary><c>--map-by node</c> (<c>-map-by node</c>): ranks go round the hosts one at a time instead of filling each host's slots.</summary>
    public bool MapByNode { get; init; }

    /// <summary><c>-launcher</c>, <c>-launcher-exec</c>, <c>-iface</c>: how the other hosts of a multi-host job are reached.</summary>
    public Hosts.HostLaunchOptions HostLaunch { get; init; } = new();

    public int TotalRanks => Blocks.Sum(b => b.Ranks);
}

/// <summary>One program and how many ranks run it, with its per-block options.</summary>
/// <param name="Ranks">How many ranks run it; 0 when the user gave no <c>-n</c> (the launcher then uses the allocation's slots).</param>
public sealed record ProgramBlock(int Ranks, string Program, IReadOnlyList<string> Arguments)
{
    /// <summary><c>-env</c>: variables for this block only; they override <c>-genv</c>.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary><c>-wdir</c>; null: sfrun's working directory.</summary>
    public string? WorkingDirectory { get; init; }
}

public enum EnvironmentPolicy
{
    /// <summary>Hydra's default (<c>-genvall</c>): ranks get sfrun's whole environment.</summary>
    All,
    /// <summary><c>-genvnone</c>: only what is set explicitly.</summary>
    None,
    /// <summary><c>-genvlist A,B</c>: only the listed variables, plus what is set explicitly.</summary>
    Listed,
}

/// <summary>Where rank output goes and how it is labelled.</summary>
public sealed record OutputOptions
{
    /// <summary><c>-l</c>: prefix every line with <c>[rank] </c>.</summary>
    public bool TagLines { get; init; }

    /// <summary>With <see cref="TagLines"/>: Open MPI's <c>[1,rank]&lt;stdout&gt;:</c> (<c>--tag-output</c>)
    /// instead of hydra's <c>[rank] </c> (<c>-l</c>, <c>-prepend-rank</c>).</summary>
    public bool OpenMpiTags { get; init; }

    /// <summary><c>-outfile-pattern</c>: per-rank stdout file; <c>%r</c> is the rank.</summary>
    public string? StdoutPattern { get; init; }

    /// <summary><c>-errfile-pattern</c>: per-rank stderr file; <c>%r</c> is the rank.</summary>
    public string? StderrPattern { get; init; }

    /// <summary>Make the folders the patterns name (<c>--output-filename DIR</c>: DIR/1/rank.N/ as Open MPI).</summary>
    public bool CreateFolders { get; init; }

    /// <summary><c>--output-filename DIR</c>: rank r's stdout and stderr in DIR/1/rank.r/stdout and stderr, Open MPI's layout
    /// ("1" is the job's number there); null leaves the options as they are.</summary>
    public OutputOptions WithOutputDirectory(string? dir) => dir is null ? this : this with
    {
        StdoutPattern = Path.Combine(Path.GetFullPath(dir), "1", "rank.%r", "stdout"),
        StderrPattern = Path.Combine(Path.GetFullPath(dir), "1", "rank.%r", "stderr"),
        CreateFolders = true,
    };
}
