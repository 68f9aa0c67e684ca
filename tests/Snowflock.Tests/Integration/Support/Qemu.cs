using System.Globalization;

namespace Snowflock.Tests.Integration.Support;

/// <summary>What tests that start QEMU themselves need to know about this host.</summary>
internal static class Qemu
{
    public const string Binary = "qemu-system-x86_64";

    /// <summary>The host TSC rate in kHz for the guest's tsc_early_khz=: without it a TCG guest
    /// calibrates against a timer that the loaded host delays, and boots hang.</summary>
    public static long TscKhz()
    {
        foreach (var line in File.ReadLines("/proc/cpuinfo"))
            if (line.StartsWith("cpu MHz", StringComparison.Ordinal)
                && double.TryParse(line[(line.IndexOf(':') + 1)..].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var mhz))
                return (long)Math.Round(mhz * 1000);
        throw new InvalidOperationException("no 'cpu MHz' in /proc/cpuinfo");
    }
}
