using System.Collections;
using Snowflock.Mpi.Pmi;

namespace Snowflock.Launcher.Internal;

/// <summary>Composes a rank's full environment: inherited (per -genvall/-genvnone/-genvlist),
/// then -genv, then the block's -env, then the PMI wiring, later layers winning.</summary>
internal sealed class RankEnvironmentBuilder
{
    private readonly Dictionary<string, string> _base = new(StringComparer.Ordinal);
    private readonly JobSpec _spec;
    private readonly Placement.CpuBinding? _binding;

    public RankEnvironmentBuilder(JobSpec spec, IDictionary current)
    {
        _spec = spec;
        _binding = spec.Binding == Placement.BindingPolicy.None ? null : new Placement.CpuBinding(spec.Binding);
        foreach (DictionaryEntry e in current)
        {
            var name = (string)e.Key;
            // HOME and PATH always: hydra's ranks on the local host inherit its proxy's environment
            // whatever -genvnone/-genvlist say (measured: all of it), and without them programs
            // cannot find what they exec or their dot files.
            var keep = spec.Inherit switch
            {
                EnvironmentPolicy.All => true,
                EnvironmentPolicy.Listed => spec.InheritList.Contains(name) || name is "HOME" or "PATH",
                _ => name is "HOME" or "PATH",
            };
            if (keep && e.Value is string value)
                _base[name] = value;
        }
        // A job started from inside another MPI job (or a Flux/PMIx allocation) must not join the
        // outer job's process manager; what the user sets explicitly below still wins.
        foreach (var stale in _base.Keys.Where(k => RankEnvironment.IsStaleWiring(k) || k == Placement.CpuBinding.Variable).ToList())
            _base.Remove(stale);
        foreach (var (k, v) in spec.GlobalEnvironment)
            _base[k] = v;
    }

    /// <summary>A variable sfrun itself gives every rank of the job (not per rank: warm masters get it too).</summary>
    public void SetForJob(string name, string value) => _base[name] = value;

    public Dictionary<string, string> For(ProgramBlock block, IReadOnlyDictionary<string, string> wiring)
    {
        var env = new Dictionary<string, string>(_base, StringComparer.Ordinal);
        foreach (var (k, v) in block.Environment)
            env[k] = v;
        foreach (var (k, v) in wiring)
            env[k] = v;
        // Bound per host, by local rank, as mpirun does; the rank pins itself (CpuBinding says how).
        if (_binding is not null && wiring.TryGetValue("MPI_LOCALRANKID", out var local)
            && _binding.VariableFor(int.Parse(local, System.Globalization.CultureInfo.InvariantCulture)) is { } cpus)
            env[Placement.CpuBinding.Variable] = cpus;
        return env;
    }
}
