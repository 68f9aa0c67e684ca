namespace Snowflock.Tests.Integration.Hosts.Support;

/// <summary>What examples/cpi prints that launchers must agree on.</summary>
internal static class Cpi
{
    /// <summary>The "pi is approximately …" line of <paramref name="output"/>; none fails the test, showing the output.</summary>
    public static string PiLine(string output) =>
        output.Split('\n').FirstOrDefault(l => l.StartsWith("pi is approximately", StringComparison.Ordinal))
        ?? throw new Xunit.Sdk.XunitException($"no pi line in: {output}");
}
