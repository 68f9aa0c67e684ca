namespace Snowflock.Tests.Integration.Support;

/// <summary>Finds what a job left behind. Each test job carries a unique tag in its ranks'
/// environment (<c>-genv SFRUN_TEST_TAG tag</c>), so any process still holding it is a leak.</summary>
internal static class Leaks
{
    public static string NewTag() => "sfrun-test-" + Guid.NewGuid().ToString("N");

    public static string[] TagArgs(string tag) => ["-genv", "SFRUN_TEST_TAG", tag];

    /// <summary>Pids of live processes whose environment holds the tag.</summary>
    public static List<int> ProcessesWithTag(string tag)
    {
        var found = new List<int>();
        var needle = System.Text.Encoding.ASCII.GetBytes("SFRUN_TEST_TAG=" + tag);
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
                continue;
            try
            {
                var environ = File.ReadAllBytes(Path.Combine(dir, "environ"));
                if (environ.AsSpan().IndexOf(needle) >= 0)
                    found.Add(pid);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Process ended while we looked.
            }
        }
        return found;
    }

    /// <summary>Asserts that nothing of the tagged job is alive. Processes get a moment to be reaped
    /// by the kernel after sfrun exits; a leak is one that survives that.</summary>
    public static async Task AssertNoneAsync(string tag)
    {
        for (var i = 0; i < 20; i++)
        {
            if (ProcessesWithTag(tag).Count == 0)
                return;
            await Task.Delay(100);
        }
        var left = ProcessesWithTag(tag);
        Assert.Fail($"processes of the job are still alive after sfrun exited: {string.Join(", ", left.Select(Describe))}");
    }

    private static string Describe(int pid)
    {
        try
        {
            return $"{pid} ({File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim()})";
        }
        catch (IOException)
        {
            return pid.ToString();
        }
    }

    /// <summary>Ports in LISTEN state on this host (IPv4 and IPv6), from /proc/net/tcp*.</summary>
    public static HashSet<int> ListeningPorts()
    {
        var ports = new HashSet<int>();
        foreach (var file in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(file))
                continue;
            foreach (var line in File.ReadLines(file).Skip(1))
            {
                var cols = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (cols.Length > 3 && cols[3] == "0A")
                    ports.Add(Convert.ToInt32(cols[1].Split(':')[1], 16));
            }
        }
        return ports;
    }
}
