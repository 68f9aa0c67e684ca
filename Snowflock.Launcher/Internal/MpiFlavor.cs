using NLog;
using Snowflock.Engine;
using Snowflock.Engine.Internal;
using System.Text;

namespace Snowflock.Launcher.Internal;

/// <summary>Which MPI library a program links against, read from its <c>DT_NEEDED</c> entries.</summary>
internal enum MpiLibrary
{
    /// <summary>Not an MPI program, or not one sfrun recognises (a script, a static binary).</summary>
    None,

    /// <summary>MPICH's ABI (<c>libmpich.so.12</c>): speaks PMI-1 to sfrun by itself.</summary>
    Mpich,

    /// <summary>Open MPI 4.x (<c>libmpi.so.40</c>): reaches sfrun through its flux pmix component and libsfpmi.</summary>
    OpenMpi,
}

/// <summary>
/// The environment a rank needs beyond the PMI wiring, by the MPI its program links against.
/// Open MPI 4.1 has no PMI-1 client of its own; its <c>flux</c> pmix component qualifies when
/// <c>FLUX_JOB_ID</c> is set (a number: it becomes the Open MPI job id) and dlopens the PMI-1
/// library named by <c>FLUX_PMI_LIBRARY_PATH</c> — sfrun's libsfpmi.so. Its schizo component then
/// selects <c>ess=pmi</c> itself, so nothing else is needed and a user's own <c>OMPI_MCA_*</c> stay untouched.
/// </summary>
internal static class MpiFlavor
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Launcher.Mpi");

    public const string PmiLibraryName = "libsfpmi.so";

    /// <summary>Preloaded into MPICH and Open MPI ranks: keeps UCX progressing while MPI_Finalize
    /// waits in its PMI barrier (native/ucx/ucx.c says why MPICH 4.0.2 over TCP needs it).</summary>
    public const string UcxProgressLibraryName = NativeHelpers.UcxProgressLibrary;
    public const string UcxProgressSwitch = "SFRUN_UCX_PROGRESS";
    public const string NativeDirVariable = NativeHelpers.DirectoryVariable;

    public static MpiLibrary Classify(IReadOnlyList<string>? needed)
    {
        if (needed is null)
            return MpiLibrary.None;
        if (needed.Contains("libmpi.so.40"))
            return MpiLibrary.OpenMpi;
        if (needed.Contains("libmpich.so.12"))
            return MpiLibrary.Mpich;
        return MpiLibrary.None;
    }

    /// <summary>What ranks of <paramref name="executable"/> (already resolved to a full path) in job
    /// <paramref name="jobId"/> need. Throws <see cref="ProgramNotFoundException"/> when the program
    /// needs libsfpmi.so and sfrun cannot find it, before any rank starts.</summary>
    public static MpiSetup SetupFor(string executable, string jobId, MpiScratch scratch)
    {
        var needed = ElfDependencies.Of(executable);
        var library = Classify(needed);
        WarnIfPreloadIgnored(executable, library, needed);
        return SetupFor(library, executable, jobId, Environment.GetEnvironmentVariable(NativeDirVariable), AppContext.BaseDirectory, scratch);
    }

    /// <summary>The loader ignores LD_PRELOAD in setuid and static programs, so libsfucx cannot
    /// keep their UCX progressing in MPI_Finalize: across machines over TCP they may hang there
    /// (as under mpiexec). A static program's MPI cannot be told from its ELF, hence "if".</summary>
    private static void WarnIfPreloadIgnored(string executable, MpiLibrary library, IReadOnlyList<string>? needed)
    {
        string? why = null;
        try
        {
            if (!OperatingSystem.IsLinux())
                return;
            if (library != MpiLibrary.None && (File.GetUnixFileMode(executable) & (UnixFileMode.SetUser | UnixFileMode.SetGroup)) != 0)
                why = "is setuid/setgid";
            else if (needed is { Count: 0 })
                why = "is statically linked; if it is an MPI program, it";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return;
        }
        if (why is not null)
            Log.ForWarnEvent().Message("{Program} {Why} ignores LD_PRELOAD: {Library} cannot keep UCX progressing in MPI_Finalize, "
                    + "which over TCP between machines may hang with MPICH 4.0.2", executable, why, UcxProgressLibraryName)
                .Property("EventName", "UcxProgressNotApplicable").Log();
    }

    public static MpiSetup SetupFor(MpiLibrary library, string executable, string jobId,
        string? nativeDirOverride, string baseDirectory, MpiScratch? scratch = null)
    {
        // Missing only in a half-built tree; the ranks then run as before, at -v it is said.
        // SFRUN_UCX_PROGRESS=0 leaves it out: what bench/finalize compares against. Not for
        // programs whose MPI the ELF does not show: libsfucx wraps read(), which costs a
        // byte-at-a-time reader ~10% (dd bs=1, measured), and such programs are mostly not MPI.
        var wanted = library != MpiLibrary.None && Environment.GetEnvironmentVariable(UcxProgressSwitch) != "0";
        var progress = wanted ? NativeHelpers.Find(UcxProgressLibraryName, nativeDirOverride, baseDirectory, out _) : null;
        if (wanted && progress is null)
            Log.ForWarnEvent().Message("{Library} not found: MPI ranks over TCP may hang in MPI_Finalize; run scripts/setup", UcxProgressLibraryName)
                .Property("EventName", "UcxProgressLibraryMissing").Log();
        // Every rank, whatever its program: python3 running mpi4py, env, nice or a script show no
        // MPI in their ELF but exec one. libsfinit defines nothing but MPI_Init*, so a program
        // that is not MPI pays one small library load (native/init/init.c says what it does).
        var init = NativeHelpers.Find(InitCheckLibraryName, nativeDirOverride, baseDirectory, out _);
        if (init is null)
            Log.ForWarnEvent().Message("{Library} not found: an Open MPI program started through a script or interpreter runs as singletons; run scripts/setup",
                    InitCheckLibraryName).Property("EventName", "InitCheckLibraryMissing").Log();
        var preload = string.Join(':', new[] { progress, init }.OfType<string>());
        var pmiLibrary = FindPmiLibrary(nativeDirOverride, baseDirectory, out var looked);
        var variables = new Dictionary<string, string>();
        var fluxJobId = NumericJobId(jobId).ToString();
        if (library == MpiLibrary.OpenMpi)
        {
            if (pmiLibrary is null)
                throw new ProgramNotFoundException(
                    $"{executable}: links Open MPI (libmpi.so.40), which needs sfrun's {PmiLibraryName}, not found in {looked}; " +
                    $"run scripts/setup or set {NativeDirVariable} to the folder that holds it");
            variables["FLUX_JOB_ID"] = fluxJobId;
            variables["FLUX_PMI_LIBRARY_PATH"] = pmiLibrary;
        }
        else if (pmiLibrary is not null && init is not null)
        {
            // Lent to Open MPI inside MPI_Init only: Open MPI's own mpirun, run from a rank,
            // crashes on FLUX_JOB_ID (SIGSEGV, 4.1.4), so it must not sit in every environment.
            variables[LentJobIdVariable] = fluxJobId;
            variables[LentLibraryVariable] = pmiLibrary;
        }
        return new MpiSetup(library, variables, library == MpiLibrary.OpenMpi ? scratch : null)
            { Preload = preload.Length > 0 ? preload : null };
    }

    /// <summary>native/init, preloaded into every rank.</summary>
    public const string InitCheckLibraryName = NativeHelpers.InitCheckLibrary;

    /// <summary>FLUX_JOB_ID and FLUX_PMI_LIBRARY_PATH under the names libsfinit reads.</summary>
    public const string LentJobIdVariable = "SFRUN_FLUX_JOB_ID", LentLibraryVariable = "SFRUN_FLUX_PMI_LIBRARY_PATH";

    /// <summary>libsfpmi.so, found by the same rule as every native helper (<see cref="NativeHelpers"/>).</summary>
    public static string? FindPmiLibrary(string? nativeDirOverride, string baseDirectory, out string looked) =>
        NativeHelpers.Find(PmiLibraryName, nativeDirOverride, baseDirectory, out looked);

    /// <summary>Open MPI parses FLUX_JOB_ID with strtoul into its 32-bit job id, whose halves are a job
    /// family and a local job number. Neither may be 0 (local job 0 is ORTE's daemon job), and the
    /// local number must stay below 0x8000: with bit 15 set, ranks see their peers under another job
    /// id and MPI_Init fails ("unable to reach each other", measured with 4.1.4 at 8 ranks).
    /// Derived from sfrun's job id so that two jobs on one host get different ids.</summary>
    public static uint NumericJobId(string jobId)
    {
        var hash = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes(jobId))
            hash = (hash ^ b) * 16777619u;
        var family = (hash >> 16) & 0x7fff;
        var local = hash & 0x7fff;
        return (Math.Max(family, 1) << 16) | Math.Max(local, 1);
    }
}

