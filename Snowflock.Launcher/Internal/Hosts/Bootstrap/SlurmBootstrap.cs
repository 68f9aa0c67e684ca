using System.Globalization;
using Snowflock.Engine.Internal;

namespace Snowflock.Launcher.Internal.Hosts.Bootstrap;

/// <summary>
/// Agents as one Slurm job step, as hydra does under Slurm: <c>srun</c> with one task per host
/// of the plan, no stdin, the step killed when one agent fails. The secret travels in srun's
/// environment (which Slurm passes to the tasks, and which other users cannot read). Each agent
/// finds its host by its Slurm node name. The head's own host, when in the plan, is one of the
/// step's nodes like any other.
/// </summary>
internal sealed class SlurmBootstrap(string srun) : IBootstrap
{
    public string Name => "slurm";

    public async Task<IReadOnlyList<LaunchedAgents>> LaunchAsync(IReadOnlyList<AgentTarget> targets, AgentCommand command, CancellationToken ct)
    {
        var program = ExecutablePath.Find(srun)
            ?? throw new PlacementException($"-launcher slurm: {srun} not found; install slurm-client or give -launcher-exec PATH");
        var n = targets.Count.ToString(CultureInfo.InvariantCulture);
        List<string> args = ["--nodelist=" + string.Join(',', targets.Select(t => t.Host)), "--nodes=" + n, "--ntasks=" + n,
            "--ntasks-per-node=1", "--input=none", "--kill-on-bad-exit=1", "--mpi=none", "--quiet", .. command.Arguments(null)];
        var psi = ColdStarter.StartInfo(program, args);
        psi.UseShellExecute = false;
        psi.RedirectStandardInput = true;
        psi.RedirectStandardError = true;
        psi.Environment[AgentHandshake.SecretVariable] = command.Secret;
        // The step's size is the agents', not the rank count an enclosing salloc -n asked for.
        foreach (var name in new[] { "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE" })
            psi.Environment.Remove(name);
        var process = await ColdStarter.StartAsync(psi).ConfigureAwait(false)
            ?? throw new PlacementException($"cannot start {program}");
        process.StandardInput.Close();
        return [new LaunchedAgents(process, targets, "srun")];
    }
}
