namespace Snowflock.Launcher.Internal;

/// <summary>
/// A rank that ran as an MPI singleton instead of joining the job, seen from sfrun's side. libsfinit
/// (native/init) catches it inside the rank at MPI_Init; this catches what a preload cannot reach
/// (a static program, a wrapper that cleared the environment with <c>env -i</c>): in a job of two or
/// more ranks, one rank exited 0 without ever reaching sfrun's PMI while another did. Such a job
/// cannot be right — the peers wait for it in MPI_Init's barrier (hydra hangs there for ever) — so
/// it ends at once, whichever of the two events comes first.
/// </summary>
internal static class SilentSingleton
{
    /// <summary>The ending to give the job now, or null: asked after every rank exit and PMI init.</summary>
    public static JobEnding? Find(RankTable state)
    {
        if (state.Count < 2)
            return null;
        var exits = state.Exits();
        int? silent = null, peer = null;
        for (var r = 0; r < state.Count && (silent is null || peer is null); r++)
        {
            if (state.IsInitialized(r))
                peer ??= r;
            else if (exits[r] is { Success: true })
                silent ??= r;
        }
        return silent is { } s && peer is { } p ? new JobEnding.NeverConnected(s, state.Location(s), p) : null;
    }
}
