using System.Globalization;
using System.Runtime.InteropServices;
using Snowflock.Launcher.Hosts;

namespace Snowflock.Cli.Commands;

/// <summary><c>sfrun agent --head HOST:PORT --job ID [--index K]</c>: the per-host agent of a
/// multi-host job, started by the head through ssh, srun or fork — never by hand (its secret
/// comes on stdin or in the environment). Signals end it like a closed head connection: its ranks
/// are killed and nothing is left.</summary>
internal static class AgentCommand
{
    public static async Task<int> RunAsync(string[] args, TextReader stdin, TextWriter stderr)
    {
        string? head = null;
        int? index = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--head" when i + 1 < args.Length:
                    head = args[++i];
                    break;
                case "--index" when i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var k):
                    index = k;
                    i++;
                    break;
                case "--job" when i + 1 < args.Length:
                    i++; // for ps and logs: which job this agent serves
                    break;
                default:
                    stderr.WriteLine($"sfrun agent: unexpected '{args[i]}'; usage: sfrun agent --head HOST:PORT --job ID [--index K]");
                    return 2;
            }
        }
        if (head is null)
        {
            stderr.WriteLine("sfrun agent: --head HOST:PORT is required (the agent is started by sfrun for a multi-host job)");
            return 2;
        }
        using var stop = new CancellationTokenSource();
        var registrations = new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT }
            .Select(s => PosixSignalRegistration.Create(s, ctx =>
            {
                ctx.Cancel = true;
                stop.Cancel();
            })).ToList();
        try
        {
            return await HostAgent.RunAsync(head, index, stdin, stderr, stop.Token);
        }
        catch (OperationCanceledException)
        {
            return 0;
        }
        finally
        {
            registrations.ForEach(r => r.Dispose());
        }
    }
}
