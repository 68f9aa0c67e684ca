namespace Snowflock.Cli;

/// <summary>One option sfrun accepts. Names are spelled without dashes; users may write one dash
/// (mpiexec style) or two (Open MPI / GNU style).</summary>
/// <param name="Arity">0: a flag; 1: one value; 2: NAME VALUE (as <c>-genv</c>).</param>
/// <param name="Local">Belongs to one program block of an MPMD command line (<c>-n</c>, <c>-env</c>, <c>-wdir</c>).</param>
/// <param name="Equivalent">What mpiexec (hydra) or mpirun (Open MPI) users know it as.</param>
/// <param name="Expanded">Replaced by the tokenizer itself (<c>-configfile</c>); never reaches CommandLineParser.</param>
/// <param name="Support">Whether it does here what it does in its launcher, is accepted without effect, or is refused.</param>
/// <param name="Why">For a no-op: why it has no meaning here; for a refused option: the one-line reason the user sees.</param>
/// <param name="Sample">A value the option accepts (the tests pass it).</param>
internal sealed record OptionDef(string[] Names, int Arity, string Value, string Help, string Equivalent, bool Local = false,
    bool Expanded = false, Support Support = Support.Supported, string Why = "", string Sample = "1")
{
    /// <summary>The long name CommandLineParser knows the option by (it needs two characters or more).</summary>
    public string Canonical => Names.FirstOrDefault(n => n.Length > 1) ?? "opt-" + Names[0];
}

