using System.Diagnostics;
using Snowflock.Engine.Engines.Xen.Internal;

namespace Snowflock.Tests.Unit.Xen;

/// <summary>The command line a remote dom0 gets through ssh: quoting checked against a real /bin/sh.</summary>
[Trait("Area", "unit")]
public sealed class Dom0ShellTests
{
    public static TheoryData<string[]> Words => new()
    {
        new[] { "xl", "list" },
        new[] { "xenstore-write", "/local/domain/3/data/snowflock/pmi", "10.0.2.2:4000" },
        new[] { "a b", "", "it's", "$HOME", "`id`", "\"q\"", "semi;colon", "back\\slash", "new\nline", "*", "-n" },
    };

    [Theory]
    [MemberData(nameof(Words))]
    public void Quoted_words_reach_the_remote_shell_unchanged(string[] words)
    {
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("for w in " + Dom0Shell.Quote(words) + "; do printf '%s\\0' \"$w\"; done");
        using var sh = Process.Start(psi)!;
        var output = sh.StandardOutput.ReadToEnd();
        sh.WaitForExit();
        Assert.Equal(words, output.Split('\0')[..^1]);
    }

    [Fact]
    public void Ssh_never_prompts_and_the_destination_cannot_be_an_option()
    {
        var args = Dom0Shell.SshArguments("-oProxyCommand=x", "/tmp/cfg", ["xl", "list"]);
        Assert.Contains("BatchMode=yes", args);
        var dashes = args.ToList().IndexOf("--");
        Assert.True(dashes > 0);
        Assert.Equal("-oProxyCommand=x", args[dashes + 1]);
        Assert.Equal("xl list", args[^1]);
        Assert.Equal("/tmp/cfg", args[args.ToList().IndexOf("-F") + 1]);
    }
}
