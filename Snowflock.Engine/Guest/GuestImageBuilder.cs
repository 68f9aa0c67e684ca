namespace Snowflock.Engine.Guest;

// INTERIM (replaced by the image builder branch): takes a prebuilt image from SFRUN_DEV_IMAGE.
public sealed record GuestImageSpec(IReadOnlyList<string> Executables, string AgentPath)
{
    public IReadOnlyList<string> ExtraFiles { get; init; } = [];
}

public sealed record GuestImage(string KernelPath, string InitramfsPath, string Hash, string KernelVersion);

public static class GuestImageBuilder
{
    public static Task<GuestImage> BuildAsync(GuestImageSpec spec, CancellationToken ct)
    {
        var dir = Environment.GetEnvironmentVariable("SFRUN_DEV_IMAGE") ?? throw new EngineUnavailableException("no image builder yet");
        var initramfs = Path.Combine(dir, "initramfs.cpio");
        var fi = new FileInfo(initramfs);
        return Task.FromResult(new GuestImage(Path.Combine(dir, "vmlinux"), initramfs, $"{fi.Length}-{fi.LastWriteTimeUtc.Ticks}", "dev"));
    }
}
