using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace Snowflock.Launcher.Internal.Hosts;

/// <summary>
/// How a host agent proves that it belongs to the job, in one place. The head makes a secret per
/// job and hands it to each agent on the launcher's stdin (ssh) or environment (srun, fork) —
/// never on a command line, which <c>ps</c> shows to every user. On connecting, the agent gets a
/// fresh challenge and answers HMAC-SHA256(secret, challenge): the secret itself never crosses
/// the network, and a recorded answer is worth nothing for the next connection.
/// </summary>
internal static class AgentHandshake
{
    public const string Magic = "snowflock-host-agent 1";

    /// <summary>The environment variable an agent started by srun or fork reads its secret from.</summary>
    public const string SecretVariable = "SFRUN_AGENT_SECRET";

    public const int ChallengeBytes = 32;

    /// <summary>This sfrun's version, as exact as the binary: agents must run the same one.</summary>
    public static string Version { get; } =
        typeof(AgentHandshake).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";

    public static string NewSecret() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    public static byte[] NewChallenge() => RandomNumberGenerator.GetBytes(ChallengeBytes);

    public static string Proof(string secret, ReadOnlySpan<byte> challenge) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), challenge));

    /// <summary>The agent's HELLO: who it is and its proof.</summary>
    public static byte[] Hello(string host, int? index, string proof) => Encoding.UTF8.GetBytes(
        $"{Magic}\nversion={Version}\nhost={host}\nindex={(index is { } i ? i.ToString(CultureInfo.InvariantCulture) : "")}\nproof={proof}\n");

    public sealed record HelloFields(string Version, string Host, int? Index, string Proof);

    /// <summary>Null when the payload is not an agent's HELLO at all.</summary>
    public static HelloFields? ParseHello(ReadOnlySpan<byte> payload)
    {
        var lines = Encoding.UTF8.GetString(payload).Split('\n');
        if (lines.Length == 0 || lines[0] != Magic)
            return null;
        var fields = lines.Skip(1).Where(l => l.Contains('=')).Select(l => l.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);
        return new HelloFields(fields.GetValueOrDefault("version", ""), fields.GetValueOrDefault("host", ""),
            int.TryParse(fields.GetValueOrDefault("index"), NumberStyles.None, CultureInfo.InvariantCulture, out var i) ? i : null,
            fields.GetValueOrDefault("proof", ""));
    }

    /// <summary>Constant-time check of an agent's proof.</summary>
    public static bool Verify(string secret, ReadOnlySpan<byte> challenge, string proof) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Proof(secret, challenge)), Encoding.ASCII.GetBytes(proof));
}
