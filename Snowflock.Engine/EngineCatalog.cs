using Snowflock.Engine.Engines.Process;

namespace Snowflock.Engine;

/// <summary>The engines sfrun knows, and which one a job gets when the user names none.</summary>
public static class EngineCatalog
{
    public static readonly IReadOnlyList<string> Names = ["process", "qemu", "xen"];

    /// <summary>The engine used without <c>--engine</c>. DESIGN.md prefers xen, then qemu with a
    /// KVM that really runs guests, then process; only process exists so far.</summary>
    public const string Default = "process";

    public static IEngine Create(string name) => name switch
    {
        "process" => new ProcessEngine(),
        "qemu" => throw new EngineUnavailableException(
            "qemu engine: not available in this build of sfrun yet; use --engine process"),
        "xen" => throw new EngineUnavailableException(
            "xen engine: not available in this build of sfrun yet; use --engine process"),
        _ => throw new EngineUnavailableException(
            $"unknown engine '{name}'; choose one of: {string.Join(", ", Names)}"),
    };
}
