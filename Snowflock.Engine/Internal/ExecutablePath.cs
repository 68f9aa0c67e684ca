namespace Snowflock.Engine.Internal;

/// <summary>Looks a program up on sfrun's own PATH, as the engines' host checks need (which QEMU, is xl installed).</summary>
internal static class ExecutablePath
{
    /// <summary>The first <c>DIR/program</c> that exists for DIR in <c>$PATH</c> (<c>/usr/bin:/bin</c> when
    /// unset), or null.</summary>
    public static string? Find(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':')
            .Where(d => d.Length > 0).Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);
}
