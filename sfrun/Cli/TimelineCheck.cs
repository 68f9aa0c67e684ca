namespace Snowflock.Cli;

/// <summary>Whether <c>--timeline FILE</c> can be written, asked before the job starts: the file is
/// written at its end, when a failure could only be logged.</summary>
internal static class TimelineCheck
{
    public static string? WhyUnwritable(string path)
    {
        var existed = File.Exists(path);
        try
        {
            using (new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite))
            {
            }
            if (!existed)
                File.Delete(path);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return Snowflock.Engine.IoMessages.Describe(e, path);
        }
    }
}
