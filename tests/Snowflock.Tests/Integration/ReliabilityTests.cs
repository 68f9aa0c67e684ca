using System.Text.RegularExpressions;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>Load, soak, strangers on the PMI port, awkward programs and terminals.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed partial class ReliabilityTests
{
    [GeneratedRegex(@"PMI server listening on [^ ]*:(\d+)")]
    private static partial Regex PmiPort();

    [Fact]
    public async Task Sixty_four_ranks_on_two_cores_all_report()
    {
        var tag = Leaks.NewTag();
        var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "64", Repo.Example("hello")]);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(Enumerable.Range(0, 64).Select(i => $"hello from rank {i} of 64").Order(StringComparer.Ordinal),
            r.OutLines.Order(StringComparer.Ordinal));
        await Leaks.AssertNoneAsync(tag);
    }

    /// <summary>1,000 back-to-back short jobs (bounded: the loop also stops after 5 minutes) leave
    /// no process behind, and every one of them succeeds.</summary>
    [Fact]
    public async Task A_thousand_short_jobs_in_a_row_all_succeed_and_leave_nothing()
    {
        var tag = Leaks.NewTag();
        var deadline = DateTime.UtcNow.AddMinutes(5);
        var done = 0;
        for (; done < 1000 && DateTime.UtcNow < deadline; done++)
        {
            var r = await CommandRun.SfrunAsync([.. Leaks.TagArgs(tag), "-np", "2", "/bin/true"]);
            Assert.True(r.ExitCode == 0, $"job {done}: exit {r.ExitCode}: {r.Err}");
        }
        Assert.Equal(1000, done);
        await Leaks.AssertNoneAsync(tag);
    }

    [Fact]
    public async Task A_stranger_on_the_PMI_port_is_refused_and_the_job_goes_on()
    {
        var tag = Leaks.NewTag();
        await using var run = CommandRun.Start(Repo.Sfrun, [.. Leaks.TagArgs(tag), "-v", "-np", "2", "/bin/sh", "-c",
            "echo ready; sleep 2; echo done $PMI_RANK"], watchLines: true);
        await run.WaitForLinesAsync("ready", 2, TimeSpan.FromSeconds(60));
        var port = await WaitForPmiPortAsync(run);

        // Same user, but not the rank's process: the kernel says who holds the socket.
        using var stranger = new System.Net.Sockets.TcpClient();
        await stranger.ConnectAsync(System.Net.IPAddress.Loopback, port);
        var stream = stranger.GetStream();
        await stream.WriteAsync("cmd=initack pmiid=0\n"u8.ToArray());
        var reply = new byte[256];
        var n = await stream.ReadAsync(reply).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, n);

        // Another user entirely (nobody), claiming the other rank.
        var other = await CommandRun.RunAsync("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
            "/usr/bin/python3", "-c",
            $"import socket; s=socket.create_connection(('127.0.0.1',{port})); s.sendall(b'cmd=initack pmiid=1\\n'); print(repr(s.recv(100)))"]);
        Assert.Equal("b''", other.Out.Trim());

        var r = await run.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["done 0", "done 1", "ready", "ready"], r.OutLines.Order(StringComparer.Ordinal));
        Assert.Contains("refused: it is not rank 0's process", r.Err);
        Assert.Contains("refused: it runs as uid 65534", r.Err);
    }

    private static async Task<int> WaitForPmiPortAsync(CommandRun run)
    {
        for (var i = 0; i < 100; i++)
        {
            if (PmiPort().Match(run.StderrSoFar) is { Success: true } m)
                return int.Parse(m.Groups[1].Value);
            await Task.Delay(100);
        }
        throw new TimeoutException("sfrun -v did not log its PMI port: " + run.StderrSoFar);
    }

    [Fact]
    public async Task Running_in_the_background_of_an_interactive_shell_never_stops_on_the_terminal()
    {
        // bash with job control in a pseudo-terminal: a background job that reads the terminal
        // is stopped by SIGTTIN (MPICH issue #1029). sfrun must not read it, so rank 0 sees EOF.
        var r = await CommandRun.RunAsync("/usr/bin/script", ["-qec",
            $"bash --norc -i -c 'set -m; {Repo.Sfrun} -np 2 /bin/cat & wait %1; echo sfrun-exit=$?'", "/dev/null"],
            bound: TimeSpan.FromSeconds(60));
        Assert.Contains("sfrun-exit=0", r.Out);
    }

    [Fact]
    public async Task A_program_whose_path_has_spaces_and_quotes_runs()
    {
        var dir = Directory.CreateTempSubdirectory("sftest-path-");
        try
        {
            var sub = Directory.CreateDirectory(Path.Combine(dir.FullName, "my \"quoted\" 'dir' ünï"));
            var program = Path.Combine(sub.FullName, "hello world");
            File.Copy(Repo.Example("hello"), program);
            File.SetUnixFileMode(program, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.UserWrite);
            var r = await CommandRun.SfrunAsync("-np", "2", program);
            Assert.True(r.ExitCode == 0, r.Err);
            Assert.Equal(["hello from rank 0 of 2", "hello from rank 1 of 2"], r.OutLines.Order(StringComparer.Ordinal));
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
