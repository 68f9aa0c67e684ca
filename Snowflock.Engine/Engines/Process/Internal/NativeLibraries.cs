namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>Finds the helpers built from native/ (scripts/setup builds them into native/build/).</summary>
internal static class NativeLibraries
{
    /// <summary>$SFRUN_NATIVE_DIR/<paramref name="name"/>, else REPO/native/build/<paramref name="name"/>
    /// for the first ancestor REPO of sfrun's own directory that has one (the published binary is
    /// REPO/out/sfrun/sfrun, the debug build REPO/sfrun/bin/Debug/net10.0/); null if none exists.</summary>
    public static string? Find(string name)
    {
        if (Environment.GetEnvironmentVariable("SFRUN_NATIVE_DIR") is { Length: > 0 } dir)
        {
            var path = Path.GetFullPath(Path.Combine(dir, name));
            return File.Exists(path) ? path : null;
        }
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var path = Path.Combine(d.FullName, "native", "build", name);
            if (File.Exists(path))
                return path;
        }
        return null;
    }
}
