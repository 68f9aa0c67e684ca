using Snowflock.Engine.Guest;
using Snowflock.Engine.Guest.Internal;
using Snowflock.Tests.Integration.Support;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>The image cache: a second build finds the first, a changed input gives a new image,
/// concurrent builds of one image leave one whole image, and the list/remove operations. Each test
/// has its own cache folder; the kernel, busybox and modules are the host's.</summary>
[Trait("Area", "unit")]
public sealed class GuestImageBuilderTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sftest-image-" + Guid.NewGuid().ToString("N"));
    private string Cache => Path.Combine(_dir, "cache");
    private ImageSources Sources => ImageSources.Host with { CacheDirectory = Cache };
    private string Program => Path.Combine(_dir, "hello");
    private static string Agent => Repo.TestProgram("guest_init");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        await File.WriteAllTextAsync(Path.Combine(_dir, "hello.c"), "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n");
        var r = await CommandRun.RunAsync("cc", ["-O1", "-o", Program, Path.Combine(_dir, "hello.c")]);
        Assert.True(r.ExitCode == 0, r.Err);
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    private Task<GuestImage> Build(params string[] programs) =>
        GuestImageBuilder.BuildAsync(new GuestImageSpec(programs.Length == 0 ? [Program] : programs, Agent), Sources, default);

    [Fact]
    public async Task The_second_build_is_a_cache_hit_with_the_same_hash()
    {
        var first = await Build();
        var second = await Build();
        Assert.False(first.FromCache);
        Assert.True(second.FromCache);
        Assert.Equal(first, second with { FromCache = false });
        Assert.Matches("^[0-9a-f]{32}$", first.Hash);
        Assert.Equal(Path.Combine(Cache, first.Hash, "initramfs.cpio"), first.InitramfsPath);
        Assert.True(File.Exists(first.KernelPath));
        Assert.Equal(new FileInfo(first.InitramfsPath).Length, first.InitramfsBytes);
    }

    [Fact]
    public async Task The_image_holds_init_busybox_the_program_its_libraries_the_extra_files_and_the_module_list()
    {
        var extra = Path.Combine(Repo.Root, "native", "build", "libsfpmi.so");
        var image = await GuestImageBuilder.BuildAsync(new GuestImageSpec([Program], Agent) { ExtraFiles = [extra] }, Sources, default);
        var r = await CommandRun.RunAsync("sh", ["-c", $"cpio -t --quiet < '{image.InitramfsPath}'"]);
        Assert.True(r.ExitCode == 0, r.Err);
        var names = r.OutLines.ToHashSet();
        foreach (var path in new[] { "init", "etc/snowflock/modules", "etc/passwd", "etc/group", "etc/hosts", "etc/nsswitch.conf",
                     "proc", "sys", "dev", "tmp", "run", "root", Program.TrimStart('/'), extra.TrimStart('/') })
            Assert.Contains(path, names);
        // On a merged-/usr host /bin is a link to usr/bin, so busybox and its applets live there.
        var bin = new FileInfo("/bin").LinkTarget is null ? "bin" : "usr/bin";
        Assert.Contains(bin + "/busybox", names);
        Assert.Contains(bin + "/sh", names);
        // Every mirrored top-level link leads somewhere: /sbin -> usr/sbin needs usr/sbin.
        foreach (var top in new[] { "bin", "sbin", "lib", "lib64" })
            if (new FileInfo("/" + top).LinkTarget is { } target)
                Assert.Contains(Path.GetFullPath(target, "/").TrimStart('/'), names);
        Assert.Contains(names, n => n.EndsWith("/libc.so.6", StringComparison.Ordinal));
        Assert.Contains(names, n => n.EndsWith("/virtio_mmio.ko", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_changed_program_gives_a_new_image_and_memoized_digests_notice_it()
    {
        var first = await Build();
        await File.AppendAllTextAsync(Program, "trailing bytes");
        File.SetLastWriteTimeUtc(Program, DateTime.UtcNow.AddMinutes(1));
        var second = await Build();
        Assert.NotEqual(first.Hash, second.Hash);
        Assert.False(second.FromCache);
        Assert.Equal(2, GuestImageStore.List(Cache).Count);

        var digests = new FileDigests(Path.Combine(Cache, "digests.tsv"));
        digests.DigestOf(Program);
        digests.DigestOf(Agent);
        Assert.Equal((0, 2), (digests.Hashed, digests.Remembered));
    }

    [Fact]
    public async Task Concurrent_builds_of_one_image_leave_one_whole_image()
    {
        var builds = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() => Build())));
        Assert.Single(builds.Select(b => b.Hash).Distinct());
        Assert.Single(Directory.GetDirectories(Cache), d => Path.GetFileName(d) != "kernels");
        Assert.Empty(Directory.GetFileSystemEntries(Cache, ".tmp-*", SearchOption.AllDirectories));
        var r = await CommandRun.RunAsync("sh", ["-c", $"cpio -t --quiet < '{builds[0].InitramfsPath}' | wc -l"]);
        Assert.True(int.Parse(r.Out.Trim()) > 100, r.Out);
    }

    [Fact]
    public async Task Images_can_be_listed_and_removed()
    {
        var image = await Build();
        var listed = Assert.Single(GuestImageStore.List(Cache));
        Assert.Equal((image.Hash, image.KernelVersion, image.InitramfsBytes), (listed.Hash, listed.KernelVersion, listed.InitramfsBytes));
        Assert.Equal([Program], listed.Programs);
        Assert.Equal(0, GuestImageStore.Remove(Cache, "0000"));
        Assert.Throws<GuestImageException>(() => GuestImageStore.Remove(Cache, "x"));
        Assert.Equal(1, GuestImageStore.Remove(Cache, image.Hash[..8]));
        Assert.Empty(GuestImageStore.List(Cache));
        await Build();
        Assert.Equal(1, GuestImageStore.RemoveAll(Cache));
        Assert.False(Directory.Exists(Cache));
    }

    [Fact]
    public async Task Missing_kernel_busybox_or_program_are_clear_errors()
    {
        var noKernel = await Assert.ThrowsAsync<GuestImageException>(() =>
            GuestImageBuilder.BuildAsync(new GuestImageSpec([Program], Agent), Sources with { BootDirectory = _dir }, default));
        Assert.Contains("install linux-image-amd64", noKernel.Message);
        var noBusybox = await Assert.ThrowsAsync<GuestImageException>(() =>
            GuestImageBuilder.BuildAsync(new GuestImageSpec([Program], Agent), Sources with { Busybox = Path.Combine(_dir, "busybox") }, default));
        Assert.Contains("install busybox-static", noBusybox.Message);
        var noProgram = await Assert.ThrowsAsync<GuestImageException>(() => Build(Path.Combine(_dir, "absent")));
        Assert.Contains("absent: no such file", noProgram.Message);
    }

    [Fact]
    public void Kernel_versions_order_by_number()
    {
        var boot = Path.Combine(_dir, "boot");
        Directory.CreateDirectory(boot);
        foreach (var v in new[] { "6.1.0-9-amd64", "6.1.0-56-amd64", "5.10.0-30-amd64" })
            File.WriteAllText(Path.Combine(boot, "vmlinuz-" + v), "");
        Directory.CreateDirectory(Path.Combine(_dir, "modules", "6.1.0-56-amd64"));
        File.WriteAllText(Path.Combine(_dir, "modules", "6.1.0-56-amd64", "modules.dep"), "");
        Assert.Equal("6.1.0-56-amd64", HostKernel.FindNewest(boot, Path.Combine(_dir, "modules")).Version);
    }

    [Fact]
    public async Task The_extracted_kernel_is_an_ELF_vmlinux()
    {
        var image = await Build();
        var head = new byte[20];
        await using (var f = File.OpenRead(image.KernelPath))
            f.ReadExactly(head);
        Assert.Equal([0x7F, (byte)'E', (byte)'L', (byte)'F', 2], head[..5]);
        Assert.Equal(62, BitConverter.ToUInt16(head, 18));
        Assert.True(new FileInfo(image.KernelPath).Length > new FileInfo(HostKernel.FindNewest().BzImage).Length);
    }
}
