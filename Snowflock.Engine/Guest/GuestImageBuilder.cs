using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using NLog;
using Snowflock.Engine.Guest.Internal;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Guest;

/// <summary>
/// Builds, or finds already built, the guest image for a set of programs: the host's kernel as a
/// vmlinux and an initramfs made of what the host has (see <see cref="ImageComposer"/>). Images are
/// cached under $XDG_CACHE_HOME/snowflock/images/HASH/, HASH over the kernel and the bytes of every
/// file that goes in, so a rebuilt program or an upgraded library gives a new image and an
/// unchanged set reuses the old one. An image is built in a temporary folder and renamed into
/// place: a concurrent sfrun sees a whole image or none.
/// </summary>
public static class GuestImageBuilder
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Guest");
    private const string FormatVersion = "snowflock-guest-image 1";
    internal const string InitramfsName = "initramfs.cpio", ManifestName = "image.txt", ContentsName = "contents.txt";

    public static Task<GuestImage> BuildAsync(GuestImageSpec spec, CancellationToken ct) =>
        BuildAsync(spec, ImageSources.Host, ct);

    internal static async Task<GuestImage> BuildAsync(GuestImageSpec spec, ImageSources sources, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        spec = spec with
        {
            Executables = spec.Executables.Select(Path.GetFullPath).ToList(),
            AgentPath = Path.GetFullPath(spec.AgentPath),
            ExtraFiles = spec.ExtraFiles.Select(Path.GetFullPath).ToList(),
        };
        var kernel = HostKernel.FindNewest(sources.BootDirectory, sources.ModulesRoot);
        var layout = await ImageComposer.ComposeAsync(spec, kernel, sources, ct);
        UserCache.CreateDirectory(sources.CacheDirectory);
        var digests = new FileDigests(Path.Combine(sources.CacheDirectory, "digests.tsv"));
        var hash = Hash(layout, kernel, digests);
        digests.Save();
        // Per kernel version and bytes: a kernel package rebuilt without a new ABI number keeps its version.
        var vmlinux = await kernel.ExtractVmlinuxAsync(
            Path.Combine(sources.CacheDirectory, "kernels", $"{kernel.Version}-{digests.DigestOf(kernel.BzImage)[..12]}"), ct);

        var dir = Path.Combine(sources.CacheDirectory, hash);
        var initramfs = Path.Combine(dir, InitramfsName);
        if (File.Exists(Path.Combine(dir, ManifestName)) && File.Exists(initramfs))
        {
            Log.ForDebugEvent().Message("guest image {Hash} found in the cache in {Ms} ms ({Hashed} files hashed, {Remembered} remembered)",
                    hash, clock.ElapsedMilliseconds, digests.Hashed, digests.Remembered)
                .Property("EventName", "GuestImageReused").Log();
            return new GuestImage(vmlinux, initramfs, hash, kernel.Version) { FromCache = true, InitramfsBytes = new FileInfo(initramfs).Length };
        }

        RemoveAbandonedBuilds(sources.CacheDirectory);
        var temp = Path.Combine(sources.CacheDirectory, $".tmp-{hash}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        UserCache.CreateDirectory(temp);
        try
        {
            long bytes;
            await using (var output = UserCache.CreateFile(Path.Combine(temp, InitramfsName), FileMode.CreateNew))
            {
                await WriteArchiveAsync(layout, output, ct);
                bytes = output.Length;
            }
            UserCache.WriteAllText(Path.Combine(temp, ContentsName), string.Concat(layout.Entries.Select(e => Describe(e) + "\n")));
            var manifest = new StringBuilder()
                .Append($"hash={hash}\nkernel-version={kernel.Version}\nkernel={vmlinux}\ninitramfs-bytes={bytes}\n")
                .Append($"entries={layout.Entries.Count()}\nbuilt={DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture)}\n")
                .Append($"build-ms={clock.ElapsedMilliseconds}\n");
            foreach (var exe in spec.Executables)
                manifest.Append($"program={exe}\n");
            // Written last: an image folder is complete exactly when it has a manifest.
            UserCache.WriteAllText(Path.Combine(temp, ManifestName), manifest.ToString());
            try
            {
                Directory.Move(temp, dir);
            }
            catch (IOException) when (File.Exists(Path.Combine(dir, ManifestName)))
            {
                // Another sfrun built the same image first; its copy is as good as ours.
            }
            Log.ForDebugEvent().Message("guest image {Hash} built in {Ms} ms: {Bytes} bytes, {Entries} entries",
                    hash, clock.ElapsedMilliseconds, bytes, layout.Entries.Count())
                .Property("EventName", "GuestImageBuilt").Log();
            return new GuestImage(vmlinux, initramfs, hash, kernel.Version) { InitramfsBytes = new FileInfo(initramfs).Length };
        }
        catch (Exception e) when (UserCache.IsFault(e))
        {
            throw UserCache.Fault(temp, e);
        }
        finally
        {
            SafeTree.Delete(temp);
        }
    }

    internal static async Task WriteArchiveAsync(ImageLayout layout, Stream output, CancellationToken ct)
    {
        var cpio = new CpioWriter(output);
        foreach (var entry in layout.Entries)
        {
            switch (entry)
            {
                case DirectoryEntry d:
                    await cpio.AddDirectoryAsync(d.Path, d.Mode, ct);
                    break;
                case SymlinkEntry l:
                    await cpio.AddSymlinkAsync(l.Path, l.Target, ct);
                    break;
                case HostFileEntry f:
                    await cpio.AddHostFileAsync(f.Path, f.Mode, f.HostPath, ct);
                    break;
                case ContentEntry c:
                    await cpio.AddFileAsync(c.Path, c.Mode, c.Content, ct);
                    break;
            }
        }
        await cpio.FinishAsync(ct);
    }

    /// <summary>The image's name: SHA-256 over the format, the kernel, and each entry with the digest
    /// of its bytes, in archive order; the first 32 hex digits.</summary>
    internal static string Hash(ImageLayout layout, HostKernel kernel, FileDigests digests)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string s) => sha.AppendData(Encoding.UTF8.GetBytes(s + "\n"));
        Add(FormatVersion);
        Add($"kernel {kernel.Version} {digests.DigestOf(kernel.BzImage)}");
        foreach (var entry in layout.Entries)
            Add(entry switch
            {
                HostFileEntry f => $"{Describe(f)} {digests.DigestOf(f.HostPath)}",
                ContentEntry c => $"{Describe(c)} {Convert.ToHexStringLower(SHA256.HashData(c.Content))}",
                _ => Describe(entry),
            });
        return Convert.ToHexStringLower(sha.GetHashAndReset())[..32];
    }

    private static string Describe(LayoutEntry entry) => entry switch
    {
        DirectoryEntry d => $"d {Convert.ToString(d.Mode, 8)} {d.Path}",
        SymlinkEntry l => $"l {l.Path} -> {l.Target}",
        HostFileEntry f => $"f {Convert.ToString(f.Mode, 8)} {f.Path} < {f.HostPath}",
        ContentEntry c => $"c {Convert.ToString(c.Mode, 8)} {c.Path}",
        _ => entry.Path,
    };

    /// <summary>Temporary folders of builds that were killed (an hour old is far beyond any build).</summary>
    private static void RemoveAbandonedBuilds(string cacheDirectory)
    {
        foreach (var dir in Directory.GetDirectories(cacheDirectory, ".tmp-*"))
        {
            try
            {
                if (Directory.GetLastWriteTimeUtc(dir) < DateTime.UtcNow.AddHours(-1))
                    SafeTree.Delete(dir);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Someone else is removing it.
            }
        }
    }
}
