using Snowflock.Engine.Internal;
using Snowflock.Tests.Integration.Support;
using Snowflock.Tests.Security.Support;

namespace Snowflock.Tests.Security;

/// <summary>
/// Issue 13, items 2 and 3: another local user attacks the folders root's sfrun keeps its sockets
/// in, to hijack the warm master's or the clone agent's socket (code as root) or to make a sweep of
/// dead jobs' folders delete root's files through a swapped-in symlink.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Area", "security")]
[Collection(SerialCollection.Name)]
public sealed class FolderAttackTests(SecondUser attacker) : IClassFixture<SecondUser>
{
    /// <summary>Squats /tmp/sfrun-UID (older sfruns removed it after each job), renames each job
    /// folder it can away, and puts its own socket where root's was, reporting every connection.</summary>
    private const string Hijack = """
        import os, socket, struct, sys, threading, time
        uid, seconds = int(sys.argv[1]), float(sys.argv[2])
        parents = [f"/tmp/sfrun-{uid}", f"/tmp/snowflock-{uid}"]
        def serve(s):
            s.settimeout(seconds)
            try:
                c, _ = s.accept()
                pid, u, g = struct.unpack("3i", c.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
                print(f"CONNECTED pid {pid} uid {u}", flush=True)
            except OSError:
                pass
        seen = set()
        deadline = time.time() + seconds
        print("ready", flush=True)
        while time.time() < deadline:
            for p in parents:
                try:
                    if p.startswith("/tmp/sfrun-") and not os.path.lexists(p):
                        os.mkdir(p, 0o700)
                    names = os.listdir(p)
                except OSError:
                    continue
                for name in names:
                    job = os.path.join(p, name)
                    if name.startswith("atk-") or job in seen:
                        continue
                    try:
                        os.rename(job, os.path.join(p, "atk-" + name))
                        os.mkdir(job, 0o777); os.chmod(job, 0o777)
                        seen.add(job)
                        print(f"SWAPPED {job}", flush=True)
                    except OSError:
                        continue
                for job in list(seen):
                    for sock in ("m0.sock", "agent.sock"):
                        path = os.path.join(job, sock)
                        try:
                            if os.lstat(path).st_uid != os.getuid():
                                os.unlink(path)
                                s = socket.socket(socket.AF_UNIX); s.bind(path); os.chmod(path, 0o777); s.listen(8)
                                threading.Thread(target=serve, args=(s,), daemon=True).start()
                        except OSError:
                            pass
            time.sleep(0.0002)
        print("done", flush=True)
        """;

    [Fact]
    public async Task Swapping_the_job_socket_folder_never_gets_a_connection_from_roots_warm_master()
    {
        // One job first: the per-user folder exists (made by root) before the attacker starts.
        Assert.Equal(0, (await CommandRun.SfrunAsync("-np", "1", Repo.Example("hello"))).ExitCode);
        await using var attack = attacker.StartPython(Hijack.Replace("sys.argv[1]", "'0'").Replace("sys.argv[2]", "'8'"));
        await attack.WaitForLinesAsync("ready", 1, TimeSpan.FromSeconds(20));
        try
        {
            for (var i = 0; i < 12; i++)
            {
                var job = await CommandRun.SfrunAsync("-np", "2", Repo.Example("hello"));
                Assert.True(job.ExitCode == 0, job.Err);
                Assert.Equal(["hello from rank 0 of 2", "hello from rank 1 of 2"], job.OutLines.Order(StringComparer.Ordinal));
            }
            var result = await attack.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Contains("done", result.Out);
            Assert.DoesNotContain("CONNECTED", result.Out);
        }
        finally
        {
            SafeTree.Delete("/tmp/sfrun-0");
        }
    }

    /// <summary>Listens on a socket of its own and reports the first connection and what it was sent.</summary>
    private const string Listen = """
        import os, socket, struct, sys
        path = sys.argv[1]
        s = socket.socket(socket.AF_UNIX); s.bind(path); os.chmod(path, 0o777); s.listen(8); s.settimeout(20)
        print("ready", flush=True)
        try:
            c, _ = s.accept(); c.settimeout(3)
            data = c.recv(4096)
            print(f"RECEIVED {len(data)}", flush=True)
        except OSError as e:
            print(f"NONE {e}", flush=True)
        """;

    [Fact]
    public async Task Libsfwarm_sends_nothing_to_a_socket_another_user_serves()
    {
        var dir = Path.Combine("/tmp", "sfatk-warm-" + Guid.NewGuid().ToString("N")[..8]);
        var socket = Path.Combine(dir, "m0.sock");
        var made = await attacker.RunAsync("/bin/mkdir", ["-m", "0777", dir]);
        Assert.Equal(0, made.ExitCode);
        try
        {
            await using var listener = attacker.StartPython(Listen.Replace("sys.argv[1]", $"'{socket}'"));
            await listener.WaitForLinesAsync("ready", 1, TimeSpan.FromSeconds(20));
            // Root's program, preloaded as sfrun starts a master, told to connect to the attacker's socket.
            var master = await CommandRun.RunAsync(Repo.Example("hello"), [], env: new Dictionary<string, string>
            {
                ["LD_PRELOAD"] = Path.Combine(Repo.Root, "native", "build", "libsfwarm.so"),
                ["SFWARM_SOCKET"] = socket,
            }, bound: TimeSpan.FromSeconds(30));
            Assert.Contains("refusing it", master.Err);
            var seen = await listener.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Contains("RECEIVED 0", seen.Out); // connected, then closed without a hello
        }
        finally
        {
            SafeTree.Delete(dir);
        }
    }

