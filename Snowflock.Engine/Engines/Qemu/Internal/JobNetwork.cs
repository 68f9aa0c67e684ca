using System.Diagnostics;
using System.Globalization;
using NLog;
using Snowflock.Engine.Internal;
using SysProcess = System.Diagnostics.Process;

namespace Snowflock.Engine.Engines.Qemu.Internal;

/// <summary>
/// The network between a job's VMs: a bridge and one tap per VM inside a network namespace that
/// belongs to the job alone. The namespace is anonymous, held by one sleeping process started
/// through sfwarm-exec: when that process and the job's QEMUs are gone — by teardown, or by the
/// kernel after SIGKILL of sfrun — the namespace, bridge and taps vanish with them. Nothing is
/// named on the host, so nothing can leak there.
/// </summary>
internal sealed class JobNetwork : IAsyncDisposable
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Qemu");
    private readonly SysProcess _holder;

    private JobNetwork(SysProcess holder) => _holder = holder;

    /// <summary>The namespace, as a path QEMU can enter (nsenter --net=...).</summary>
    public string Namespace => $"/proc/{_holder.Id}/ns/net";

    public static string Tap(int vm) => "sftap" + vm.ToString(CultureInfo.InvariantCulture);

    /// <summary>The -netdev of VM <paramref name="vm"/>. vnet_hdr=off: virtio-net saves whether its
    /// backend had vnet headers, and the template's backend (user) had none, so a clone's tap with
    /// them refuses the descriptor ("load of migration failed").</summary>
    public static string Netdev(int vm) => $"tap,ifname={Tap(vm)},script=no,downscript=no,vnet_hdr=off";

    /// <summary>Address of VM <paramref name="vm"/> on the job's private 10.77.0.0/16.</summary>
    public static string Address(int vm) => $"10.77.{(vm + 2) / 256}.{(vm + 2) % 256}";

    public static async Task<JobNetwork> CreateAsync(int vms, CancellationToken ct)
    {
        if (Environment.UserName != "root" && !HasNetAdmin())
            throw new CloneFailedException("qemu engine: connecting several VMs needs a network namespace with taps, which needs root "
                + "(CAP_NET_ADMIN); run sfrun as root, or run one VM (-np 1, or -ppn with all ranks in one VM)");
        var holder = await ColdStarter.StartAsync(Quiet(ColdStarter.StartInfo("/usr/bin/unshare", ["--net", "--", "/bin/sleep", "infinity"])))
            .ConfigureAwait(false) ?? throw new CloneFailedException("qemu engine: cannot start the job's network namespace");
        var network = new JobNetwork(holder);
        try
        {
            var own = ReadLink("/proc/self/ns/net");
            while (ReadLink(network.Namespace) is var ns && (ns is null || ns == own))
            {
                if (holder.HasExited)
                    throw new CloneFailedException($"qemu engine: cannot create the job's network namespace (unshare exited with {holder.ExitCode})");
                await Task.Delay(2, ct).ConfigureAwait(false);
            }
            var script = new System.Text.StringBuilder("link set lo up\nlink add sfbr0 type bridge\nlink set sfbr0 up\n");
            for (var vm = 0; vm < vms; vm++)
                script.Append(CultureInfo.InvariantCulture, $"tuntap add dev {Tap(vm)} mode tap\nlink set {Tap(vm)} master sfbr0 up\n");
            var ip = Quiet(new ProcessStartInfo("/usr/bin/nsenter", [$"--net={network.Namespace}", "--", "ip", "-batch", "-"]));
            using var p = SysProcess.Start(ip)!;
            await p.StandardInput.WriteAsync(script.ToString()).ConfigureAwait(false);
            p.StandardInput.Close();
            var err = await p.StandardError.ReadToEndAsync(ct).ConfigureAwait(false);
            await p.WaitForExitAsync(ct).ConfigureAwait(false);
            if (p.ExitCode != 0)
                throw new CloneFailedException($"qemu engine: cannot set up the job's bridge and taps: {err.Trim()}");
            Log.ForDebugEvent().Message("job network: namespace of pid {Pid}, bridge sfbr0, {Count} taps", holder.Id, vms)
                .Property("EventName", "JobNetworkUp").Log();
            return network;
        }
        catch
        {
            await network.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static ProcessStartInfo Quiet(ProcessStartInfo psi)
    {
        psi.RedirectStandardInput = true;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.UseShellExecute = false;
        return psi;
    }

    private static bool HasNetAdmin()
    {
        // CapEff bit 12 is CAP_NET_ADMIN.
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("CapEff:", StringComparison.Ordinal))
                return (ulong.Parse(line[7..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture) & (1UL << 12)) != 0;
        return false;
    }

    private static string? ReadLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_holder.HasExited)
                _holder.Kill();
            await _holder.WaitForExitAsync().ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
        }
        _holder.Dispose();
    }
}
