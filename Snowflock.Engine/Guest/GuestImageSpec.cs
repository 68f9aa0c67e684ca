namespace Snowflock.Engine.Guest;

/// <summary>What a guest image must hold: the programs the ranks run (absolute host paths; each
/// goes in at the same path with its shared libraries) and the guest agent that runs as /init.</summary>
public sealed record GuestImageSpec(IReadOnlyList<string> Executables, string AgentPath)
{
    /// <summary>More host files to copy in at their own paths (with their libraries if they are
    /// ELF), e.g. native/build/libsfpmi.so for Open MPI ranks.</summary>
    public IReadOnlyList<string> ExtraFiles { get; init; } = [];

    /// <summary>The kernel modules the clone's devices need; the image also carries what they
    /// depend on, and lists the load order in /etc/snowflock/modules.</summary>
    public IReadOnlyList<string> Modules { get; init; } = ["virtio_mmio", "virtio_console", "virtio_net"];

    /// <summary>Whether hwloc's topology plugins (and the GL, OpenCL, libxml2 and ICU libraries
    /// behind them, ~40 MB) go in. MPICH runs without them; a guest whose every byte is its own
    /// RAM (a Xen clone shares nothing with its master) leaves them out.</summary>
    public bool TopologyPlugins { get; init; } = true;

    /// <summary>What each VM engine's guests need: virtio devices under qemu; under xen the
    /// netfront driver, and no hwloc plugins (a Xen clone's every byte is RAM of its own).
    /// Both carry libsfucx.so at its host path, which MPI ranks preload (the launcher sets
    /// LD_PRELOAD to that path), so that MPI between clones finishes, and libsfinit.so, which every
    /// rank preloads (a path missing in the guest would make ld.so complain in every process).</summary>
    public static GuestImageSpec ForEngine(string engine, IReadOnlyList<string> executables, string agentPath)
    {
        IReadOnlyList<string> extra = new[] { NativeHelpers.UcxProgressLibrary, NativeHelpers.InitCheckLibrary }
            .Select(NativeHelpers.Find).OfType<string>().ToList();
        return engine switch
        {
            "xen" => new GuestImageSpec(executables, agentPath) { Modules = ["xen_netfront"], TopologyPlugins = false, ExtraFiles = extra },
            _ => new GuestImageSpec(executables, agentPath) { ExtraFiles = extra },
        };
    }
}
