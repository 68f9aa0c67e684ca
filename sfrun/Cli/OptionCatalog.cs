namespace Snowflock.Cli;

/// <summary>One option sfrun accepts. Names are spelled without dashes; users may write one dash
/// (mpiexec style) or two (Open MPI / GNU style).</summary>
/// <param name="Arity">0: a flag; 1: one value; 2: NAME VALUE (as <c>-genv</c>).</param>
/// <param name="Local">Belongs to one program block of an MPMD command line (<c>-n</c>, <c>-env</c>, <c>-wdir</c>).</param>
/// <param name="Equivalent">What mpiexec (hydra) or mpirun (Open MPI) users know it as.</param>
/// <param name="Expanded">Replaced by the tokenizer itself (<c>-configfile</c>); never reaches CommandLineParser.</param>
internal sealed record OptionDef(string[] Names, int Arity, string Value, string Help, string Equivalent, bool Local = false,
    bool Expanded = false)
{
    /// <summary>The long name CommandLineParser knows the option by (it needs two characters or more).</summary>
    public string Canonical => Names.FirstOrDefault(n => n.Length > 1) ?? "opt-" + Names[0];
}

/// <summary>The single list of options: the tokenizer, <c>--help</c> and the man page all read it.</summary>
internal static class OptionCatalog
{
    public static readonly IReadOnlyList<OptionDef> All =
    [
        new(["np", "n", "c"], 1, "N", "number of ranks to run (default: the allocation's slots, else 1)", "mpiexec -n/-np, mpirun -np/-c", Local: true),
        new(["hosts", "host", "H"], 1, "A,B:2,...", "hosts to run on, with optional slot counts (default: the Slurm/PBS allocation, else this host)", "mpiexec -hosts, mpirun --host"),
        new(["f", "hostfile", "machinefile"], 1, "FILE", "read hosts from FILE: 'host', 'host:slots' or 'host slots=N' per line", "mpiexec -f, mpirun --hostfile"),
        new(["ppn", "perhost", "npernode"], 1, "N", "place N ranks on each host", "mpiexec -ppn, mpirun --npernode"),
        new(["configfile"], 1, "FILE", "read program blocks from FILE, one per line (as '-n 2 ./a args')", "mpiexec -configfile", Expanded: true),
        new(["genv"], 2, "NAME VALUE", "set NAME=VALUE in every rank's environment", "mpiexec -genv"),
        new(["env"], 2, "NAME VALUE", "set NAME=VALUE for the ranks of this program block", "mpiexec -env", Local: true),
        new(["x"], 1, "NAME[=VALUE]", "export NAME (with VALUE, or its current value) to every rank", "mpirun -x"),
        new(["genvlist"], 1, "A,B,...", "pass only these variables of sfrun's environment (plus those set explicitly)", "mpiexec -genvlist"),
        new(["genvall"], 0, "", "pass sfrun's whole environment to the ranks (the default)", "mpiexec -genvall"),
        new(["genvnone"], 0, "", "pass none of sfrun's environment, only what is set explicitly", "mpiexec -genvnone"),
        new(["wdir", "wd", "dir"], 1, "DIR", "working directory of the ranks (default: the current one)", "mpiexec -wdir, mpirun -wdir/-wd", Local: true),
        new(["l", "tag-output", "prepend-rank"], 0, "", "prefix every output line with \"[rank] \"", "mpiexec -l, mpirun --tag-output"),
        new(["outfile-pattern"], 1, "PATTERN", "write each rank's stdout to a file; %r is replaced by the rank", "mpiexec -outfile-pattern"),
        new(["errfile-pattern"], 1, "PATTERN", "write each rank's stderr to a file; %r is replaced by the rank", "mpiexec -errfile-pattern"),
        new(["print-all-exitcodes"], 0, "", "print every rank's exit status when the job ends", "mpiexec -print-all-exitcodes"),
        new(["timeout"], 1, "SECONDS", "kill the job after SECONDS and exit 255 (also MPIEXEC_TIMEOUT)", "mpirun --timeout, hydra MPIEXEC_TIMEOUT"),
        new(["timeline"], 1, "FILE", "write a per-rank timeline of the job to FILE (.svg, or .html for a page)", "(sfrun only)"),
        new(["engine"], 1, "NAME", "how clones are made: process, qemu or xen (default: xen in dom0, qemu where KVM runs guests, else process; also SFRUN_ENGINE)", "(sfrun only)"),
        new(["vm"], 1, "NAME", "fork the ranks from warm VM NAME ('sfrun warm create NAME ./app'); the program may be omitted", "(sfrun only)"),
        new(["xen-host"], 1, "USER@HOST", "run the xen engine's xl in that dom0 over ssh (implies --engine xen; also XEN_HOST)", "(sfrun only)"),
        new(["isolate"], 0, "", "give each clone its own pid, uts, mount and network namespace and address on a per-job bridge (needs root)", "(sfrun only)"),
        new(["no-warm"], 0, "", "start every rank cold instead of forking it from a warm master (also SFRUN_WARM=0)", "(sfrun only)"),
        new(["max-clones"], 1, "N", "let the job's ranks hold at most N clones at once through the SnowFlock clone API, libsf (default 256; also SF_MAX_CLONES)", "(sfrun only)"),
        new(["v", "verbose"], 0, "", "log what sfrun does to stderr; with errors, show the stack trace", "mpiexec -v"),
        new(["vv"], 0, "", "log every PMI request too", "(sfrun only)"),
        new(["version", "V"], 0, "", "print the version and exit", "mpiexec --version"),
        new(["help", "h"], 0, "", "print this help and exit", "mpiexec --help"),
        new(["engines"], 0, "", "print the engines, which of them this host can run and why, and exit", "(sfrun only)"),
        new(["man"], 0, "", "print the manual page (troff) and exit", "(sfrun only)"),
    ];

    /// <summary>The options CommandLineParser reads (all but those the tokenizer expands itself).</summary>
    public static IReadOnlyList<OptionDef> Parsed => All.Where(o => !o.Expanded).ToList();

    private static readonly Dictionary<string, OptionDef> ByName =
        All.SelectMany(o => o.Names.Select(n => (n, o))).ToDictionary(p => p.n, p => p.o, StringComparer.Ordinal);

    public static OptionDef? Find(string name) => ByName.GetValueOrDefault(name);
}
