using System.Text;

namespace Snowflock.Engine.Guest.Internal;

/// <summary>
/// Writes a cpio archive in the "newc" format, the one the Linux kernel unpacks as an initramfs
/// (Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte ASCII header of
/// hexadecimal fields per entry, the NUL-terminated name and then the data, each padded to 4
/// bytes, ended by an entry named TRAILER!!!. Uncompressed on purpose: the kernel's unpacker
/// under TCG spends seconds in a decompressor and nothing on a plain copy.
/// The kernel creates no missing parent directories, so callers write directories first.
/// </summary>
internal sealed class CpioWriter(Stream output)
{
    private const uint S_IFDIR = 0x4000, S_IFREG = 0x8000, S_IFLNK = 0xA000;
    private const string Trailer = "TRAILER!!!";
    private uint _nextInode = 1;
    private long _written;

    public async Task AddDirectoryAsync(string path, uint mode, CancellationToken ct) =>
        await WriteEntryAsync(path, S_IFDIR | (mode & 0xFFF), nlink: 2, ReadOnlyMemory<byte>.Empty, ct);

    public async Task AddSymlinkAsync(string path, string target, CancellationToken ct) =>
        await WriteEntryAsync(path, S_IFLNK | 0x1FF, nlink: 1, Encoding.UTF8.GetBytes(target), ct);

    public async Task AddFileAsync(string path, uint mode, ReadOnlyMemory<byte> content, CancellationToken ct) =>
        await WriteEntryAsync(path, S_IFREG | (mode & 0xFFF), nlink: 1, content, ct);

    /// <summary>Copies a host file in; its length is taken once, so a file that changes size while
    /// it is copied fails the build instead of writing a corrupt archive.</summary>
    public async Task AddHostFileAsync(string path, uint mode, string hostPath, CancellationToken ct)
    {
        await using var source = new FileStream(hostPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
        var length = source.Length;
        if (length > uint.MaxValue)
            throw new IOException($"{hostPath}: larger than the 4 GiB a newc cpio entry can hold");
        await WriteHeaderAsync(path, S_IFREG | (mode & 0xFFF), nlink: 1, (uint)length, ct);
        var copied = 0L;
        var buffer = new byte[1 << 16];
        int n;
        while ((n = await source.ReadAsync(buffer, ct)) > 0)
        {
            if (copied + n > length)
                throw new IOException($"{hostPath}: grew while it was copied into the image");
            await output.WriteAsync(buffer.AsMemory(0, n), ct);
            copied += n;
        }
        if (copied != length)
            throw new IOException($"{hostPath}: shrank while it was copied into the image");
        _written += copied;
        await PadAsync(ct);
    }

    /// <summary>Writes the trailer entry and pads the archive to a 512-byte block, as cpio does.</summary>
    public async Task FinishAsync(CancellationToken ct)
    {
        await WriteEntryAsync(Trailer, 0, nlink: 1, ReadOnlyMemory<byte>.Empty, ct, inode: 0);
        var tail = (int)((512 - _written % 512) % 512);
        await output.WriteAsync(new byte[tail], ct);
        _written += tail;
        await output.FlushAsync(ct);
    }

    private async Task WriteEntryAsync(string path, uint mode, uint nlink, ReadOnlyMemory<byte> data, CancellationToken ct, uint? inode = null)
    {
        await WriteHeaderAsync(path, mode, nlink, (uint)data.Length, ct, inode);
        await output.WriteAsync(data, ct);
        _written += data.Length;
        await PadAsync(ct);
    }

    private async Task WriteHeaderAsync(string path, uint mode, uint nlink, uint size, CancellationToken ct, uint? inode = null)
    {
        // The kernel wants names relative to the root ("bin/sh"), the way `find . | cpio` stores
        // them minus the "./".
        var name = path == Trailer ? path : path.TrimStart('/');
        if (name.Length == 0)
            name = ".";
        var nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        var header = new StringBuilder(110);
        header.Append("070701");
        foreach (var field in new[]
                 {
                     inode ?? _nextInode++, mode, 0u /* uid */, 0u /* gid */, nlink, 0u /* mtime: fixed, so equal inputs give equal bytes */,
                     size, 0u, 0u, 0u, 0u /* dev and rdev major/minor */, (uint)nameBytes.Length, 0u /* check */,
                 })
            header.Append(field.ToString("x8"));
        var headerBytes = Encoding.ASCII.GetBytes(header.ToString());
        await output.WriteAsync(headerBytes, ct);
        await output.WriteAsync(nameBytes, ct);
        _written += headerBytes.Length + nameBytes.Length;
        await PadAsync(ct);
    }

    private async Task PadAsync(CancellationToken ct)
    {
        var pad = (int)((4 - _written % 4) % 4);
        if (pad == 0)
            return;
        await output.WriteAsync(new byte[pad], ct);
        _written += pad;
    }
}
