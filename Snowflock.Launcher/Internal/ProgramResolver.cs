using System.Runtime.InteropServices;

namespace Snowflock.Launcher.Internal;

/// <summary>Finds the program a block runs the way execvp would, but before any clone exists,
/// so a typo costs one clear line instead of N failed ranks.</summary>
internal static partial class ProgramResolver
{
    private const int X_OK = 1;

    [LibraryImport("libc", EntryPoint = "access", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Access(string path, int mode);

    public static string Resolve(string program, string workingDirectory, string? searchPath)
    {
        if (program.Length == 0)
            throw new ProgramNotFoundException("empty program name");
        if (program.Contains('/'))
            return Check(program, Path.GetFullPath(program, workingDirectory));
        foreach (var dir in (searchPath ?? "/usr/local/bin:/usr/bin:/bin").Split(':'))
        {
            var candidate = Path.Combine(dir.Length == 0 ? workingDirectory : Path.GetFullPath(dir, workingDirectory), program);
            if (File.Exists(candidate) && Access(candidate, X_OK) == 0)
                return candidate;
        }
        // Open MPI's mpirun finds a program in the working directory without ./ (hydra does not);
        // both users' command lines then work.
        var here = Path.Combine(workingDirectory, program);
        if (File.Exists(here) && Access(here, X_OK) == 0)
            return here;
        throw new ProgramNotFoundException($"{program}: command not found in PATH");
    }

    private static string Check(string given, string full)
    {
        if (Directory.Exists(full))
            throw new ProgramNotFoundException($"{given}: is a directory");
        if (!File.Exists(full))
            throw new ProgramNotFoundException($"{given}: no such file");
        if (Access(full, X_OK) != 0)
            throw new ProgramNotFoundException($"{given}: permission denied (not executable)");
        return full;
    }
}
