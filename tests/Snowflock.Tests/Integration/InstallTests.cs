using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>scripts/install puts a working sfrun and its man page under a prefix.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class InstallTests
{
    [Fact]
    public async Task Install_puts_sfrun_and_its_man_page_under_the_prefix()
    {
        var prefix = Directory.CreateTempSubdirectory("sftest-prefix-");
        try
        {
            var install = await CommandRun.RunAsync(Path.Combine(Repo.Root, "scripts", "install"), [prefix.FullName],
                env: new Dictionary<string, string> { ["SFRUN_SKIP_SETUP"] = "1" });
            Assert.True(install.ExitCode == 0, install.Err);
            var sfrun = Path.Combine(prefix.FullName, "bin", "sfrun");
            var r = await CommandRun.RunAsync(sfrun, ["-np", "3", Repo.Example("hello")], workingDirectory: "/");
            Assert.True(r.ExitCode == 0, r.Err);
            Assert.Equal(3, r.OutLines.Length);

            var man = await CommandRun.RunAsync("/usr/bin/groff", ["-man", "-Tutf8", "-ww", "-P-cbou",
                Path.Combine(prefix.FullName, "share", "man", "man1", "sfrun.1")]);
            Assert.Equal("", man.Err);
            foreach (var option in new[] { "-np", "-genv", "-hosts", "-hostfile", "-ppn", "-configfile", "-outfile-pattern", "-print-all-exitcodes" })
                Assert.Contains(option, man.Out);
            Assert.Contains("EXIT STATUS", man.Out);
        }
        finally
        {
            prefix.Delete(true);
        }
    }
}
