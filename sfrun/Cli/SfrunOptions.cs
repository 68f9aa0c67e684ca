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
    [Option("verbose")] public bool Verbose { get; set; }
    [Option("vv")] public bool VeryVerbose { get; set; }
    [Option("version")] public bool Version { get; set; }
    [Option("help")] public bool Help { get; set; }
    [Option("man")] public bool Man { get; set; }
    [Option("engines")] public bool Engines { get; set; }
}
