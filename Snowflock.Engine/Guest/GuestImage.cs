namespace Snowflock.Engine.Guest;

/// <summary>A built guest image: the kernel as an ELF vmlinux (booted directly, PVH, so TCG does
/// not spend seconds decompressing it) and an uncompressed newc initramfs. <see cref="Hash"/>
/// names it in the cache and in <c>sfrun image</c>.</summary>
public sealed record GuestImage(string KernelPath, string InitramfsPath, string Hash, string KernelVersion)
{
    /// <summary>True when the image was already in the cache and nothing was built.</summary>
    public bool FromCache { get; init; }

    public long InitramfsBytes { get; init; }
}
