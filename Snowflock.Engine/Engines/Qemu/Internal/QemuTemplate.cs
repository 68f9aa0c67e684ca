using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using NLog;
using Snowflock.Engine.Internal;
using Snowflock.Engine.Guest;

namespace Snowflock.Engine.Engines.Qemu.Internal;

/// <summary>
/// The warm template of one guest image: its RAM file and its descriptor (device state saved with
/// x-ignore-shared, tens of KB). Booted once, then kept in the user's cache, so a job only pays
/// for cloning; every clone maps the RAM file private and read-only. The key covers everything
/// that must match between template and clone (image, accelerator, CPU model, RAM size, QEMU
/// version, machine shape); a template is built in a scratch folder and renamed into place, under
/// a lock, so concurrent jobs never see half of one.
/// </summary>
internal sealed record QemuTemplate(string Directory, int MemoryMiB)
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Qemu");

    public string MemoryFile => Path.Combine(Directory, "memory");
    public string StateFile => Path.Combine(Directory, "state");

    /// <summary>How long a template may take to boot to its agent's hello (TCG on a loaded 2-core
    /// machine is slow; a KVM boot takes well under a second).</summary>
    private static readonly TimeSpan BootWithin = TimeSpan.FromSeconds(180);

    public static string Root => Path.Combine(UserCache.Directory, "qemu", "templates");

    public static async Task<QemuTemplate> FindOrCreateAsync(QemuHost host, GuestImage image, int memoryMiB, string scratchDir, CancellationToken ct)
    {
        var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n",
            image.Hash, host.Accelerator, host.Cpu, memoryMiB, host.Version, QemuCommandLine.MachineShape, QemuCommandLine.KernelAppend(host)))))[..32];
        var template = new QemuTemplate(Path.Combine(Root, key), memoryMiB);
        if (template.IsComplete)
            return template;
        UserCache.CreateDirectory(Root);
        await using var held = await LockAsync(Path.Combine(Root, key + ".lock"), ct).ConfigureAwait(false);
        if (template.IsComplete)
            return template; // another job built it while we waited
        var sw = Stopwatch.StartNew();
        var building = new QemuTemplate(template.Directory + $".building-{Environment.ProcessId}", memoryMiB);
        SafeTree.Delete(building.Directory);
        UserCache.CreateDirectory(building.Directory);
        try
        {
            await building.BootAndSnapshotAsync(host, image, Path.Combine(scratchDir, "template"), ct).ConfigureAwait(false);
            // QEMU made the RAM file with the umask's mode: close it like the rest of the cache.
            SafeTree.MakePrivate(building.Directory);
            System.IO.Directory.Move(building.Directory, template.Directory);
        }
        catch (Exception e) when (UserCache.IsFault(e))
        {
            throw UserCache.Fault(building.Directory, e);
        }
        finally
        {
            SafeTree.Delete(building.Directory);
        }
        Log.ForInfoEvent().Message("qemu template {Key} built in {Ms} ms (descriptor {Bytes} bytes)", key, sw.ElapsedMilliseconds,
            new FileInfo(template.StateFile).Length).Property("EventName", "TemplateBuilt").Log();
        return template;
    }

    /// <summary>Removes a template whose clones do not come up, so that the next
    /// <see cref="FindOrCreateAsync"/> boots it again.</summary>
    public static void Discard(QemuTemplate template) => SafeTree.Delete(template.Directory);

    private bool IsComplete => File.Exists(StateFile) && File.Exists(MemoryFile);

    private async Task BootAndSnapshotAsync(QemuHost host, GuestImage image, string runDir, CancellationToken ct)
    {
        var paths = new VmPaths(runDir);
        var args = QemuCommandLine.For(host, "snowflock-template", paths, new VmMemory.Template(MemoryMiB, MemoryFile),
            QemuCommandLine.UnconnectedNetdev, QemuCommandLine.Mac(0), new VmBoot.Kernel(image.KernelPath, image.InitramfsPath, QemuCommandLine.KernelAppend(host)));
        await using var vm = await QemuVm.StartAsync(host, "template", paths, args, netns: null).ConfigureAwait(false);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(BootWithin);
        try
        {
            await vm.ConnectAsync(IPAddress.Loopback, bound.Token).ConfigureAwait(false);
            // The agent is now blocked waiting for its identity: the moment every clone resumes from.
            await vm.Agent!.PingAsync(TimeSpan.FromMilliseconds(200), bound.Token).ConfigureAwait(false);
            await vm.SnapshotAsync(StateFile, bound.Token).ConfigureAwait(false);
            await vm.QuitAsync(bound.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new CloneFailedException($"qemu engine: the template VM did not boot within {BootWithin.TotalSeconds:0} s: {vm.LastError()}");
        }
        finally
        {
            if (Directory.Length > 0)
                SafeTree.Delete(runDir);
        }
    }

    private static async Task<FileStream> LockAsync(string path, CancellationToken ct)
    {
        while (true)
        {
            try
            {
                // FileShare.None (which UserCache's files have) takes an exclusive advisory lock on
                // Unix; the file is 0600 like the rest of the cache, whatever the umask.
                return UserCache.CreateFile(path, FileMode.OpenOrCreate);
            }
            catch (IOException)
            {
                await Task.Delay(100, ct).ConfigureAwait(false);
            }
        }
    }
}