/// <summary>What an option of mpiexec (hydra) or mpirun (Open MPI) does under sfrun.</summary>
internal enum Support
{
    /// <summary>Does what it does in its launcher.</summary>
    Supported,
    /// <summary>Accepted; it has no meaning on one host under sfrun (<see cref="OptionDef.Why"/> says why).</summary>
    NoOp,
    /// <summary>Known, refused with <see cref="OptionDef.Why"/> and exit 2, not mistaken for a typo.</summary>
    Refused,
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
        new(["l", "prepend-rank"], 0, "", "prefix every output line with \"[rank] \", as hydra", "mpiexec -l/-prepend-rank"),
        new(["tag-output"], 0, "", "prefix every output line with \"[1,rank]<stdout>:\" (<stderr> on stderr), as Open MPI", "mpirun --tag-output"),
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
        new(["mca"], 2, "KEY VALUE", "set Open MPI's MCA parameter KEY (OMPI_MCA_KEY=VALUE in every rank)", "mpirun --mca", Sample: "btl_tcp_if_include"),
        new(["app"], 1, "FILE", "read program blocks from an Open MPI appfile, one per line (as '-np 2 ./a args')", "mpirun --app", Expanded: true),
        new(["N"], 1, "N", "place N ranks on each host (as -ppn)", "mpirun -N"),
        new(["map-by"], 1, "slot|core|node|ppr:N:node", "how ranks are placed; ppr:N:node is N per host; slot, core and node fill this one host in rank order", "mpirun --map-by, mpiexec -map-by", Sample: "slot"),
        new(["rank-by"], 1, "slot|node|core", "accepted: on one host ranks are numbered in placement order whatever it says", "mpirun --rank-by",
            Support: Support.NoOp, Why: "one host: rank order is placement order", Sample: "slot"),
        new(["bind-to", "binding"], 1, "core|socket|hwthread|none", "pin each rank to its own core (socket, hardware thread), round robin over the CPUs sfrun may use; none: no pinning (the default)",
            "mpirun --bind-to, mpiexec -bind-to/-binding", Sample: "none"),
        new(["report-bindings"], 0, "", "say on stderr where each rank is bound, in Open MPI's words", "mpirun --report-bindings"),
        new(["display-map"], 0, "", "print the job's map (hosts and ranks) before it starts", "mpirun --display-map"),
        new(["display-allocation"], 0, "", "print the hosts and slots the job may use before it starts", "mpirun --display-allocation"),
        new(["oversubscribe"], 0, "", "accepted: sfrun always lets ranks outnumber the cores (Open MPI ranks are told, and yield)", "mpirun --oversubscribe",
            Support: Support.NoOp, Why: "sfrun oversubscribes by default"),
        new(["nooversubscribe"], 0, "", "refuse a job with more ranks than this host has CPUs", "mpirun --nooversubscribe"),
        new(["allow-run-as-root"], 0, "", "accepted: sfrun runs as root without being asked", "mpirun --allow-run-as-root",
            Support: Support.NoOp, Why: "sfrun does not refuse root"),
        new(["use-hwthread-cpus"], 0, "", "accepted: sfrun's slots are already the hardware threads", "mpirun --use-hwthread-cpus",
            Support: Support.NoOp, Why: "slots are hardware threads already"),
        new(["prefix"], 1, "DIR", "accepted: Open MPI's install prefix on remote hosts; sfrun runs no remote daemon", "mpirun --prefix",
            Support: Support.NoOp, Why: "no remote daemons to find", Sample: "/usr"),
        new(["quiet", "q"], 0, "", "accepted: sfrun prints nothing but the one line that says why a job failed", "mpirun -q",
            Support: Support.NoOp, Why: "sfrun is quiet already"),
        new(["output-filename"], 1, "DIR", "write rank r's stdout and stderr to DIR/1/rank.r/stdout and stderr, as Open MPI", "mpirun --output-filename", Sample: "/tmp/sfrun-out"),
        new(["stdin"], 1, "RANK|all|none", "which rank reads sfrun's stdin (default 0); none: no rank", "mpirun --stdin", Sample: "0"),
        new(["launcher", "bootstrap"], 1, "ssh|slurm|fork|manual", "how sfrun's agent reaches the other hosts: slurm inside a Slurm allocation, else ssh (rsh too); fork: this host; manual: print the agents' commands",
            "mpiexec -launcher/-bootstrap", Sample: "fork"),
        new(["launcher-exec", "bootstrap-exec"], 1, "PATH", "the launcher's program (an ssh or srun of your own)", "mpiexec -launcher-exec", Sample: "ssh"),
        new(["iface"], 1, "NAME", "the interface whose IPv4 address the other hosts' agents dial back to (default: this host's name)", "mpiexec -iface", Sample: "lo"),
        new(["envall"], 0, "", "as -genvall (for the whole job)", "mpiexec -envall"),
        new(["envnone"], 0, "", "as -genvnone (for the whole job)", "mpiexec -envnone"),
        new(["envlist"], 1, "A,B,...", "as -genvlist (for the whole job)", "mpiexec -envlist"),
        new(["usize"], 1, "N", "accepted: the universe size for MPI_Comm_spawn, which sfrun's PMI does not offer", "mpiexec -usize",
            Support: Support.NoOp, Why: "no MPI_Comm_spawn"),
        new(["info"], 0, "", "print how sfrun was built and what it can launch with, and exit", "mpiexec -info"),
        new(["timestamp-output"], 0, "", "refused: not supported yet", "mpirun --timestamp-output",
            Support: Support.Refused, Why: "is not supported yet; prefix lines yourself (ts from moreutils)"),
        new(["merge-stderr-to-stdout"], 0, "", "refused: not supported yet", "mpirun --merge-stderr-to-stdout",
            Support: Support.Refused, Why: "is not supported yet; redirect instead: sfrun ... 2>&1"),
        new(["prepend-pattern"], 1, "PATTERN", "refused: not supported yet", "mpiexec -prepend-pattern",
            Support: Support.Refused, Why: "is not supported yet; use -l for \"[rank] \" prefixes"),
        new(["v", "verbose"], 0, "", "log what sfrun does to stderr; with errors, show the stack trace", "mpiexec -v"),
        new(["vv"], 0, "", "log every PMI request too", "(sfrun only)"),
        new(["version", "V"], 0, "", "print the version and exit", "mpiexec --version"),
        new(["help", "h"], 0, "", "print this help and exit", "mpiexec --help"),
        new(["engines"], 0, "", "print the engines, which of them this host can run and why, and exit", "(sfrun only)"),
        new(["man"], 0, "", "print the manual page (troff) and exit", "(sfrun only)"),
    ];

    /// <summary>The options CommandLineParser reads (all but those the tokenizer expands itself).</summary>
    public static IReadOnlyList<OptionDef> Parsed => All.Where(o => !o.Expanded && o.Support != Support.Refused).ToList();

    private static readonly Dictionary<string, OptionDef> ByName =
        All.SelectMany(o => o.Names.Select(n => (n, o))).ToDictionary(p => p.n, p => p.o, StringComparer.Ordinal);

    public static OptionDef? Find(string name) => ByName.GetValueOrDefault(name);

    /// <summary>The README's compatibility table (a unit test keeps the README's copy equal to it):
    /// every option, what hydra or Open MPI calls it, and whether it works, is accepted without
    /// effect, or is refused, with the reason.</summary>
    public static string CompatibilityTable()
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendLine("| sfrun option | like | here |");
        sb.AppendLine("|---|---|---|");
        foreach (var o in All)
        {
            var names = string.Join(", ", o.Names.Select(n => $"`-{n}`"));
            var here = o.Support switch
            {
                Support.NoOp => "accepted, no effect: " + o.Why,
                Support.Refused => "refused (exit 2): " + o.Why,
                _ => "supported",
            };
            sb.AppendLine($"| {names} | {o.Equivalent} | {here} |");
        }
        return sb.ToString();
    }
}