    [Fact]
    public async Task Libsf_asks_no_tickets_of_an_agent_another_user_serves()
    {
        var dir = Path.Combine("/tmp", "sfatk-agent-" + Guid.NewGuid().ToString("N")[..8]);
        var socket = Path.Combine(dir, "agent.sock");
        Assert.Equal(0, (await attacker.RunAsync("/bin/mkdir", ["-m", "0777", dir])).ExitCode);
        try
        {
            await using var listener = attacker.StartPython(Listen.Replace("sys.argv[1]", $"'{socket}'"));
            await listener.WaitForLinesAsync("ready", 1, TimeSpan.FromSeconds(20));
            var probe = await CommandRun.RunAsync(Repo.TestProgram("sf_probe"), ["ids", "2"],
                env: new Dictionary<string, string> { ["SF_AGENT"] = socket }, bound: TimeSpan.FromSeconds(30));
            Assert.Contains("refusing it", probe.Out + probe.Err);
            var seen = await listener.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Contains("RECEIVED 0", seen.Out); // no hello, no ticket request
        }
        finally
        {
            SafeTree.Delete(dir);
        }
    }

    /// <summary>Makes sweep bait: a folder named like a dead job's (pid 1 is alive, so an unused
    /// pid), and swaps it with a symlink to the victim by renameat2(RENAME_EXCHANGE) in a loop.</summary>
    private const string Swap = """
        import ctypes, os, sys, time
        libc = ctypes.CDLL(None, use_errno=True)
        parent, victim, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
        os.makedirs(parent, exist_ok=True)
        bait = os.path.join(parent, sys.argv[4]); other = bait + "-swap"
        os.mkdir(bait); open(os.path.join(bait, "x"), "w").close()
        os.symlink(victim, other)
        print("ready", flush=True)
        deadline = time.time() + seconds
        while time.time() < deadline:
            libc.renameat2(-100, bait.encode(), -100, other.encode(), 2)
        print("done", flush=True)
        """;

    [Fact]
    public async Task Sweeps_of_dead_jobs_delete_nothing_outside_the_job_through_swapped_symlinks()
    {
        var victim = Directory.CreateTempSubdirectory("sftest-victim-").FullName;
        File.SetUnixFileMode(victim, (UnixFileMode)0x1ED);
        for (var i = 0; i < 100; i++)
            File.WriteAllText(Path.Combine(victim, $"f{i}"), "root's");
        var deadPid = Enumerable.Range(100_000, 1000).First(p => !Directory.Exists($"/proc/{p}"));
        var baits = new[]
        {
            ("/tmp/sfrun-0", $"sf-{deadPid}-1"),                // AgentDirectory's old parent
            ("/tmp", $"sfrun-qemu-{deadPid}-1"),                 // QemuEngine's old run folders
            ("/tmp/snowflock-0", $"sf-{deadPid}-1"),             // the per-user folder (root's: this one must fail to be made)
        };
        // The per-user folder made by root first: a bait in it can then not even be made.
        Assert.Equal(0, (await CommandRun.SfrunAsync("-np", "1", Repo.Example("hello"))).ExitCode);
        var attacks = new List<CommandRun>();
        try
        {
            foreach (var (parent, name) in baits)
            {
                var a = attacker.StartPython(Swap.Replace("sys.argv[1]", $"'{parent}'").Replace("sys.argv[2]", $"'{victim}'")
                    .Replace("sys.argv[3]", "'25'").Replace("sys.argv[4]", $"'{name}'"));
                attacks.Add(a);
            }
            await Task.Delay(1000);
            for (var i = 0; i < 5; i++)
            {
                var job = await CommandRun.SfrunAsync("-np", "1", Repo.Example("hello"));
                Assert.True(job.ExitCode == 0, job.Err);
            }
            var vm = await CommandRun.RunAsync(Repo.Sfrun, ["--engine", "qemu", "-np", "1", Repo.Example("hello")], bound: TimeSpan.FromSeconds(300));
            Assert.True(vm.ExitCode == 0, vm.Err);
            Assert.Equal(["hello from rank 0 of 1"], vm.OutLines);
            Assert.Equal(100, Directory.GetFiles(victim).Length);
        }
        finally
        {
            foreach (var a in attacks)
                await a.DisposeAsync();
            foreach (var (parent, name) in baits)
                foreach (var p in new[] { Path.Combine(parent, name), Path.Combine(parent, name + "-swap") })
                    SafeTree.Delete(p);
            SafeTree.Delete("/tmp/sfrun-0");
            SafeTree.Delete(victim);
        }
    }
}
