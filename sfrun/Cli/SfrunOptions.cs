using CommandLine;

namespace Snowflock.Cli;

/// <summary>The options of one program block as CommandLineParser fills them; names are the
/// canonical ones of <see cref="OptionCatalog"/> (a unit test keeps the two in step).</summary>
internal sealed class SfrunOptions
{
    [Option("np")] public string? Ranks { get; set; }
    [Option("genv")] public IEnumerable<string> GlobalEnv { get; set; } = [];
    [Option("env")] public IEnumerable<string> BlockEnv { get; set; } = [];
    [Option("opt-x")] public IEnumerable<string> Export { get; set; } = [];
    [Option("genvlist")] public IEnumerable<string> GenvList { get; set; } = [];
    [Option("genvall")] public bool GenvAll { get; set; }
    [Option("genvnone")] public bool GenvNone { get; set; }
    [Option("wdir")] public string? WorkingDirectory { get; set; }
    [Option("prepend-rank")] public bool PrependRank { get; set; }
    [Option("tag-output")] public bool TagOutput { get; set; }
    [Option("outfile-pattern")] public string? OutfilePattern { get; set; }
    [Option("errfile-pattern")] public string? ErrfilePattern { get; set; }
    [Option("print-all-exitcodes")] public bool PrintAllExitCodes { get; set; }
    [Option("timeout")] public string? Timeout { get; set; }
    [Option("timeline")] public string? Timeline { get; set; }
    [Option("engine")] public string? Engine { get; set; }
    [Option("hosts")] public string? Hosts { get; set; }
    [Option("hostfile")] public string? HostFile { get; set; }
    [Option("ppn")] public string? PerNode { get; set; }
    [Option("no-warm")] public bool NoWarm { get; set; }
    [Option("max-clones")] public string? MaxClones { get; set; }
    [Option("vm")] public string? Vm { get; set; }
    [Option("xen-host")] public string? XenHost { get; set; }
    [Option("isolate")] public bool Isolate { get; set; }
    [Option("mca")] public IEnumerable<string> Mca { get; set; } = [];
    [Option("opt-N")] public string? PerNodeOpenMpi { get; set; }
    [Option("map-by")] public string? MapBy { get; set; }
    [Option("rank-by")] public string? RankBy { get; set; }
    [Option("bind-to")] public string? BindTo { get; set; }
    [Option("report-bindings")] public bool ReportBindings { get; set; }
    [Option("display-map")] public bool DisplayMap { get; set; }
    [Option("display-allocation")] public bool DisplayAllocation { get; set; }
    [Option("oversubscribe")] public bool Oversubscribe { get; set; }
    [Option("nooversubscribe")] public bool NoOversubscribe { get; set; }
    [Option("allow-run-as-root")] public bool AllowRunAsRoot { get; set; }
    [Option("use-hwthread-cpus")] public bool UseHwthreadCpus { get; set; }
    [Option("prefix")] public string? Prefix { get; set; }
    [Option("quiet")] public bool Quiet { get; set; }
    [Option("output-filename")] public string? OutputFilename { get; set; }
    [Option("stdin")] public string? Stdin { get; set; }
    [Option("launcher")] public string? Launcher { get; set; }
    [Option("launcher-exec")] public string? LauncherExec { get; set; }
    [Option("iface")] public string? Iface { get; set; }
    [Option("envall")] public bool EnvAll { get; set; }
    [Option("envnone")] public bool EnvNone { get; set; }
    [Option("envlist")] public IEnumerable<string> EnvList { get; set; } = [];
    [Option("usize")] public string? Usize { get; set; }
    [Option("info")] public bool Info { get; set; }
    [Option("verbose")] public bool Verbose { get; set; }
    [Option("vv")] public bool VeryVerbose { get; set; }
    [Option("version")] public bool Version { get; set; }
    [Option("help")] public bool Help { get; set; }
    [Option("man")] public bool Man { get; set; }
    [Option("engines")] public bool Engines { get; set; }
}
