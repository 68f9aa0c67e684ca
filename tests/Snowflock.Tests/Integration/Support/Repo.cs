namespace Snowflock.Tests.Integration.Support;

/// <summary>Where the built artefacts of the repository are: the sfrun binary under test, the
/// examples and the test programs (built by scripts/setup with MPICH's mpicc).</summary>
internal static class Repo
{
    public static readonly string Root = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Snowflock.sln")))
                return dir.FullName;
        throw new InvalidOperationException("cannot find Snowflock.sln above " + AppContext.BaseDirectory);
    }

    /// <summary>$SFRUN if set (scripts/test points it at the published NativeAOT binary), else the
    /// published binary, else the debug build.</summary>
    public static string Sfrun
    {
        get
        {
            var candidates = new[]
            {
                Environment.GetEnvironmentVariable("SFRUN"),
                Path.Combine(Root, "out", "sfrun", "sfrun"),
                Path.Combine(Root, "sfrun", "bin", "Debug", "net10.0", "sfrun"),
            };
            return candidates.FirstOrDefault(c => !string.IsNullOrEmpty(c) && File.Exists(c))
                ?? throw new InvalidOperationException("sfrun is not built: run scripts/setup");
        }
    }

    public static string Example(string name) => Built(Path.Combine(Root, "examples", "build", name));
    public static string TestProgram(string name) => Built(Path.Combine(Root, "tests", "programs", "build", name));

    private static string Built(string path) =>
        File.Exists(path) ? path : throw new InvalidOperationException($"{path} is not built: run scripts/setup (needs MPICH's mpicc)");

    public const string Hydra = "/usr/bin/mpiexec.hydra";

    /// <summary>native/ucx's library, which sfrun preloads into every MPI rank.</summary>
    public static string UcxProgressLibrary => Built(Path.Combine(Root, "native", "build", "libsfucx.so"));
}
