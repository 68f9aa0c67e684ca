using Snowflock.Launcher;
using Snowflock.Launcher.Placement;

namespace Snowflock.Cli;

/// <summary>What <c>--display-allocation</c>, <c>--display-map</c>, <c>--report-bindings</c> and <c>-info</c>
/// print, in the words of the launcher the option comes from (Open MPI 4.1's for the first three, measured).</summary>
internal static class JobDisplay
{
    private static string Host => Environment.MachineName;

    /// <summary>Ranks the job will run: as asked, else one (an allocation's slots are not known here).</summary>
    private static int Ranks(JobSpec spec) => spec.Blocks.Sum(b => Math.Max(b.Ranks, 1));

    public static string Allocation(JobSpec spec) =>
        "======================   ALLOCATED NODES   ======================\n"
        + $"\t{Host}: flags=0x11 slots={Environment.ProcessorCount} max_slots=0 slots_inuse=0 state=UP\n"
        + "=================================================================\n";

    public static string Map(JobSpec spec)
    {
        var binding = spec.Binding == BindingPolicy.None ? null : new CpuBinding(spec.Binding);
        var job = $"[{Environment.ProcessId & 0xffff},1]";
        var lines = new List<string>
        {
            $" Data for JOB {job} offset 0 Total slots allocated {Environment.ProcessorCount}",
            "",
            " ========================   JOB MAP   ========================",
            "",
            $" Data for node: {Host}\tNum slots: {Environment.ProcessorCount}\tMax slots: 0\tNum procs: {Ranks(spec)}",
        };
        var rank = 0;
        for (var app = 0; app < spec.Blocks.Count; app++)
            for (var i = 0; i < Math.Max(spec.Blocks[app].Ranks, 1); i++, rank++)
            {
                var bound = binding?.Report(rank, rank) is { } r && r.Contains(" bound to ") ? r[(r.IndexOf(" bound to ", StringComparison.Ordinal) + 10)..].Replace(": ", ":") : "N/A";
                lines.Add($" \tProcess OMPI jobid: {job} App: {app} Process rank: {rank} Bound: {bound}");
            }
        lines.Add("");
        lines.Add(" =============================================================");
        return string.Join('\n', lines) + "\n";
    }

    /// <summary>One line per rank, as mpirun writes them to stderr when the ranks start.</summary>
    public static IEnumerable<string> Bindings(JobSpec spec)
    {
        var binding = new CpuBinding(spec.Binding);
        for (var r = 0; r < Ranks(spec); r++)
            yield return $"[{Host}:{Environment.ProcessId}] {binding.Report(r, r)}";
    }

    public static string Info() =>
        $"{HelpText.Version}\n"
        + "    Launchers available:                     fork (this host; ssh, slurm and others not yet)\n"
        + "    Engines:                                 " + string.Join(' ', Snowflock.Engine.EngineCatalog.Detect().Select(d => d.Name + (d.Usable ? "" : "(unusable)"))) + "\n"
        + "    PMI:                                     PMI-1 wire protocol (MPICH); Open MPI 4.1 through libsfpmi.so\n"
        + "    Binding:                                 core, socket, hwthread, none (sched_setaffinity)\n";
}
