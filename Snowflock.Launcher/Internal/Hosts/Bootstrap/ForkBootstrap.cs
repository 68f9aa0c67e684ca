using System.Diagnostics;
using Snowflock.Engine.Internal;

namespace Snowflock.Launcher.Internal.Hosts.Bootstrap;

/// <summary>Agents on this host: started as children (through sfwarm-exec, so they die with a
/// SIGKILLed sfrun), the secret in their environment.</summary>
internal sealed class ForkBootstrap : IBootstrap
{
    public string Name => "fork";

    public async Task<IReadOnlyList<LaunchedAgents>> LaunchAsync(IReadOnlyList<AgentTarget> targets, AgentCommand command, CancellationToken ct)
    {
        var launched = new List<LaunchedAgents>();
        foreach (var t in targets)
            launched.Add(await StartAsync(t, command with { HeadAddress = "127.0.0.1" }).ConfigureAwait(false));
        return launched;
    }

    public static async Task<LaunchedAgents> StartAsync(AgentTarget target, AgentCommand command)
    {
        var args = command.Arguments(target.Index);
        var psi = ColdStarter.StartInfo(args[0], args.Skip(1));
        psi.UseShellExecute = false;
        psi.RedirectStandardInput = true;
        psi.RedirectStandardOutput = false;
        psi.RedirectStandardError = true;
        psi.Environment[AgentHandshake.SecretVariable] = command.Secret;
        var process = await ColdStarter.StartAsync(psi).ConfigureAwait(false)
            ?? throw new PlacementException($"host {target.Host}: cannot start sfrun's agent");
        process.StandardInput.Close();
        return new LaunchedAgents(process, [target], "fork");
    }
}
