using System.Globalization;

namespace Snowflock.Engine.Engines.Qemu.Internal;

/// <summary>Where one VM keeps its sockets and console log.</summary>
internal sealed record VmPaths(string Directory)
{
    public string Console => Path.Combine(Directory, "console.log");
    public string Control => Path.Combine(Directory, "ctl.sock");
    public string Qmp => Path.Combine(Directory, "qmp.sock");
    public string Errors => Path.Combine(Directory, "qemu.err");
}

/// <summary>How a VM gets its RAM.</summary>
internal abstract record VmMemory(int MiB)
{
    /// <summary>The template: RAM in a file others can map, written through (share=on).</summary>
    public sealed record Template(int MiB, string File) : VmMemory(MiB);

    /// <summary>A clone: the template's file mapped private (MAP_PRIVATE), so pages are shared
    /// until the clone writes them (copy-on-write); its writes never reach the file. (Not
    /// readonly=on: that makes the RAM read-only to the guest, which then hangs.)</summary>
    public sealed record CloneOf(int MiB, string File) : VmMemory(MiB);

    /// <summary>A cold-booted VM: private anonymous RAM.</summary>
    public sealed record Private(int MiB) : VmMemory(MiB);
}

/// <summary>How a VM starts: booting the kernel, or waiting for a device-state descriptor.</summary>
internal abstract record VmBoot
{
    public sealed record Kernel(string KernelPath, string InitramfsPath, string Append) : VmBoot;
    public sealed record Incoming : VmBoot;
}

/// <summary>
/// The QEMU command line of every VM of the engine, in one place: a clone's device set must be
/// exactly the template's, or its device state will not load. A microvm (no PCI, no firmware:
/// the kernel's PVH entry), one vCPU, a virtio-serial port for the agent's control channel and a
/// virtio-net device.
/// </summary>
internal static class QemuCommandLine
{
    public const string MachineShape = "microvm-1cpu-serial-ctl-net-v2";

    /// <summary>The network backend of a VM that talks to no other VM (the template, a job of one
    /// VM): a hub port with nothing else on the hub. Not slirp ("user"): slirp saves state of its
    /// own, which a clone on a tap backend refuses ("Unknown savevm section 'slirp'").</summary>
    public const string UnconnectedNetdev = "hubport,hubid=0";

    public static List<string> For(QemuHost host, string name, VmPaths paths, VmMemory memory, string netdev, string mac, VmBoot boot)
    {
        var mib = memory.MiB.ToString(CultureInfo.InvariantCulture);
        var args = new List<string>
        {
            "-name", name,
            "-M", "microvm,memory-backend=mem",
            "-accel", host.Accelerator == "tcg" ? $"tcg,tb-size={TranslationCacheMiB(boot)}" : host.Accelerator,
            "-cpu", host.Cpu,
            "-smp", "1",
            "-m", mib + "M",
            "-object", memory switch
            {
                VmMemory.Template t => $"memory-backend-file,id=mem,size={mib}M,mem-path={t.File},share=on",
                VmMemory.CloneOf c => $"memory-backend-file,id=mem,size={mib}M,mem-path={c.File},share=off",
                _ => $"memory-backend-ram,id=mem,size={mib}M",
            },
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", "file:" + paths.Console,
            "-device", "virtio-serial-device",
            "-chardev", $"socket,id=ctl,path={paths.Control},server=on,wait=off",
            "-device", "virtserialport,chardev=ctl,name=org.snowflock.ctl",
            "-netdev", netdev + ",id=net0",
            "-device", $"virtio-net-device,netdev=net0,mac={mac}",
            "-qmp", $"unix:{paths.Qmp},server=on,wait=off",
        };
        switch (boot)
        {
            case VmBoot.Kernel k:
                args.AddRange(["-kernel", k.KernelPath, "-initrd", k.InitramfsPath, "-append", k.Append]);
                break;
            case VmBoot.Incoming:
                args.AddRange(["-incoming", "defer"]);
                break;
        }
        return args;
    }

    /// <summary>TCG's translated-code cache, which QEMU fills as the guest runs and which is each
    /// VM's largest private cost after its own RAM. A booting kernel needs a big one; a clone runs
    /// less new code (the rank's start-up). Measured here (np 2, PSS per clone / MPI_Init): 64 MiB
    /// 88 MB / 536 ms, 32 MiB 84 MB / 340 ms, 16 MiB 64 MB / 1012 ms, 8 MiB 58 MB / 1460 ms: below
    /// 32 MiB the cache thrashes. SFRUN_QEMU_TB_MIB overrides the clones' size.</summary>
    private static int TranslationCacheMiB(VmBoot boot) =>
        boot is VmBoot.Kernel ? 64
        : int.TryParse(Environment.GetEnvironmentVariable("SFRUN_QEMU_TB_MIB"), out var mib) && mib >= 4 ? mib : 32;

    /// <summary>The guest kernel's command line. tsc_early_khz spares TCG guests the TSC
    /// calibration that hangs them on a loaded host; panic=-1 powers a broken guest off (with
    /// -no-reboot, QEMU then exits) instead of leaving it spinning.</summary>
    public static string KernelAppend(QemuHost host) =>
        "console=ttyS0 quiet panic=-1 rdinit=/init" + (host.TscKhz > 0 ? $" tsc_early_khz={host.TscKhz}" : "");

    /// <summary>MAC of clone <paramref name="k"/> (locally administered, QEMU's OUI as QEMU users expect).</summary>
    public static string Mac(int k) => $"52:54:00:5f:{(k >> 8) & 0xff:x2}:{k & 0xff:x2}";
}