/// <summary>The MPI-specific part of the environment of one program's ranks, and the job's
/// scratch directory for the files its MPI leaves behind (disposed at teardown).</summary>
internal sealed record MpiSetup(MpiLibrary Library, IReadOnlyDictionary<string, string> Variables, MpiScratch? Scratch = null)
    : IDisposable
{
    /// <summary>Adds what the rank needs where the user has not set the variable already (inherited,
    /// -genv or -env): a user's choice wins. Open MPI ranks that outnumber this host's processors
    /// are told they are oversubscribed, as Open MPI's mpirun does, so they yield instead of
    /// spinning each other off the cores (without it an 8-rank allreduce on 2 cores runs ~500x slower).</summary>
    public Dictionary<string, string> ApplyTo(Dictionary<string, string> env, int localRanks, int processors)
    {
        foreach (var (k, v) in Variables)
            env.TryAdd(k, v);
        DialectEnvironment.AddTo(env);
        // After the user's own preloads: a PMPI tool's MPI_Finalize then still runs first and
        // reaches ours through PMPI_Finalize, which libsfucx wraps too.
        if (Preload is { } preload)
            env["LD_PRELOAD"] = env.TryGetValue("LD_PRELOAD", out var user) && user.Length > 0 ? user + ":" + preload : preload;
        // Not only where the ELF shows Open MPI: mpi4py's ranks spin as badly; MPICH never reads it.
        if (Library != MpiLibrary.Mpich && localRanks > processors)
            env.TryAdd("OMPI_MCA_mpi_oversubscribe", "1");
        // Only when the user has chosen neither place: then the files are the user's to manage.
        if (Library == MpiLibrary.OpenMpi && !env.ContainsKey(SessionBase) && !env.ContainsKey(VaderBacking)
            && Scratch?.Path is { } scratch)
        {
            env[SessionBase] = scratch;
            env[VaderBacking] = scratch;
        }
        return env;
    }

    /// <summary>What LD_PRELOAD gets after the user's own: libsfucx.so for MPI ranks
    /// (<see cref="MpiFlavor.UcxProgressLibraryName"/>), then libsfinit.so for every rank; null if neither is built.</summary>
    public string? Preload { get; init; }

    private const string SessionBase = "OMPI_MCA_orte_tmpdir_base", VaderBacking = "OMPI_MCA_btl_vader_backing_directory";

    public void Dispose() => Scratch?.Dispose();
}
