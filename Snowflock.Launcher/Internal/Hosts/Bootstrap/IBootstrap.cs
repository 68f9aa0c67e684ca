using System.Diagnostics;
using System.Text;

namespace Snowflock.Launcher.Internal.Hosts.Bootstrap;

/// <summary>One host that needs an agent: its index in the plan and its name.</summary>
internal sealed record AgentTarget(int Index, string Host, bool Local);

/// <summary>What every agent is started with: the same sfrun, where to dial back, and the job's
/// secret (which the launcher hands on through stdin or the environment, never argv).</summary>
internal sealed record AgentCommand(string Sfrun, string HeadAddress, int HeadPort, string Secret, string JobId)
{
    /// <summary>The agent's command line, without its index (ssh and fork add <c>--index K</c>;
    /// under srun each agent finds its host by name).</summary>
    public List<string> Arguments(int? index)
    {
        var args = new List<string> { Sfrun, "agent", "--head", $"{HeadAddress}:{HeadPort}", "--job", JobId };
        if (index is { } i)
            args.AddRange(["--index", i.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        return args;
    }
}

/// <summary>
/// A way to start sfrun's agent on other hosts, hydra's bootstrap server: one implementation per
/// launcher (ssh, slurm, fork, manual), chosen in <see cref="BootstrapChoice"/>. Each returns the
/// processes it started, so the head sees a launcher that fails before its agents connect.
/// </summary>
internal interface IBootstrap
{
    string Name { get; }

    Task<IReadOnlyList<LaunchedAgents>> LaunchAsync(IReadOnlyList<AgentTarget> targets, AgentCommand command, CancellationToken ct);
}

/// <summary>A launcher process (an ssh, one srun for all hosts, a forked agent) and the hosts
/// whose agents it carries; its stderr is kept (the last lines) for the message when it fails.</summary>
internal sealed class LaunchedAgents : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly Task _pump;

    public LaunchedAgents(Process process, IReadOnlyList<AgentTarget> targets, string launcher)
    {
        _process = process;
        Targets = targets;
        Launcher = launcher;
        _pump = process.StartInfo.RedirectStandardError ? PumpAsync(process.StandardError) : Task.CompletedTask;
        Exited = process.WaitForExitAsync();
    }

    public IReadOnlyList<AgentTarget> Targets { get; }
    public string Launcher { get; }
    public Task Exited { get; }
    public int ExitCode => _process.HasExited ? _process.ExitCode : -1;

    private async Task PumpAsync(StreamReader err)
    {
        try
        {
            while (await err.ReadLineAsync().ConfigureAwait(false) is { } line)
                lock (_stderr)
                {
                    if (_stderr.Length < 16384)
                        _stderr.AppendLine(line);
                }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
        }
    }

    /// <summary>What the launcher said, its last meaningful line first.</summary>
    public async Task<string> LastWordsAsync()
    {
        await Task.WhenAny(_pump, Task.Delay(500)).ConfigureAwait(false);
        lock (_stderr)
        {
            var lines = _stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            return lines.Length == 0 ? "" : lines[^1];
        }
    }

    /// <summary>Waits a little for the launcher to end by itself (its agents quit), then kills it.</summary>
    public async ValueTask DisposeAsync()
    {
        await Task.WhenAny(Exited, Task.Delay(TimeSpan.FromSeconds(3))).ConfigureAwait(false);
        try
        {
            if (!_process.HasExited)
            {
                // srun forwards a first TERM to its tasks; ssh and fork just end.
                _process.Kill(entireProcessTree: false);
                await Task.WhenAny(Exited, Task.Delay(TimeSpan.FromSeconds(2))).ConfigureAwait(false);
            }
        }
        catch (InvalidOperationException)
        {
        }
        await Task.WhenAny(_pump, Task.Delay(500)).ConfigureAwait(false);
        _process.Dispose();
    }
}
