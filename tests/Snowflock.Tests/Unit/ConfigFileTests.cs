using Snowflock.Cli;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed class ConfigFileTests
{
    [Fact]
    public void Lines_split_into_words_like_a_shell()
    {
        Assert.Equal(["-n", "2", "./a", "x y", "it's", "b\\c", "d e"],
            ConfigFile.Words("  -n 2 ./a \"x y\" it\\'s 'b\\c' d\\ e  # trailing comment", "f", 1));
        Assert.Empty(ConfigFile.Words("   # only a comment", "f", 1));
    }

    [Fact]
    public void An_unterminated_quote_names_the_line() =>
        Assert.Contains("line 3", Assert.Throws<UsageException>(() => ConfigFile.Words("./a \"oops", "f", 3)).Message);

    [Fact]
    public void A_config_file_becomes_MPMD_blocks()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(file, ["# master and workers", "-n 1 ./master --verbose", "", "-n 3 ./worker 'a b'"]);
            var sections = CommandLineTokenizer.Split(["-l", "-configfile", file]);
            Assert.Equal(2, sections.Count);
            Assert.Equal("./master", sections[0].Program);
            Assert.Equal(["--verbose"], sections[0].ProgramArguments);
            Assert.Equal("./worker", sections[1].Program);
            Assert.Equal(["a b"], sections[1].ProgramArguments);
            Assert.Contains("--prepend-rank", sections[0].OptionTokens);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void A_missing_config_file_is_a_usage_error() =>
        Assert.Contains("-configfile /no/such/file", Assert.Throws<UsageException>(() => CommandLineTokenizer.Split(["-configfile", "/no/such/file"])).Message);
}
