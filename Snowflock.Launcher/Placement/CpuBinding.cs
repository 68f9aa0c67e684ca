using System.Globalization;

namespace Snowflock.Launcher.Placement;

/// <summary><c>--bind-to</c>/<c>-bind-to</c>: what each rank is pinned to.</summary>
public enum BindingPolicy
{
    None,
    HwThread,
    Core,
    Socket,
}

/// <summary>
/// Which CPUs each rank of a host is pinned to, and how Open MPI's <c>--report-bindings</c> says it.
/// Local rank k gets the k-th core (socket, hardware thread) of those sfrun itself may run on,
/// round robin, as mpirun maps by slot and binds to core. The rank's environment carries the list
/// as <see cref="Variable"/>; the rank applies it to itself before main() — libsfinit's constructor
/// after exec, libsfwarm in a warm clone before it enters main — so the program never runs a
/// single instruction of its own unpinned, and what it execs inherits the mask.
/// </summary>
public sealed class CpuBinding
{
    public const string Variable = "SFRUN_CPUS";

    private readonly List<(int Cpu, int Socket, int Core)> _cpus;
    private readonly BindingPolicy _policy;

    public CpuBinding(BindingPolicy policy) : this(policy, ReadTopology()) { }

    internal CpuBinding(BindingPolicy policy, List<(int Cpu, int Socket, int Core)> cpus)
    {
        _policy = policy;
        _cpus = cpus;
    }

    private IEnumerable<IGrouping<(int Socket, int Core), (int Cpu, int Socket, int Core)>> Cores =>
        _cpus.GroupBy(c => (c.Socket, c.Core)).OrderBy(g => g.Key.Socket).ThenBy(g => g.Key.Core);

    /// <summary>The CPUs of local rank <paramref name="localRank"/>; empty when not bound.</summary>
    public IReadOnlyList<int> CpusOf(int localRank)
    {
        if (_cpus.Count == 0)
            return [];
        switch (_policy)
        {
            case BindingPolicy.HwThread:
                return [_cpus[localRank % _cpus.Count].Cpu];
            case BindingPolicy.Core:
                var cores = Cores.ToList();
                return cores[localRank % cores.Count].Select(c => c.Cpu).ToList();
            case BindingPolicy.Socket:
                var sockets = _cpus.GroupBy(c => c.Socket).OrderBy(g => g.Key).ToList();
                return sockets[localRank % sockets.Count].Select(c => c.Cpu).ToList();
            default:
                return [];
        }
    }

    /// <summary>The value of <see cref="Variable"/> (a cpulist, "0,2-3"); null when not bound.</summary>
    public string? VariableFor(int localRank) => CpusOf(localRank) is { Count: > 0 } cpus ? string.Join(',', cpus) : null;

    /// <summary>Open MPI's line: <c>MCW rank 1 bound to socket 0[core 1[hwt 0]]: [./B]</c>, or "is not bound".</summary>
    public string Report(int rank, int localRank)
    {
        var mine = CpusOf(localRank).ToHashSet();
        if (mine.Count == 0)
            return $"MCW rank {rank} is not bound (or bound to all available processors)";
        var cores = Cores.ToList();
        var where = string.Join(", ", cores.Where(g => g.Any(c => mine.Contains(c.Cpu))).Select(g =>
            $"socket {g.Key.Socket}[core {cores.IndexOf(g)}[hwt {string.Join(',', g.Select((c, i) => (c, i)).Where(x => mine.Contains(x.c.Cpu)).Select(x => x.i))}]]"));
        var mask = string.Join("][", cores.GroupBy(g => g.Key.Socket).Select(s =>
            string.Join('/', s.Select(g => new string(g.Select(c => mine.Contains(c.Cpu) ? 'B' : '.').ToArray())))));
        return $"MCW rank {rank} bound to {where}: [{mask}]";
    }

    /// <summary>The CPUs sfrun may run on (its affinity, as /proc shows it) with each one's socket and core.</summary>
    private static List<(int Cpu, int Socket, int Core)> ReadTopology()
    {
        var allowed = ParseList(File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
            ?.Split(':', 2)[1].Trim() ?? "");
        return allowed.Select(cpu => (cpu, Read(cpu, "physical_package_id"), Read(cpu, "core_id"))).ToList();
    }

    private static int Read(int cpu, string what)
    {
        try
        {
            return int.Parse(File.ReadAllText($"/sys/devices/system/cpu/cpu{cpu}/topology/{what}").Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return what == "core_id" ? cpu : 0; // no topology (a container): every CPU its own core
        }
    }

    /// <summary>A kernel cpulist ("0-3,8") as numbers.</summary>
    public static List<int> ParseList(string list)
    {
        var cpus = new List<int>();
        foreach (var part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var dash = part.IndexOf('-');
            var from = int.Parse(dash < 0 ? part : part[..dash], CultureInfo.InvariantCulture);
            var to = dash < 0 ? from : int.Parse(part[(dash + 1)..], CultureInfo.InvariantCulture);
            for (var c = from; c <= to; c++)
                cpus.Add(c);
        }
        return cpus;
    }
}
