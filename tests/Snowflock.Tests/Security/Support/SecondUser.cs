using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Security.Support;

/// <summary>
/// An unprivileged second local user, the adversary of the security tests: made with
/// <c>useradd</c> when the fixture starts and removed with <c>userdel</c> when it ends, so a
/// test run leaves no account behind. Its commands run through <c>runuser</c>, with its own
/// uid, gid and no supplementary groups, in a clean environment with HOME set to its home. Needs
/// root, which CI has; a test class gets one with <c>IClassFixture&lt;SecondUser&gt;</c>.
/// </summary>
public sealed class SecondUser : IAsyncLifetime
{
    /// <summary>useradd allows 32 characters; a random suffix keeps parallel runs apart.</summary>
    public string Name { get; } = "sfatk" + Guid.NewGuid().ToString("N")[..10];

    public int Uid { get; private set; }
    public int Gid { get; private set; }
    public string Home => "/home/" + Name;

    public async Task InitializeAsync()
    {
        var r = await CommandRun.RunAsync("/usr/sbin/useradd", ["--create-home", "--shell", "/bin/sh", "--user-group", Name]);
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"useradd {Name} failed (the security tests need root): {r.Err}");
        Uid = int.Parse((await CommandRun.RunAsync("/usr/bin/id", ["-u", Name])).Out.Trim());
        Gid = int.Parse((await CommandRun.RunAsync("/usr/bin/id", ["-g", Name])).Out.Trim());
    }

    public async Task DisposeAsync()
    {
        // Its processes first: userdel refuses a user that still runs something.
        await CommandRun.RunAsync("/usr/bin/pkill", ["-KILL", "-u", Name]);
        await CommandRun.RunAsync("/usr/sbin/userdel", ["--remove", "--force", Name]);
    }

    /// <summary>Runs <paramref name="file"/> as this user and waits for it (bounded).</summary>
    internal Task<CommandResult> RunAsync(string file, IEnumerable<string> args, IDictionary<string, string>? env = null,
        byte[]? stdin = null, TimeSpan? bound = null) =>
        CommandRun.RunAsync("/usr/sbin/runuser", Command(file, args, env), stdin, workingDirectory: "/tmp", bound: bound);

    /// <summary>Starts <paramref name="file"/> as this user without waiting: an attack that runs
    /// alongside the job it attacks.</summary>
    internal CommandRun Start(string file, IEnumerable<string> args, IDictionary<string, string>? env = null) =>
        CommandRun.Start("/usr/sbin/runuser", Command(file, args, env), workingDirectory: "/tmp", watchLines: true);

    /// <summary>A python3 script run as this user: most attacks are a few lines of sockets.</summary>
    internal Task<CommandResult> PythonAsync(string script, IDictionary<string, string>? env = null, TimeSpan? bound = null) =>
        RunAsync("/usr/bin/python3", ["-c", script], env, bound: bound);

    internal CommandRun StartPython(string script, IDictionary<string, string>? env = null) =>
        Start("/usr/bin/python3", ["-c", script], env);

    private List<string> Command(string file, IEnumerable<string> args, IDictionary<string, string>? env)
    {
        var cmd = new List<string> { "-u", Name, "--", "/usr/bin/env", "-i", "HOME=" + Home, "USER=" + Name,
            "PATH=/usr/local/bin:/usr/bin:/bin", "TMPDIR=/tmp" };
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
            cmd.Add($"{k}={v}");
        cmd.Add(file);
        cmd.AddRange(args);
        return cmd;
    }
}
