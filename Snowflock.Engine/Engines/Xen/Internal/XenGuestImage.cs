using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Snowflock.Engine.Engines.Xen.Internal;

/// <summary>
/// The PV guest's initramfs: the agent as /init, busybox, the programs at their own paths with
/// the closure of their shared libraries (and the UCX plugins MPICH's ranks dlopen),
/// xen-netfront for the vif, and the working directories. The xen engine's own small composer
/// until it can use the shared guest image builder (which targets the qemu engine's virtio
/// devices first). Packed with cpio and gzip with every time stamp and inode number zeroed, so
/// the same content gives the same bytes and dom0 keeps one copy per hash.
/// </summary>
internal static partial class XenGuestImage
{
    // UCX finds its transports as plugins. hwloc's plugins (GL, OpenCL, libxml2 and ICU behind them,
    // ~40 MB) are optional and left out: the guest's rootfs is RAM.
    private static readonly string[] PluginDirectories = ["/usr/lib/x86_64-linux-gnu/ucx"];

    public sealed record Built(string Path, string Hash, string KernelVersion);

    public static async Task<Built> BuildAsync(IReadOnlyList<string> executables, IReadOnlyList<string> directories, CancellationToken ct)
    {
        var agent = NativeHelpers.Find("sfagent")
            ?? throw new EngineUnavailableException("xen engine: the guest agent sfagent is not built (run scripts/setup, or set SFRUN_NATIVE_DIR)");
        var kernel = KernelVersion();
        var stage = Directory.CreateTempSubdirectory("sfrun-xen-image-").FullName;
        var output = stage + ".cpio.gz";
        try
        {
            Copy(agent, Path.Combine(stage, "init"));
            Copy("/bin/busybox", Path.Combine(stage, "bin", "busybox"));
            foreach (var applet in new[] { "sh", "ls", "cat", "ip", "hostname", "sleep", "env", "ps", "kill" })
                File.CreateSymbolicLink(Path.Combine(stage, "bin", applet), "busybox");
            foreach (var d in new[] { "proc", "sys", "dev", "tmp", "etc/snowflock", "lib/modules" })
                Directory.CreateDirectory(Path.Combine(stage, d));
            foreach (var d in directories)
                Directory.CreateDirectory(Path.Combine(stage, d.TrimStart('/')));

            var elves = executables.Concat(PluginDirectories.Where(Directory.Exists)
                .SelectMany(d => Directory.EnumerateFiles(d, "*.so*", SearchOption.AllDirectories))).ToList();
            var files = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var elf in elves)
            {
                files.Add(elf);
                foreach (var lib in await LddAsync(elf, ct))
                    files.Add(lib);
            }
            foreach (var f in files)
                CopyWithLink(f, stage);

            var modules = new List<string>();
            foreach (var ko in await ModuleChainAsync(kernel, "xen-netfront", ct))
            {
                Copy(ko, Path.Combine(stage, "lib", "modules", Path.GetFileName(ko)));
                modules.Add("/lib/modules/" + Path.GetFileName(ko));
            }
            await File.WriteAllLinesAsync(Path.Combine(stage, "etc", "snowflock", "modules"), modules, ct);

            await RunAsync("/bin/sh", ["-c", "cd \"$1\" && find . -exec touch -h -d @0 {} + && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible | gzip -1 -n > \"$2\"", "sh", stage, output], ct);
            await using var s = File.OpenRead(output);
            var hash = Convert.ToHexStringLower(await SHA256.HashDataAsync(s, ct))[..20];
            return new Built(output, hash, kernel);
        }
        catch
        {
            File.Delete(output);
            throw;
        }
        finally
        {
            Directory.Delete(stage, recursive: true);
        }
    }

    /// <summary>The newest kernel in /boot (the guest runs the host's Debian kernel, which is PV-capable).</summary>
    internal static string KernelVersion()
    {
        var versions = Directory.Exists("/boot") ? Directory.GetFiles("/boot", "vmlinuz-*").Select(f => Path.GetFileName(f)["vmlinuz-".Length..]).ToList() : [];
        return versions.OrderBy(v => v, StringComparer.Ordinal).LastOrDefault(v => Directory.Exists($"/lib/modules/{v}"))
            ?? throw new EngineUnavailableException("xen engine: no kernel in /boot with modules in /lib/modules for the guests (install linux-image-amd64)");
    }

    private static void Copy(string from, string to)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(to)!);
        File.Copy(from, to, overwrite: true);
    }

    /// <summary>A file at its own path, plus the link it was reached through when that differs
    /// (sonames are symlinks).</summary>
    private static void CopyWithLink(string path, string stage)
    {
        var real = Path.GetFullPath(new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path);
        Copy(real, Path.Combine(stage, real.TrimStart('/')));
        if (real != path)
        {
            var link = Path.Combine(stage, path.TrimStart('/'));
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            if (!File.Exists(link))
                File.CreateSymbolicLink(link, real);
        }
    }

    private static async Task<IEnumerable<string>> LddAsync(string elf, CancellationToken ct)
    {
        var (code, output) = await RunAsync("ldd", [elf], ct, check: false);
        return code != 0 ? [] : LddPath().Matches(output).Select(m => m.Groups[1].Value).Where(File.Exists);
    }

    private static async Task<IEnumerable<string>> ModuleChainAsync(string kernel, string module, CancellationToken ct)
    {
        var (_, output) = await RunAsync("modprobe", ["-S", kernel, "--show-depends", module], ct);
        return output.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(w => w.Length >= 2 && w[0] == "insmod").Select(w => w[1]);
    }

    private static async Task<(int, string)> RunAsync(string file, string[] args, CancellationToken ct, bool check = true)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        if (check && p.ExitCode != 0)
            throw new EngineUnavailableException($"xen engine: building the guest image: {file} failed: {(await stderr).Trim()}");
        return (p.ExitCode, await stdout);
    }

    [GeneratedRegex(@"(?:=>\s*|^\s*)(/[^\s]+)\s+\(0x", RegexOptions.Multiline)]
    private static partial Regex LddPath();
}
