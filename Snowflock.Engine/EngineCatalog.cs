using Snowflock.Engine.Engines.Process;
using Snowflock.Engine.Engines.Process.Internal;
using Snowflock.Engine.Engines.Qemu;
using Snowflock.Engine.Engines.Qemu.Internal;
using Snowflock.Engine.Engines.Xen;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine;

/// <summary>The engines sfrun knows, and which one a job gets when the user names none.</summary>
public static class EngineCatalog
{
    public static readonly IReadOnlyList<string> Names = ["process", "qemu", "xen"];

    /// <summary>The engine used without <c>--engine</c>, after DESIGN.md: the best one this host runs at
    /// full speed: xen in dom0 of a running Xen; qemu only where KVM really runs a stock guest (under TCG it is correct but slow,
    /// so opt-in), else process. <c>SFRUN_ENGINE</c> overrides it, so a batch script that says
    /// <c>sfrun</c> can be pointed at an engine without being edited. Only cheap checks here: this
    /// runs at every start of sfrun.</summary>
    public static string Default => DefaultEngine.Value;

    private static readonly Lazy<string> DefaultEngine = new(() =>
        Environment.GetEnvironmentVariable("SFRUN_ENGINE") is { Length: > 0 } chosen && Names.Contains(chosen) ? chosen
        : IsDom0 ? "xen"
        : QemuHost.KvmRunsGuests() && ExecutablePath.Find("qemu-system-x86_64") is not null ? "qemu"
        : "process");

    /// <summary>What <c>sfrun --engines</c> prints: each engine, whether this host can run it, and why.</summary>
    public sealed record Detection(string Name, bool Usable, string Why);

    public static IReadOnlyList<Detection> Detect() =>
    [
        new("process", true, NativeHelpers.Find("libsfwarm.so") is { } warm
            ? $"local processes, forked from a warm master ({warm})"
            : "local processes, started cold (libsfwarm.so not found: build native/ or set SFRUN_NATIVE_DIR)"),
        QemuHost.Find() is { } qemu
            ? new("qemu", true, $"VM clones of a warm template ({qemu.Version}; {qemu.AcceleratorReason})")
            : new("qemu", false, "qemu-system-x86_64 not found (install qemu-system-x86)"),
        new("xen", IsDom0 || Environment.GetEnvironmentVariable("XEN_HOST") is { Length: > 0 },
            Environment.GetEnvironmentVariable("XEN_HOST") is { Length: > 0 } xenHost ? $"xl in dom0 over ssh to {xenHost} (XEN_HOST)"
            : IsDom0 ? "this is dom0: xl runs here" : "not dom0 of a running Xen" + (ExecutablePath.Find("xl") is not null ? " (xl is installed)" : "") + "; use --xen-host USER@DOM0 (or XEN_HOST)"),
    ];

    private static bool IsDom0 =>
        File.Exists("/proc/xen/capabilities") && File.ReadAllText("/proc/xen/capabilities").Contains("control_d", StringComparison.Ordinal);

    /// <param name="xenHost">The xen engine's dom0 (<c>--xen-host</c>); null: XEN_HOST, or this host.</param>
    public static IEngine Create(string name, string? xenHost = null) => name switch
    {
        "process" => new ProcessEngine(),
        "qemu" => new QemuEngine(),
        "xen" => new XenEngine(xenHost),
        _ => throw new EngineUnavailableException(
            $"unknown engine '{name}'; choose one of: {string.Join(", ", Names)}"),
    };
}
