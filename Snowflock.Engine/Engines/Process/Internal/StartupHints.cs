using System.Diagnostics;
using NLog;
using SysProcess = System.Diagnostics.Process;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>
/// Warm MPI start-up state: what every rank's <c>MPI_Init</c> would otherwise rediscover. The
/// machine's topology is exported once by hwloc (<c>lstopo-no-graphics --of xml</c>) into a
/// per-host cache and handed to ranks with <c>HWLOC_XMLFILE</c> + <c>HWLOC_THISSYSTEM=1</c>
/// (hwloc then reads one file instead of ~400 under /sys); ranks that all share this host get
/// <c>UCX_TLS=self,sm</c> (UCX skips probing network transports). A variable the user set —
/// in sfrun's environment or with -genv/-env/-x — always wins.
/// </summary>
internal sealed class StartupHints
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Process");

    private readonly Dictionary<string, string> _hints;

    private StartupHints(Dictionary<string, string> hints) => _hints = hints;

    public static readonly StartupHints None = new([]);

    public IReadOnlyDictionary<string, string> Variables => _hints;

    /// <summary>The hints for a job whose ranks all run on this host; with <paramref name="isolated"/>
    /// (--isolate) the ranks are machines of their own to MPI and talk TCP, so UCX is not limited
    /// to shared memory.</summary>
    public static StartupHints ForOneHost(bool isolated = false)
    {
        var hints = new Dictionary<string, string>(StringComparer.Ordinal);
        if (TopologyFile() is { } xml)
        {
            hints["HWLOC_XMLFILE"] = xml;
            hints["HWLOC_THISSYSTEM"] = "1";
        }
        if (!isolated)
            hints["UCX_TLS"] = "self,sm";
        foreach (var name in hints.Keys.ToList())
            if (Environment.GetEnvironmentVariable(name) is not null)
                hints.Remove(name);
        return new StartupHints(hints);
    }

    /// <summary>The rank's environment with each hint added unless the rank already has it.</summary>
    public IReadOnlyDictionary<string, string> ApplyTo(IReadOnlyDictionary<string, string> environment)
    {
        if (_hints.Count == 0 || _hints.Keys.All(environment.ContainsKey))
            return environment;
        var merged = new Dictionary<string, string>(environment, StringComparer.Ordinal);
        foreach (var (name, value) in _hints)
            merged.TryAdd(name, value);
        return merged;
    }

    /// <summary>$XDG_CACHE_HOME (or ~/.cache)/snowflock/topology-HOST.xml, exported now if it is
    /// missing or empty; null if hwloc's lstopo is not installed or fails.</summary>
    private static string? TopologyFile()
    {
        try
        {
            var file = Path.Combine(UserCache.Directory, $"topology-{Environment.MachineName}.xml");
            if (new FileInfo(file) is { Exists: true, Length: > 0 })
                return file;
            var temp = $"{file}.{Environment.ProcessId}.tmp";
            var psi = new ProcessStartInfo("lstopo-no-graphics") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "--of", "xml", "-f", temp })
                psi.ArgumentList.Add(a);
            using var lstopo = SysProcess.Start(psi)!;
            lstopo.StandardOutput.ReadToEnd();
            var err = lstopo.StandardError.ReadToEnd();
            if (!lstopo.WaitForExit(10_000))
            {
                lstopo.Kill();
                throw new IOException("lstopo-no-graphics did not finish within 10 s");
            }
            if (lstopo.ExitCode != 0 || new FileInfo(temp) is not { Exists: true, Length: > 0 })
            {
                File.Delete(temp);
                throw new IOException($"lstopo-no-graphics exited with code {lstopo.ExitCode}: {err.Trim()}");
            }
            // lstopo wrote it with the umask's mode; the cache keeps files to the user.
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(temp, UserCache.PrivateFile);
            File.Move(temp, file, overwrite: true);
            Log.ForDebugEvent().Message("exported this host's topology to {File}", file).Property("EventName", "TopologyExported").Log();
            return file;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
        {
            Log.ForDebugEvent().Message("no topology cache, ranks probe the machine themselves: {Reason}", e.Message)
                .Property("EventName", "TopologyUnavailable").Log();
            return null;
        }
    }
}
