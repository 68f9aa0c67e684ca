using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Dialects;

/// <summary>What the side-by-side tests share: both reference launchers, run as a user would
/// (root needs Open MPI's consent variables), and the examples built for each MPI.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal static class Dialect
{
    public const string OpenMpiRun = "/usr/bin/mpirun.openmpi";
    public const string Python = "/usr/bin/python3";

    /// <summary>Debian's python3-mpi4py, which links Open MPI (scripts/setup installs it).</summary>
    public static bool HasMpi4py => Directory.Exists("/usr/lib/python3/dist-packages/mpi4py");

    public static readonly Dictionary<string, string> AsRoot = new()
    {
        ["OMPI_ALLOW_RUN_AS_ROOT"] = "1",
        ["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1",
    };

    public static string OpenMpiExample(string name)
    {
        var path = Path.Combine(Repo.Root, "examples", "build-openmpi", name);
        return File.Exists(path) ? path : throw new InvalidOperationException($"{path} is not built: run scripts/setup (needs mpicc.openmpi)");
    }

    public static Task<CommandResult> Sfrun(params string[] args) => CommandRun.RunAsync(Repo.Sfrun, args, bound: TimeSpan.FromSeconds(60));

    public static Task<CommandResult> Sfrun(IDictionary<string, string> env, params string[] args) =>
        CommandRun.RunAsync(Repo.Sfrun, args, env: env, bound: TimeSpan.FromSeconds(60));

    public static Task<CommandResult> MpirunOpenMpi(params string[] args) =>
        CommandRun.RunAsync(OpenMpiRun, ["--oversubscribe", .. args], env: AsRoot, bound: TimeSpan.FromSeconds(60));

    public static Task<CommandResult> Hydra(params string[] args) => CommandRun.RunAsync(Repo.Hydra, args, bound: TimeSpan.FromSeconds(60));

    public static string[] Sorted(CommandResult r) => r.OutLines.Order(StringComparer.Ordinal).ToArray();

    /// <summary>A shell script that execs its arguments: the wrapper users put before a program.</summary>
    public static string ExecWrapper()
    {
        var path = Path.Combine(Path.GetTempPath(), $"sfrun-wrap-{Guid.NewGuid():N}.sh");
        File.WriteAllText(path, "#!/bin/sh\nexec \"$@\"\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }
}
