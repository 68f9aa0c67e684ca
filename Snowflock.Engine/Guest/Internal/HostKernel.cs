using System.Diagnostics;
using System.Text.RegularExpressions;
using Snowflock.Engine.Internal;

namespace Snowflock.Engine.Guest.Internal;

/// <summary>
/// The host's newest installed kernel (Debian's linux-image-amd64 puts it at /boot/vmlinuz-VERSION
/// and its modules under /lib/modules/VERSION), and the ELF vmlinux inside its bzImage.
/// </summary>
internal sealed partial record HostKernel(string Version, string BzImage, string ModulesDirectory)
{
    private static readonly byte[] XzMagic = [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00];
    private static readonly byte[] ElfMagic = [0x7F, (byte)'E', (byte)'L', (byte)'F'];

    public static HostKernel FindNewest(string bootDirectory = "/boot", string modulesRoot = "/lib/modules")
    {
        var kernels = Directory.Exists(bootDirectory)
            ? Directory.GetFiles(bootDirectory, "vmlinuz-*").Where(f => !f.EndsWith(".old", StringComparison.Ordinal)).ToList()
            : [];
        if (kernels.Count == 0)
            throw new GuestImageException($"no kernel in {bootDirectory} (vmlinuz-*): install linux-image-amd64");
        var newest = kernels.OrderBy(k => Path.GetFileName(k)["vmlinuz-".Length..], VersionOrder.Instance).Last();
        var version = Path.GetFileName(newest)["vmlinuz-".Length..];
        var modules = Path.Combine(modulesRoot, version);
        if (!File.Exists(Path.Combine(modules, "modules.dep")))
            throw new GuestImageException($"kernel {version} has no {modules}/modules.dep: reinstall linux-image-{version}");
        return new HostKernel(version, newest, modules);
    }

    /// <summary>
    /// The vmlinux of this kernel, extracted once into <paramref name="directory"/>.
    /// A bzImage is a small decompressor followed by the xz-compressed ELF kernel; xz stops at the
    /// end of its stream and ignores the decompressor's trailer that follows.
    /// </summary>
    public async Task<string> ExtractVmlinuxAsync(string directory, CancellationToken ct)
    {
        var vmlinux = Path.Combine(directory, "vmlinux");
        if (IsElf(vmlinux))
            return vmlinux;
        UserCache.CreateDirectory(directory);

        byte[] bz;
        try
        {
            bz = await File.ReadAllBytesAsync(BzImage, ct);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new GuestImageException($"{BzImage}: cannot read the kernel ({e.Message})", e);
        }
        var at = bz.AsSpan().IndexOf(XzMagic);
        if (at < 0)
            throw new GuestImageException($"{BzImage}: no xz-compressed kernel inside; only xz bzImages (Debian's) are supported");

        var temp = vmlinux + $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            var psi = new ProcessStartInfo("xz", ["-dc", "--single-stream"])
            {
                RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            Process xz;
            try
            {
                xz = Process.Start(psi)!;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                throw new GuestImageException("xz not found: install xz-utils");
            }
            using (xz)
                await DecompressAsync(xz, bz.AsMemory(at), temp, ct);
            if (!IsElf(temp))
                throw new GuestImageException($"{BzImage}: the decompressed kernel is not an ELF file");
            File.Move(temp, vmlinux, overwrite: true);
            return vmlinux;
        }
        catch (Exception e) when (UserCache.IsFault(e))
        {
            throw UserCache.Fault(vmlinux, e);
        }
        finally
        {
            try
            {
                File.Delete(temp);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>
    /// Feeds xz the compressed kernel while its output goes to <paramref name="temp"/>, both at
    /// once. When either side fails (the cache's disk is full, xz stops) xz is killed: a writer
    /// left blocked on a full pipe that nobody reads any more would otherwise wait for ever.
    /// </summary>
    private async Task DecompressAsync(System.Diagnostics.Process xz, ReadOnlyMemory<byte> compressed, string temp, CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var errors = xz.StandardError.ReadToEndAsync(CancellationToken.None);
        async Task ReadAsync()
        {
            await using var output = UserCache.CreateFile(temp);
            await xz.StandardOutput.BaseStream.CopyToAsync(output, stop.Token);
        }
        async Task WriteAsync()
        {
            try
            {
                await xz.StandardInput.BaseStream.WriteAsync(compressed, stop.Token);
                xz.StandardInput.Close();
            }
            catch (IOException)
            {
                // xz stopped reading (the end of its stream, or it was killed); its exit status and
                // the reader tell the rest.
            }
        }
        var reading = ReadAsync();
        var writing = WriteAsync();
        var first = await Task.WhenAny(reading, writing);
        if (first.IsFaulted || first.IsCanceled)
        {
            stop.Cancel();
            KillQuietly(xz);
        }
        try
        {
            await Task.WhenAll(reading, writing);
        }
        catch
        {
            stop.Cancel();
            KillQuietly(xz);
            await xz.WaitForExitAsync(CancellationToken.None);
            throw;
        }
        await xz.WaitForExitAsync(ct);
        if (xz.ExitCode != 0)
            throw new GuestImageException($"{BzImage}: xz could not decompress the kernel: {(await errors).Trim()}");
    }

    private static void KillQuietly(System.Diagnostics.Process process)
    {
        try
        {
            process.Kill();
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    private static bool IsElf(string path)
    {
        try
        {
            using var f = File.OpenRead(path);
            Span<byte> magic = stackalloc byte[4];
            return f.Read(magic) == 4 && magic.SequenceEqual(ElfMagic);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Orders kernel versions the way dpkg would for Debian's names: number runs by value
    /// ("6.1.0-56" after "6.1.0-9"), everything else by character.</summary>
    internal sealed partial class VersionOrder : IComparer<string>
    {
        public static readonly VersionOrder Instance = new();

        [GeneratedRegex(@"\d+|\D+")]
        private static partial Regex Runs();

        public int Compare(string? x, string? y)
        {
            var a = Runs().Matches(x ?? "");
            var b = Runs().Matches(y ?? "");
            for (var i = 0; i < Math.Min(a.Count, b.Count); i++)
            {
                var (p, q) = (a[i].Value, b[i].Value);
                var c = char.IsAsciiDigit(p[0]) && char.IsAsciiDigit(q[0])
                    ? decimal.Parse(p).CompareTo(decimal.Parse(q))
                    : string.CompareOrdinal(p, q);
                if (c != 0)
                    return c;
            }
            return a.Count.CompareTo(b.Count);
        }
    }
}
