using System.Diagnostics;
using Snowflock.Engine.Engines.Qemu.Internal;
using Snowflock.Tests.Integration.Support;
using Xunit;

namespace Snowflock.Tests.Integration;

/// <summary>The QMP client driving the real qemu-system-x86_64 (TCG, microvm, paused with -S) through
/// the template-and-clone sequence of the qemu engine: snapshot with x-ignore-shared, then a second
/// QEMU that takes the snapshot with migrate-incoming and runs on.</summary>
[Trait("Area", "integration")]
[Trait("Engine", "qemu")]
public sealed class QmpClientTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sftest-qmp-" + Guid.NewGuid().ToString("N"));
    private readonly string _memory = "/dev/shm/sftest-qmp-" + Guid.NewGuid().ToString("N") + ".mem";
    private readonly List<Process> _qemus = [];
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    private string State => Path.Combine(_dir, "state");

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var q in _qemus)
        {
            if (!q.HasExited)
            {
                q.Kill();
                await q.WaitForExitAsync();
            }
            q.Dispose();
        }
        File.Delete(_memory);
        Directory.Delete(_dir, recursive: true);
    }

    private Process StartQemu(string socket, bool share, bool incoming)
    {
        var psi = new ProcessStartInfo(Qemu.Binary)
        {
            UseShellExecute = false, RedirectStandardInput = true, RedirectStandardError = true, RedirectStandardOutput = true,
        };
        foreach (var a in new[]
                 {
                     "-M", "microvm,memory-backend=mem", "-accel", "tcg", "-S", "-m", "64M",
                     "-object", $"memory-backend-file,id=mem,size=64M,mem-path={_memory},share={(share ? "on" : "off")}",
                     "-display", "none", "-nodefaults", "-no-user-config", "-qmp", $"unix:{socket},server=on,wait=off",
                 })
            psi.ArgumentList.Add(a);
        if (incoming)
        {
            psi.ArgumentList.Add("-incoming");
            psi.ArgumentList.Add("defer");
        }
        var process = Process.Start(psi)!;
        _qemus.Add(process);
        return process;
    }

    private static async Task<QmpEvent> NextEvent(QmpClient qmp, string name)
    {
        using var cts = new CancellationTokenSource(Bound);
        return await qmp.WaitForEventAsync(name, cts.Token);
    }

    [Fact]
    public async Task Template_snapshot_and_clone_through_QMP()
    {
        using var cts = new CancellationTokenSource(Bound);
        var ct = cts.Token;

        // The client is started before QEMU: it waits for the socket to appear.
        var templateSocket = Path.Combine(_dir, "template.qmp");
        var connecting = QmpClient.ConnectAsync(templateSocket, ct);
        await Task.Delay(200, ct);
        Assert.False(connecting.IsCompleted);
        var template = StartQemu(templateSocket, share: true, incoming: false);
        await using (var qmp = await connecting)
        {
            Assert.True(qmp.Greeting.Version >= new Version(7, 0));
            Assert.Equal(("prelaunch", false), await qmp.QueryStatusAsync(ct));
            await qmp.ContAsync(ct);
            await NextEvent(qmp, "RESUME");
            Assert.Equal(("running", true), await qmp.QueryStatusAsync(ct));
            await qmp.StopAsync(ct);
            await NextEvent(qmp, "STOP");

            var refused = await Assert.ThrowsAsync<QmpCommandException>(() => qmp.ExecuteAsync("no-such-command", null, ct));
            Assert.Equal("CommandNotFound", refused.ErrorClass);
            var missingArgument = await Assert.ThrowsAsync<QmpCommandException>(() => qmp.ExecuteAsync("migrate", null, ct));
            Assert.Equal("GenericError", missingArgument.ErrorClass);

            await qmp.MigrateSetCapabilitiesAsync(["x-ignore-shared", "events"], ct);
            await qmp.MigrateAsync($"exec:cat > {State}", ct);
            Assert.Equal("completed", await qmp.WaitForMigrationAsync(TimeSpan.FromMilliseconds(5), ct));
            var statuses = new List<string>();
            while (statuses.LastOrDefault() != "completed")
                statuses.Add((await NextEvent(qmp, "MIGRATION")).Data.GetProperty("status").GetString()!);
            Assert.Equal("setup", statuses[0]);
            await qmp.QuitAsync(ct);
            await template.WaitForExitAsync(ct);
            await Assert.ThrowsAsync<QmpConnectionClosedException>(() => qmp.QueryStatusAsync(ct));
        }
        // RAM lives in the shared file: the snapshot holds only device state.
        var stateBytes = new FileInfo(State).Length;
        Assert.InRange(stateBytes, 1, 1 << 20);

        var cloneSocket = Path.Combine(_dir, "clone.qmp");
        var clone = StartQemu(cloneSocket, share: false, incoming: true);
        await using (var qmp = await QmpClient.ConnectAsync(cloneSocket, ct))
        {
            Assert.Equal(("inmigrate", false), await qmp.QueryStatusAsync(ct));
            Assert.Equal("none", (await qmp.QueryMigrateAsync(ct)).Status);
            await qmp.MigrateSetCapabilitiesAsync(["x-ignore-shared"], ct);
            await qmp.MigrateIncomingAsync($"exec:cat {State}", ct);
            Assert.Equal("completed", await qmp.WaitForMigrationAsync(TimeSpan.FromMilliseconds(5), ct));
            Assert.Equal(("paused", false), await qmp.QueryStatusAsync(ct));
            await qmp.ContAsync(ct);
            Assert.Equal(("running", true), await qmp.QueryStatusAsync(ct));
            await qmp.QuitAsync(ct);
            await clone.WaitForExitAsync(ct);
            // The event stream ends with the connection.
            await foreach (var _ in qmp.Events.ReadAllAsync(ct))
            {
            }
        }
        Assert.All(_qemus, q => Assert.Equal(0, q.ExitCode));
    }

    [Fact]
    public async Task A_killed_QEMU_fails_commands_instead_of_hanging()
    {
        using var cts = new CancellationTokenSource(Bound);
        var socket = Path.Combine(_dir, "kill.qmp");
        var qemu = StartQemu(socket, share: true, incoming: false);
        await using var qmp = await QmpClient.ConnectAsync(socket, cts.Token);
        qemu.Kill();
        await qemu.WaitForExitAsync(cts.Token);
        var e = await Assert.ThrowsAsync<QmpConnectionClosedException>(() => qmp.QueryStatusAsync(cts.Token));
        Assert.Contains("query-status", e.Message);
    }

    [Fact]
    public async Task Connecting_to_a_socket_that_never_appears_ends_with_the_token()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => QmpClient.ConnectAsync(Path.Combine(_dir, "never.qmp"), cts.Token));
    }
}
