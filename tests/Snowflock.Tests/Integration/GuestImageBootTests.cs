using System.Diagnostics;
using Snowflock.Engine.Guest;
using Snowflock.Engine.Guest.Internal;
using Snowflock.Tests.Integration.Support;
using Xunit;

namespace Snowflock.Tests.Integration;

/// <summary>
/// A guest image booted by the real QEMU under TCG, as the qemu engine boots its template:
/// microvm, the extracted vmlinux (PVH), the uncompressed initramfs. /init is a stand-in for the
/// guest agent (tests/programs/guest_init.c) that loads the listed modules with finit_module, runs
/// the MPICH example from the image as a singleton and powers off: so the kernel accepts the
/// archive, the modules load in the listed order, and the program's library closure (UCX plugins
/// included) is complete enough for MPI_Init.
/// </summary>
[Trait("Area", "integration")]
[Trait("Engine", "qemu")]
public sealed class GuestImageBootTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sftest-boot-" + Guid.NewGuid().ToString("N"));

    public GuestImageBootTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task The_image_boots_loads_its_modules_and_runs_an_MPI_program()
    {
        var cpi = Repo.Example("cpi");
        var sources = ImageSources.Host with { CacheDirectory = Path.Combine(_dir, "cache") };
        var image = await GuestImageBuilder.BuildAsync(new GuestImageSpec([cpi], Repo.TestProgram("guest_init")), sources, default);
        var modules = await File.ReadAllLinesAsync(await ExtractModuleListAsync(image));

        var console = Path.Combine(_dir, "console.log");
        var psi = new ProcessStartInfo(Qemu.Binary)
        {
            UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        foreach (var a in new[]
                 {
                     "-M", "microvm", "-accel", "tcg", "-cpu", "max", "-m", "512M", "-smp", "1",
                     "-display", "none", "-nodefaults", "-no-user-config", "-no-reboot",
                     "-kernel", image.KernelPath, "-initrd", image.InitramfsPath,
                     "-append", $"console=ttyS0 quiet panic=-1 tsc_early_khz={Qemu.TscKhz()} -- {cpi} 100000",
                     "-serial", $"file:{console}",
                 })
            psi.ArgumentList.Add(a);
        using var qemu = Process.Start(psi)!;
        var stderr = qemu.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        try
        {
            await qemu.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            qemu.Kill();
            await qemu.WaitForExitAsync();
            Assert.Fail($"the guest did not power off within 120 s; console:\n{await File.ReadAllTextAsync(console)}");
        }
        var log = await File.ReadAllTextAsync(console);
        Assert.True(qemu.ExitCode == 0, $"qemu exited {qemu.ExitCode}: {await stderr}\n{log}");
        Assert.Contains("SFTEST init started", log);
        Assert.Contains($"SFTEST modules loaded={modules.Length} failed=0", log);
        Assert.Contains("pi is approximately 3.14159", log);
        Assert.Contains("SFTEST program exit=0", log);
        Assert.Contains("SFTEST done", log);
    }

    private async Task<string> ExtractModuleListAsync(GuestImage image)
    {
        var into = Path.Combine(_dir, "unpacked");
        Directory.CreateDirectory(into);
        var r = await CommandRun.RunAsync("sh", ["-c", $"cpio -i -d --quiet --no-absolute-filenames etc/snowflock/modules < '{image.InitramfsPath}'"],
            workingDirectory: into);
        Assert.True(r.ExitCode == 0, r.Err);
        var list = Path.Combine(into, "etc", "snowflock", "modules");
        Assert.Contains("/lib/modules/virtio_mmio.ko", await File.ReadAllLinesAsync(list));
        return list;
    }
}
