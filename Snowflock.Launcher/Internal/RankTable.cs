using Snowflock.Engine;

namespace Snowflock.Launcher.Internal;

/// <summary>The supervisor's view of every rank. Touched by the supervisor loop, and by teardown
/// after that loop has ended, never by both at once.</summary>
internal sealed class RankTable(int count)
{
    private readonly IRankProcess?[] _process = new IRankProcess?[count];
    private readonly RankExit?[] _exit = new RankExit?[count];
    private readonly bool[] _initialized = new bool[count];
    private readonly bool[] _finalized = new bool[count];

    public int Count => count;
    public int Running { get; private set; }

    public void Started(IRankProcess process)
    {
        _process[process.Rank] = process;
        Running++;
    }

    public void Exited(int rank, RankExit exit)
    {
        if (_exit[rank] is null)
            Running--;
        _exit[rank] = exit;
    }

    public void Initialized(int rank) => _initialized[rank] = true;
    public void Finalized(int rank) => _finalized[rank] = true;
    public bool IsInitialized(int rank) => _initialized[rank];
    public bool IsFinalized(int rank) => _finalized[rank];
    public string Location(int rank) => _process[rank]?.Location ?? "not started";

    public void SignalAll(int signal)
    {
        for (var r = 0; r < count; r++)
            if (_exit[r] is null)
                _process[r]?.Signal(signal);
    }

    public void KillAll() => SignalAll(Signals.SIGKILL);

    public IReadOnlyList<RankExit?> Exits() => _exit;
}
