using System.Reflection;
using System.Text;

namespace Snowflock.Cli;

/// <summary>--help and --version, written from <see cref="OptionCatalog"/>.</summary>
internal static class HelpText
{
    public static string Version =>
        $"sfrun {typeof(HelpText).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion?.Split('+')[0] ?? "0"}"
        + " (Snowflock; PMI-1 wire protocol; engines: process)";

    public static string Usage()
    {
        var sb = new StringBuilder();
        sb.AppendLine("usage: sfrun [options] program [args...] [: [options] program [args...]]...");
        sb.AppendLine();
        sb.AppendLine("Runs an MPI program like mpiexec/mpirun; options may start with - or --.");
        sb.AppendLine("Everything after the program belongs to the program; ':' starts another program block (MPMD).");
        sb.AppendLine("Warm VMs (warm masters kept between jobs): sfrun warm create NAME [--engine E] [--] program [args...],");
        sb.AppendLine("sfrun warm list, sfrun warm rm NAME...|--all; then sfrun -np N --vm NAME.");
        sb.AppendLine();
        sb.AppendLine("options:");
        foreach (var o in OptionCatalog.All)
        {
            var names = string.Join(", ", o.Names.Select(n => "-" + n));
            var head = o.Value.Length > 0 ? $"{names} {o.Value}" : names;
            sb.Append("  ").Append(head.PadRight(34)).Append(o.Help);
            if (o.Local)
                sb.Append(" [per block]");
            sb.AppendLine();
            sb.Append(' ', 36).Append("like: ").AppendLine(o.Equivalent);
        }
        sb.AppendLine();
        sb.AppendLine("environment: SFRUN_LOG=FILE writes the log to FILE; MPIEXEC_TIMEOUT=SECONDS as -timeout.");
        sb.AppendLine("sfrun image build|list|rm: the guest images of the VM engines (sfrun image --help).");
        foreach (var line in ExitStatusLines)
            sb.AppendLine(line);
        return sb.ToString();
    }

    public static readonly string[] ExitStatusLines =
    [
        "exit status: 0 if every rank exits 0; the code given to MPI_Abort; else the first failing",
        "rank's exit code, or its signal number if a signal killed it (as MPICH's mpiexec); 1 if an",
        "MPI rank exits 0 before MPI_Finalize; 255 for a timeout, a PMI protocol error or a rank that",
        "cannot start; 128+N if sfrun itself got signal N; 2 for a command-line error; 127 if the",
        "program is missing; 1 for other bad input (host file, output file, -wdir, engine).",
    ];
}
