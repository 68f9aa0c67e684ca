using System.Globalization;
using System.Text;

namespace Snowflock.Launcher.Internal.Hosts;

/// <summary>A host's share of the job, as the JOB frame carries it: key=value lines, in one place
/// for both ends. The environment is the head's (hydra's proxies get it too): a warm master
/// started by the agent loads its libraries with the user's LD_LIBRARY_PATH, not sshd's.</summary>
internal sealed record AgentJob(string JobId, bool Warm, int Ranks, IReadOnlyList<string> Executables, IReadOnlyList<KeyValuePair<string, string>> Environment)
{
    public byte[] Encode()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"job={JobId}\nwarm={(Warm ? 1 : 0)}\nranks={Ranks}\n");
        foreach (var exe in Executables)
            text.Append("exe=").Append(exe).Append('\n');
        foreach (var (k, v) in Environment)
            if (!k.Contains('\n') && !v.Contains('\n'))
                text.Append("env=").Append(k).Append('=').Append(v).Append('\n');
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    public static AgentJob Decode(ReadOnlySpan<byte> payload)
    {
        string jobId = "";
        var warm = true;
        var ranks = 0;
        var exes = new List<string>();
        var env = new List<KeyValuePair<string, string>>();
        foreach (var line in Encoding.UTF8.GetString(payload).Split('\n'))
        {
            var eq = line.IndexOf('=');
            if (eq <= 0)
                continue;
            var (key, value) = (line[..eq], line[(eq + 1)..]);
            switch (key)
            {
                case "job": jobId = value; break;
                case "warm": warm = value == "1"; break;
                case "ranks": ranks = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "exe": exes.Add(value); break;
                case "env" when value.IndexOf('=') is var e and > 0: env.Add(new(value[..e], value[(e + 1)..])); break;
            }
        }
        return new AgentJob(jobId, warm, ranks, exes, env);
    }
}
