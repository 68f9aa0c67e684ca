using System.Diagnostics;

namespace Snowflock.Tests.Integration.Support;

/// <summary>
/// The nested Xen test host (scripts/xen-host): Debian's Xen 4.17 booted under QEMU/TCG, dom0
/// reachable with the real OpenSSH client as "xen-host" through <see cref="SshConfig"/>. One
/// boot serves every test of the <see cref="XenHostCollection"/>. If it cannot be built or booted
/// the tests fail, never skip. It is stopped when the tests end, and also (by the harness's
/// watchdog) if this test process dies first.
/// </summary>
public sealed class XenHost : IAsyncLifetime
{
    private static readonly string Script = Path.Combine(Repo.Root, "scripts", "xen-host");

    /// <summary>This instance's run folder: nothing else uses it, so parallel suites cannot collide.</summary>
    public string RunDir { get; } = Path.Combine(Path.GetTempPath(), "sf-xenhost-test-" + Guid.NewGuid().ToString("N")[..8]);

    public string BuildDir { get; private set; } = "";
    public string SshConfig => Path.Combine(RunDir, "ssh_config");

    /// <summary>The ssh destination <see cref="SshConfig"/> defines.</summary>
    public const string Destination = "xen-host";

    /// <summary>Seconds from QEMU's start to dom0 answering <c>xl list</c> over ssh.</summary>
    public double BootSeconds { get; private set; }

    /// <summary>Where the harness put the guests' kernel inside dom0.</summary>
    public string GuestKernel { get; private set; } = "";

    public string ProbeInitrd => Path.Combine(BuildDir, "probe-initrd.gz");

    private int _qemuPid;

    public async Task InitializeAsync()
    {
        BuildDir = (await HarnessAsync(TimeSpan.FromMinutes(15), "build")).Trim();
        await HarnessAsync(TimeSpan.FromMinutes(2), "start", "--owner-pid", Environment.ProcessId.ToString());
        _qemuPid = int.Parse(File.ReadAllText(Path.Combine(RunDir, "qemu.pid")).Trim());
        BootSeconds = double.Parse((await HarnessAsync(TimeSpan.FromMinutes(12), "wait", "600")).Trim(),
            System.Globalization.CultureInfo.InvariantCulture);
        GuestKernel = "/var/lib/snowflock/kernel/vmlinux-" + File.ReadAllText(Path.Combine(BuildDir, "kernel-version")).Trim();
    }

    /// <summary>Runs a shell command line in dom0.</summary>
    internal Task<CommandResult> ExecAsync(string command, TimeSpan? bound = null) =>
        CommandRun.RunAsync("ssh", ["-F", SshConfig, Destination, command], bound: bound ?? TimeSpan.FromMinutes(3));

    public async Task DisposeAsync()
    {
        await HarnessAsync(TimeSpan.FromMinutes(1), "stop");
        // The harness promises nothing is left: hold it to that here, where a failure is reported.
        if (_qemuPid > 0 && IsAlive(_qemuPid))
            throw new InvalidOperationException($"scripts/xen-host stop left QEMU (pid {_qemuPid}) running");
        if (Directory.Exists(RunDir))
            throw new InvalidOperationException($"scripts/xen-host stop left its run folder {RunDir}");
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private async Task<string> HarnessAsync(TimeSpan bound, params string[] args)
    {
        var r = await CommandRun.RunAsync(Script, args, env: new Dictionary<string, string> { ["SF_XEN_HOST_RUN"] = RunDir }, bound: bound);
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"scripts/xen-host {string.Join(' ', args)} failed ({r.ExitCode}): {r.Err}");
        return r.Out;
    }
}

/// <summary>Tests that share one nested Xen host; they run one after another (one host, 2 vCPUs).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class XenHostCollection : ICollectionFixture<XenHost>
{
    public const string Name = "xen-host";
}
