using System.IO.Compression;
using System.IO.Pipelines;
using Snowflock.Engine.Guest;

namespace Snowflock.Engine.Engines.Xen.Internal;

/// <summary>Where a domU's kernel and initramfs are in dom0.</summary>
internal sealed record XenGuestFiles(string Kernel, string Ramdisk, string ImageHash);

/// <summary>
/// Puts the job's guest image in dom0: the same image the qemu engine boots (built by
/// <see cref="GuestImageBuilder"/>), with xen-netfront instead of the virtio drivers and without
/// hwloc's plugins (every byte of a Xen clone is RAM of its own). dom0 keeps one gzip-compressed
/// copy per image hash, so a second job with the same programs uploads nothing; the kernel is the
/// host's own Debian kernel (PV-capable), as an ELF vmlinux when one is there already. dom0
/// keeps the eight images used last.
/// </summary>
internal static class XenGuestFileStore
{
    public const string Root = "/var/lib/snowflock";

    /// <summary>Guest images dom0 keeps, most recently used first (each some 20 MB compressed).</summary>
    private const int KeptImages = 8;

    public static async Task<XenGuestFiles> EnsureAsync(XlClient xl, IReadOnlyList<string> executables, CancellationToken ct)
    {
        var agent = NativeHelpers.Find("sfagent")
            ?? throw new EngineUnavailableException("xen engine: the guest agent sfagent was not found; build native/ (scripts/setup) or set SFRUN_NATIVE_DIR");
        GuestImage image;
        try
        {
            image = await GuestImageBuilder.BuildAsync(
                GuestImageSpec.ForEngine("xen", executables, agent), ct).ConfigureAwait(false);
        }
        catch (GuestImageException e)
        {
            throw new EngineUnavailableException($"xen engine: cannot build the guest image: {e.Message}");
        }

        var ramdisk = $"{Root}/images/{image.Hash}.cpio.gz";
        var vmlinux = $"{Root}/kernel/vmlinux-{image.KernelVersion}";
        var vmlinuz = $"{Root}/kernel/vmlinuz-{image.KernelVersion}";
        // Also marks this image as used and keeps only the newest few: dom0's disk is not sfrun's alone.
        var have = await xl.RunAsync(["sh", "-c",
                "for f in \"$@\"; do [ -f \"$f\" ] && echo \"$f\"; done; [ -f \"$1\" ] && touch \"$1\"; " +
                $"ls -t \"$(dirname \"$1\")\"/*.cpio.gz 2>/dev/null | tail -n +{KeptImages + 1} | xargs -r rm -f; true",
                "sh", ramdisk, vmlinux, vmlinuz],
            TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        var present = have.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
        if (!present.Contains(ramdisk))
            await UploadCompressedAsync(xl, image.InitramfsPath, ramdisk, ct).ConfigureAwait(false);
        if (present.Contains(vmlinux))
            return new XenGuestFiles(vmlinux, ramdisk, image.Hash);
        if (!present.Contains(vmlinuz))
        {
            await using var k = File.OpenRead($"/boot/vmlinuz-{image.KernelVersion}");
            await xl.WriteFileAsync(vmlinuz, k, ct).ConfigureAwait(false);
        }
        return new XenGuestFiles(vmlinuz, ramdisk, image.Hash);
    }

    /// <summary>gzip on the way (the guest kernel unpacks it): a third of the bytes through ssh and
    /// in dom0, and no compressed copy on this machine.</summary>
    private static async Task UploadCompressedAsync(XlClient xl, string initramfs, string target, CancellationToken ct)
    {
        var pipe = new Pipe();
        var compress = Task.Run(async () =>
        {
            try
            {
                await using var source = File.OpenRead(initramfs);
                await using (var gz = new GZipStream(pipe.Writer.AsStream(leaveOpen: true), CompressionLevel.Fastest, leaveOpen: false))
                    await source.CopyToAsync(gz, ct).ConfigureAwait(false);
                await pipe.Writer.CompleteAsync().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                await pipe.Writer.CompleteAsync(e).ConfigureAwait(false);
            }
        }, ct);
        await using (var upload = pipe.Reader.AsStream())
            await xl.WriteFileAsync(target, upload, ct).ConfigureAwait(false);
        await compress.ConfigureAwait(false);
    }
}
