using System.Diagnostics;
using System.Globalization;
using NLog;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Engines.Qemu.Internal;

/// <summary>What this host offers QEMU: the binary, the accelerator that really runs a stock
/// guest, and the TSC frequency the guest kernel must be told (TCG boots hang under load while
/// the kernel calibrates the TSC itself).</summary>
internal sealed record QemuHost(string Binary, string Accelerator, string Cpu, string AcceleratorReason, long TscKhz, string Version)
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Qemu");
    private static readonly Lazy<QemuHost?> Detected = new(DetectUncached);

    /// <summary>This host's QEMU, or an <see cref="EngineUnavailableException"/> saying what to install.</summary>
    public static QemuHost Require() => Detected.Value ?? throw new EngineUnavailableException(
        "qemu engine: qemu-system-x86_64 not found; install qemu-system-x86 (scripts/setup does) or use --engine process");

    public static QemuHost? Find() => Detected.Value;

    private static QemuHost? DetectUncached()
    {
        var binary = Environment.GetEnvironmentVariable("SFRUN_QEMU") is { Length: > 0 } forced ? forced : ExecutablePath.Find("qemu-system-x86_64");
        if (binary is null || !File.Exists(binary))
            return null;
        var (accel, cpu, why) = ChooseAccelerator();
        var host = new QemuHost(binary, accel, cpu, why, ReadTscKhz(), ReadVersion(binary));
        Log.ForDebugEvent().Message("qemu engine: {Binary} ({Version}), accelerator {Accel}: {Why}", binary, host.Version, accel, why)
            .Property("EventName", "QemuDetected").Log();
        return host;
    }

    /// <summary>KVM only where it runs a stock guest. This machine's /dev/kvm is kvm_pvm, which opens
    /// fine but stalls a stock kernel and then fails on cmpxchg16b/xrstor, so the presence of
    /// /dev/kvm proves nothing: trust only the vendor modules (kvm_intel, kvm_amd).
    /// SFRUN_QEMU_ACCEL=tcg|kvm overrides the choice.</summary>
    public static bool KvmRunsGuests() => ChooseAccelerator().Accel == "kvm";

    private static (string Accel, string Cpu, string Why) ChooseAccelerator()
    {
        var forced = Environment.GetEnvironmentVariable("SFRUN_QEMU_ACCEL");
        if (forced == "tcg")
            return ("tcg", "max", "SFRUN_QEMU_ACCEL=tcg");
        if (forced == "kvm")
            return ("kvm", "host", "SFRUN_QEMU_ACCEL=kvm");
        if (!File.Exists("/dev/kvm"))
            return ("tcg", "max", "no /dev/kvm: software emulation (TCG), correct but slow");
        if (Directory.Exists("/sys/module/kvm_pvm"))
            return ("tcg", "max", "/dev/kvm is kvm_pvm, which cannot run a stock guest: software emulation (TCG)");
        if (Directory.Exists("/sys/module/kvm_intel") || Directory.Exists("/sys/module/kvm_amd"))
            return ("kvm", "host", "/dev/kvm backed by kvm_intel/kvm_amd");
        return ("tcg", "max", "/dev/kvm present but not backed by kvm_intel/kvm_amd: software emulation (TCG); SFRUN_QEMU_ACCEL=kvm forces KVM");
    }

    private static long ReadTscKhz()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                if (!line.StartsWith("cpu MHz", StringComparison.Ordinal))
                    continue;
                var mhz = double.Parse(line[(line.IndexOf(':') + 1)..].Trim(), CultureInfo.InvariantCulture);
                return (long)(mhz * 1000);
            }
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
        {
        }
        return 0;
    }

    private static string ReadVersion(string binary)
    {
        try
        {
            using var p = System.Diagnostics.Process.Start(new ProcessStartInfo(binary, "--version") { RedirectStandardOutput = true, UseShellExecute = false })!;
            var first = p.StandardOutput.ReadLine() ?? "";
            p.WaitForExit(5000);
            return first.Trim();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException)
        {
            return "unknown";
        }
    }
}
