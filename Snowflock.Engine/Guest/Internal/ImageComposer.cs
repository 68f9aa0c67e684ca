using System.Diagnostics;
using System.Text;
using NLog;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Guest.Internal;

/// <summary>Where the builder takes things from; the host's own by default, other places in tests.</summary>
internal sealed record ImageSources(string CacheDirectory, string BootDirectory, string ModulesRoot, string Busybox)
{
    public static ImageSources Host => new(Path.Combine(UserCache.Directory, "images"), "/boot", "/lib/modules", "/bin/busybox");
}

/// <summary>
/// Decides what goes into a guest's root file system: the agent as /init, busybox and its applets,
/// the programs with their libraries (and what MPICH's ranks dlopen), the kernel modules for the
/// clone's devices, and the few /etc files a program expects.
/// </summary>
internal static class ImageComposer
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Guest");

    /// <summary>Plugin folders that libraries in the image load with dlopen at run time: UCX's
    /// transports (MPICH ch4:ucx) and hwloc's topology plugins.</summary>
    private const string UcxPlugins = "/usr/lib/x86_64-linux-gnu/ucx", HwlocPlugins = "/usr/lib/x86_64-linux-gnu/hwloc";

    private static readonly string[] MpiLibraryPrefixes = ["libmpich.so", "libucp.so"];

    private const uint Rwx = 0x1ED /* 0755 */, Rw = 0x1A4 /* 0644 */;

    public const string ModuleListPath = "/etc/snowflock/modules";

    public static async Task<ImageLayout> ComposeAsync(GuestImageSpec spec, HostKernel kernel, ImageSources sources, CancellationToken ct)
    {
        foreach (var exe in spec.Executables)
            if (!File.Exists(exe))
                throw new GuestImageException($"{exe}: no such file");
        if (!File.Exists(spec.AgentPath))
            throw new GuestImageException($"guest agent {spec.AgentPath} not found: build native/ (make -C native)");
        if (!File.Exists(sources.Busybox))
            throw new GuestImageException($"no busybox at {sources.Busybox}: install busybox-static");

        var layout = new ImageLayout();
        // A merged-/usr host's /bin, /lib, /lib64 are symlinks into /usr; mirroring them first keeps
        // every path the host has (the loader at /lib64/ld-linux-x86-64.so.2) valid in the guest.
        foreach (var top in new[] { "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32" })
            if (new FileInfo(top).LinkTarget is { } target)
            {
                layout.TryAdd(new SymlinkEntry(top, target));
                layout.AddDirectory(Path.GetFullPath(target, "/"));
            }
        foreach (var dir in new[] { "/proc", "/sys", "/dev", "/run", "/etc", "/bin", "/sbin" })
            layout.AddDirectory(dir);
        layout.AddDirectory("/tmp", 0x3FF /* 01777 */);
        layout.AddDirectory("/root", 0x1C0 /* 0700 */);

        layout.TryAdd(new HostFileEntry("/init", Rwx, spec.AgentPath));
        var closure = LibraryClosure.ForHost(layout);
        if (ElfDependencies.DynamicOf(spec.AgentPath) is { } agent && (agent.Needed.Count > 0 || agent.Interpreter is not null))
            closure.Add(spec.AgentPath);
        foreach (var file in spec.Executables.Concat(spec.ExtraFiles))
            closure.Add(file);
        if (closure.Missing.Count > 0)
        {
            var (needer, library) = closure.Missing[0];
            throw new GuestImageException($"{needer} needs {library}, which is not found on this host");
        }

        if (closure.Files.Any(f => MpiLibraryPrefixes.Any(p => Path.GetFileName(f).StartsWith(p, StringComparison.Ordinal))))
        {
            var before = closure.Missing.Count;
            string[] pluginDirectories = spec.TopologyPlugins ? [UcxPlugins, HwlocPlugins] : [UcxPlugins];
            foreach (var dir in pluginDirectories.Where(Directory.Exists))
                foreach (var plugin in Directory.GetFiles(dir).Where(f => f.Contains(".so", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
                    closure.Add(plugin);
            // A plugin whose own libraries are missing is skipped by its loader at run time, as on the host.
            foreach (var (needer, library) in closure.Missing.Skip(before))
                Log.ForDebugEvent().Message("plugin {Plugin} needs {Library}, not on this host; it will not load in the guest", needer, library)
                    .Property("EventName", "GuestPluginIncomplete").Log();
        }

        closure.Add(sources.Busybox);
        foreach (var applet in await BusyboxAppletsAsync(sources.Busybox, ct))
            layout.TryAdd(new SymlinkEntry("/bin/" + applet, sources.Busybox));

        var modules = KernelModules.LoadOrder(spec.Modules,
            await File.ReadAllTextAsync(Path.Combine(kernel.ModulesDirectory, "modules.dep"), ct),
            File.Exists(Path.Combine(kernel.ModulesDirectory, "modules.builtin"))
                ? await File.ReadAllTextAsync(Path.Combine(kernel.ModulesDirectory, "modules.builtin"), ct) : "");
        var list = new StringBuilder();
        foreach (var module in modules)
        {
            if (!module.EndsWith(".ko", StringComparison.Ordinal))
                throw new GuestImageException($"kernel module {module} is compressed; only uncompressed modules (Debian's) are supported");
            var guestPath = "/lib/modules/" + Path.GetFileName(module);
            layout.TryAdd(new HostFileEntry(guestPath, Rw, Path.Combine(kernel.ModulesDirectory, module)));
            list.Append(guestPath).Append('\n');
        }
        layout.TryAdd(new ContentEntry(ModuleListPath, Rw, Encoding.UTF8.GetBytes(list.ToString())));

        layout.TryAdd(new ContentEntry("/etc/passwd", Rw, "root:x:0:0:root:/root:/bin/sh\n"u8.ToArray()));
        layout.TryAdd(new ContentEntry("/etc/group", Rw, "root:x:0:\n"u8.ToArray()));
        layout.TryAdd(new ContentEntry("/etc/nsswitch.conf", Rw, "passwd: files\ngroup: files\nshadow: files\nhosts: files\n"u8.ToArray()));
        layout.TryAdd(new ContentEntry("/etc/hosts", Rw, "127.0.0.1 localhost\n::1 localhost\n"u8.ToArray()));
        // Libraries found through /etc/ld.so.conf directories are found the same way in the guest.
        if (File.Exists("/etc/ld.so.cache"))
            layout.TryAdd(new HostFileEntry("/etc/ld.so.cache", Rw, "/etc/ld.so.cache"));
        return layout;
    }

    private static async Task<string[]> BusyboxAppletsAsync(string busybox, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(busybox, ["--list"]) { RedirectStandardOutput = true, UseShellExecute = false };
        using var process = Process.Start(psi)!;
        var output = await process.StandardOutput.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        if (process.ExitCode != 0)
            throw new GuestImageException($"{busybox} --list failed (exit {process.ExitCode}): reinstall busybox-static");
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(a => a != "busybox" && !a.Contains('/')).ToArray();
    }
}
