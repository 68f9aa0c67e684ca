using System.Text.Json;

namespace Snowflock.Tests.Integration.Support;

/// <summary>One scripted session of an interactive bash in a pseudo-terminal the test allocates
/// (python3's pty module): what a user at a terminal does — type a command, press Ctrl-C (0x03) or
/// Ctrl-Z (0x1a), type <c>bg</c> — and what the terminal showed.</summary>
/// <param name="Ok">Every expected pattern appeared within its bound.</param>
/// <param name="Failed">The first step whose pattern did not appear, or null.</param>
/// <param name="Seconds">How long each expect step waited, in order.</param>
internal sealed record PtyResult(bool Ok, string? Failed, IReadOnlyList<double> Seconds, string Transcript);

internal static class Pty
{
    /// <summary>Steps: <c>send:TEXT</c> (Python escapes: <c>\x03</c> is Ctrl-C), <c>expect:REGEX@SECONDS</c>
    /// (searched from the end of the previous match), <c>sleep:SECONDS</c>. bash starts with every
    /// signal at its default (the test host ignores SIGPIPE, which a child would inherit) and with
    /// job control, as a login terminal's.</summary>
    public static async Task<PtyResult> RunAsync(params string[] steps)
    {
        var r = await CommandRun.RunAsync("/usr/bin/python3", ["-c", Driver, .. steps], bound: TimeSpan.FromSeconds(90));
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"the pty driver failed ({r.ExitCode}): {r.Err}");
        using var json = JsonDocument.Parse(r.Out);
        var root = json.RootElement;
        return new PtyResult(root.GetProperty("ok").GetBoolean(), root.GetProperty("failed").GetString(),
            root.GetProperty("times").EnumerateArray().Select(e => e.GetDouble()).ToList(), root.GetProperty("transcript").GetString()!);
    }

    /// <summary>Quotes a path for the bash command lines typed into the terminal.</summary>
    public static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";

    private const string Driver = """
        import json, os, pty, re, select, sys, time
        steps = sys.argv[1:]
        pid, fd = pty.fork()
        if pid == 0:
            os.environ.update(PS1="$ ", PS2="", TERM="dumb", HISTFILE="/dev/null")
            os.execvp("env", ["env", "--default-signal", "bash", "--norc", "--noprofile", "-i"])
        buf = b""
        def pump(until):
            global buf
            left = until - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    buf += os.read(fd, 65536)
                except OSError:
                    time.sleep(left)
        result = {"ok": True, "times": [], "failed": None}
        mark = 0
        for step in steps:
            kind, _, arg = step.partition(":")
            if kind == "send":
                os.write(fd, arg.encode().decode("unicode_escape").encode("latin-1"))
            elif kind == "sleep":
                end = time.monotonic() + float(arg)
                while time.monotonic() < end:
                    pump(end)
            elif kind == "expect":
                pattern, bound = arg.rsplit("@", 1) if "@" in arg else (arg, "30")
                rx = re.compile(pattern.encode())
                t0 = time.monotonic()
                end = t0 + float(bound)
                while not rx.search(buf, mark) and time.monotonic() < end:
                    pump(end)
                m = rx.search(buf, mark)
                if not m:
                    result["ok"] = False
                    result["failed"] = step
                    break
                mark = m.end()
                result["times"].append(round(time.monotonic() - t0, 3))
        try:
            os.write(fd, b"\x03\x03\nkill -9 %1 %2 2>/dev/null; exit 0\n")
            end = time.monotonic() + 1
            while time.monotonic() < end:
                pump(end)
        except OSError:
            pass
        try:
            os.kill(pid, 9)
        except OSError:
            pass
        os.waitpid(pid, 0)
        result["transcript"] = buf.decode("utf-8", "replace")[-6000:]
        print(json.dumps(result))
        """;
}
