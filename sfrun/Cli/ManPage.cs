using System.Text;

namespace Snowflock.Cli;

/// <summary>sfrun(1) in troff man format, written from <see cref="OptionCatalog"/> so the manual
/// and <c>--help</c> can never disagree. scripts/install writes it to share/man/man1/sfrun.1.</summary>
internal static class ManPage
{
    public static string Render()
    {
        var sb = new StringBuilder();
        sb.AppendLine(".TH SFRUN 1 \"\" \"" + Escape(HelpText.Version) + "\" \"User Commands\"");
        sb.AppendLine(".SH NAME");
        sb.AppendLine("sfrun \\- run MPI programs like mpiexec, by cloning a warm master");
        sb.AppendLine(".SH SYNOPSIS");
        sb.AppendLine(".B sfrun");
        sb.AppendLine("[\\fIoptions\\fR] \\fIprogram\\fR [\\fIargs\\fR...] [\\fB:\\fR [\\fIoptions\\fR] \\fIprogram\\fR [\\fIargs\\fR...]]...");
        sb.AppendLine(".SH DESCRIPTION");
        sb.AppendLine("sfrun is a drop-in replacement for mpiexec(1) and mpirun(1): the same options, output and exit codes,");
        sb.AppendLine("for MPI programs built against MPICH or Open MPI, unchanged. Options may start with one dash or two;");
        sb.AppendLine("everything after the program belongs to the program, and a lone \\fB:\\fR starts another program block (MPMD).");
        sb.AppendLine(".SH OPTIONS");
        foreach (var o in OptionCatalog.All)
        {
            sb.AppendLine(".TP");
            sb.Append(string.Join(", ", o.Names.Select(n => "\\fB\\-" + Escape(n) + "\\fR")));
            if (o.Value.Length > 0)
                sb.Append(" \\fI").Append(Escape(o.Value)).Append("\\fR");
            sb.AppendLine();
            sb.AppendLine(Escape(o.Help) + (o.Local ? " (per program block)" : "") + ".");
            sb.AppendLine("Like: " + Escape(o.Equivalent) + ".");
        }
        sb.AppendLine(".SH ENVIRONMENT");
        sb.AppendLine(".TP\n\\fBSFRUN_LOG\\fR\nwrite the log to this file.");
        sb.AppendLine(".TP\n\\fBMPIEXEC_TIMEOUT\\fR\nas \\fB\\-timeout\\fR.");
        sb.AppendLine(".TP\n\\fBSLURM_JOB_NODELIST\\fR, \\fBSLURM_TASKS_PER_NODE\\fR, \\fBPBS_NODEFILE\\fR\nthe batch allocation, used when no \\fB\\-hosts\\fR or \\fB\\-f\\fR is given.");
        sb.AppendLine(".TP\n\\fBSFRUN_ENGINE\\fR\nthe engine used without \\fB\\-engine\\fR.");
        sb.AppendLine(".TP\n\\fBSFRUN_QEMU\\fR, \\fBSFRUN_QEMU_ACCEL\\fR, \\fBSFRUN_QEMU_MEMORY\\fR\nqemu engine: the QEMU binary, tcg or kvm, guest RAM in MiB.");
        sb.AppendLine(".TP\n\\fBXEN_HOST\\fR, \\fBSFRUN_SSH_CONFIG\\fR\nxen engine: dom0 as USER@HOST (as \\fB\\-xen\\-host\\fR), and an ssh_config file for reaching it.");
        sb.AppendLine(".TP\n\\fBSFRUN_XEN_BRIDGE\\fR, \\fBSFRUN_XEN_NET\\fR, \\fBSFRUN_XEN_GATEWAY\\fR, \\fBSFRUN_XEN_CONTROL\\fR, \\fBSFRUN_XEN_MEMORY\\fR\n"
            + "xen engine: the dom0 bridge of the clones' vifs, their first address/prefix, their default route, the ADDRESS[:PORT] at which they reach sfrun, domU RAM in MiB.");
        sb.AppendLine(".SH EXIT STATUS");
        foreach (var line in HelpText.ExitStatusLines)
            sb.AppendLine(Escape(line));
        sb.AppendLine(".SH SEE ALSO");
        sb.AppendLine("mpiexec(1), mpirun(1)");
        return sb.ToString();
    }

    private static string Escape(string s) => s.Replace("\\", "\\\\").Replace("-", "\\-").Replace("'", "\\(aq");
}
