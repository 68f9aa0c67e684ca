namespace Snowflock.Engine;

/// <summary>
/// Finds the helpers built from native/ (scripts/setup builds them into native/build/): the warm
/// fork server for the process engine, libsfpmi.so for Open MPI ranks. One lookup rule for all of
/// them: $SFRUN_NATIVE_DIR (scripts/install sets it), else native/build in the first ancestor of
/// sfrun's own directory that has one (the published binary is REPO/out/sfrun/sfrun, the debug
/// build REPO/sfrun/bin/Debug/net10.0/).
/// </summary>
public static class NativeHelpers
{
    public const string DirectoryVariable = "SFRUN_NATIVE_DIR";

    /// <summary>native/ucx: preloaded into MPI ranks of every engine, so it goes into guest images too.</summary>
    public const string UcxProgressLibrary = "libsfucx.so";

    /// <summary>native/init: preloaded into every rank of every engine (Open MPI's PMI at MPI_Init,
    /// and no silent singletons), so it goes into guest images too.</summary>
    public const string InitCheckLibrary = "libsfinit.so";

    /// <summary>The helper's full path, or null if none exists.</summary>
    public static string? Find(string name) =>
        Find(name, Environment.GetEnvironmentVariable(DirectoryVariable), AppContext.BaseDirectory, out _);

    /// <summary>The helper's full path under <paramref name="overrideDirectory"/> if given, else under
    /// native/build above <paramref name="baseDirectory"/>; null if none exists, and
    /// <paramref name="looked"/> says where it was looked for.</summary>
    public static string? Find(string name, string? overrideDirectory, string baseDirectory, out string looked)
    {
        if (!string.IsNullOrEmpty(overrideDirectory))
        {
            var candidate = Path.GetFullPath(Path.Combine(overrideDirectory, name));
            looked = $"{DirectoryVariable}={overrideDirectory}";
            return File.Exists(candidate) ? candidate : null;
        }
        for (var dir = new DirectoryInfo(baseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "native", "build", name);
            if (File.Exists(candidate))
            {
                looked = candidate;
                return candidate;
            }
        }
        looked = $"native/build above {baseDirectory}";
        return null;
    }
}
