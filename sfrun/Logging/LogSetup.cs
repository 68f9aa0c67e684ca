using NLog;
using NLog.Targets;

namespace Snowflock.Cli.Logging;

/// <summary>sfrun is silent by default; -v logs to stderr at Debug, -vv at Trace (every PMI
/// request); SFRUN_LOG=FILE also writes the log to FILE.</summary>
internal static class LogSetup
{
    private const string Layout = "${date:format=HH\\:mm\\:ss.fff} ${level:uppercase=true:padding=-5} ${logger}: ${message}${onexception:inner= ${exception:format=tostring}}";

    public static void Configure(int verbosity, string? logFile)
    {
        if (verbosity == 0 && string.IsNullOrEmpty(logFile))
            return;
        var level = verbosity >= 2 ? LogLevel.Trace : LogLevel.Debug;
        var config = new NLog.Config.LoggingConfiguration();
        if (verbosity > 0)
            config.AddRule(level, LogLevel.Fatal, new ConsoleTarget("stderr") { StdErr = true, Layout = "sfrun: " + Layout });
        // NLog drops what it cannot write without a word: say so once, and log on without the file.
        if (!string.IsNullOrEmpty(logFile) && WhyUnwritable(logFile) is { } why)
        {
            Console.Error.WriteLine($"sfrun: SFRUN_LOG={logFile}: cannot write: {why}; not logging to it");
            logFile = null;
        }
        if (!string.IsNullOrEmpty(logFile))
            config.AddRule(level, LogLevel.Fatal, new FileTarget("file") { FileName = logFile, Layout = Layout, KeepFileOpen = true });
        LogManager.Configuration = config;
    }

    public static void Shutdown() => LogManager.Shutdown();

    /// <summary>Null if <paramref name="path"/> can be appended to (it is created, and left, as the
    /// log will be); else why not, in words.</summary>
    public static string? WhyUnwritable(string path)
    {
        try
        {
            using var _ = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return Snowflock.Engine.IoMessages.Describe(e, path);
        }
    }
}
