using System.Diagnostics;

namespace Snowflock.Launcher.Internal.Hosts.Bootstrap;

/// <summary>hydra's manual launcher: sfrun prints the command that starts each host's agent and
/// waits for the user to run it there. The secret is part of what is printed (the user's own
/// terminal), in the environment assignment, not in the agent's argv.</summary>
internal sealed class ManualBootstrap(TextWriter say) : IBootstrap
{
    public string Name => "manual";

    public Task<IReadOnlyList<LaunchedAgents>> LaunchAsync(IReadOnlyList<AgentTarget> targets, AgentCommand command, CancellationToken ct)
    {
        foreach (var t in targets)
            say.WriteLine($"sfrun: on {t.Host} run: {AgentHandshake.SecretVariable}={command.Secret} {string.Join(' ', command.Arguments(t.Index))}");
        say.Flush();
        // Nothing is started here: the head just waits for the agents to dial in.
        return Task.FromResult<IReadOnlyList<LaunchedAgents>>([]);
    }
}
