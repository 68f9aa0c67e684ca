using System.Diagnostics;
using System.Text;
using Snowflock.Engine.Internal;

namespace Snowflock.Launcher.Internal.Hosts.Bootstrap;

/// <summary>
/// Agents through the real OpenSSH client, one per host, as hydra's ssh launcher: the user's keys
/// and ~/.ssh/config apply; BatchMode, so a host that would ask for a password fails at once
/// instead of hanging the job on a prompt; no X11. The secret goes as the first line of ssh's
/// stdin. ssh runs in a session of its own, so the terminal's Ctrl-C reaches sfrun (which
/// forwards it to the ranks) and not ssh (which would cut the host off).
/// </summary>
internal sealed class SshBootstrap(string ssh) : IBootstrap
{
    public string Name => "ssh";

    public async Task<IReadOnlyList<LaunchedAgents>> LaunchAsync(IReadOnlyList<AgentTarget> targets, AgentCommand command, CancellationToken ct)
    {
        var program = ExecutablePath.Find(ssh)
            ?? throw new PlacementException($"-launcher ssh: {ssh} not found; install openssh-client or give -launcher-exec PATH");
        var launched = new List<LaunchedAgents>();
        foreach (var t in targets)
        {
            if (t.Local)
            {
                launched.Add(await ForkBootstrap.StartAsync(t, command with { HeadAddress = "127.0.0.1" }).ConfigureAwait(false));
                continue;
            }
            // The remote side is a shell command line: quote each word for it.
            var remote = string.Join(' ', command.Arguments(t.Index).Select(Quote));
            var psi = ColdStarter.StartInfo(program, ["-x", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", t.Host, remote]);
            psi.UseShellExecute = false;
            psi.RedirectStandardInput = true;
            psi.RedirectStandardError = true;
            var process = await ColdStarter.StartAsync(psi).ConfigureAwait(false)
                ?? throw new PlacementException($"host {t.Host}: cannot start {program}");
            try
            {
                await process.StandardInput.WriteAsync(new StringBuilder(command.Secret).Append('\n'), ct).ConfigureAwait(false);
                await process.StandardInput.FlushAsync(ct).ConfigureAwait(false);
            }
            catch (IOException)
            {
                // ssh already ended (an unknown host): its exit and stderr say why.
            }
            launched.Add(new LaunchedAgents(process, [t], "ssh"));
        }
        return launched;
    }

    private static string Quote(string word) =>
        word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "/._-:=,@+".Contains(c)) ? word : "'" + word.Replace("'", "'\\''") + "'";
}
