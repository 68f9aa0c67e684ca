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
        if (!string.IsNullOrEmpty(logFile))
            config.AddRule(level, LogLevel.Fatal, new FileTarget("file") { FileName = logFile, Layout = Layout, KeepFileOpen = true });
        LogManager.Configuration = config;
    }

    public static void Shutdown() => LogManager.Shutdown();
}
