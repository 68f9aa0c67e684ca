using Snowflock.Cli;
using Xunit;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed class CommandLineTokenizerTests
{
    private static IReadOnlyList<CommandSection> Split(params string[] args) => CommandLineTokenizer.Split(args);

    private static string T(string canonical, params string[] values) => CommandLineTokenizer.Token(canonical, values);

    [Fact]
    public void Options_are_normalized_and_the_program_takes_everything_after_it()
    {
        var section = Assert.Single(Split("-np", "4", "./a", "x", "-y"));
        Assert.Equal([T("np", "4")], section.OptionTokens);
        Assert.Equal("./a", section.Program);
        Assert.Equal(["x", "-y"], section.ProgramArguments);
    }

    [Theory]
    [InlineData("-np", "4")]
    [InlineData("-n", "4")]
    [InlineData("-c", "4")]
    [InlineData("--np", "4")]
    [InlineData("--n", "4")]
    [InlineData("-np=4")]
    [InlineData("--np=4")]
    [InlineData("-n=4")]
    public void Every_spelling_of_the_rank_count_becomes_the_canonical_token(params string[] option)
    {
        var section = Assert.Single(Split([.. option, "./a"]));
        Assert.Equal([T("np", "4")], section.OptionTokens);
        Assert.Equal("./a", section.Program);
        Assert.Empty(section.ProgramArguments);
    }

    [Fact]
    public void Two_value_options_travel_as_one_guarded_token()
    {
        var section = Assert.Single(Split("-genv", "A", "B C", "-env", "D", "", "./a"));
        Assert.Equal([T("genv", "A", "B C"), T("env", "D", "")], section.OptionTokens);
    }

    [Fact]
    public void Values_may_start_with_a_dash()
    {
        var section = Assert.Single(Split("-wdir", "-odd", "-genv", "A", "-1", "./a"));
        Assert.Equal([T("wdir", "-odd"), T("genv", "A", "-1")], section.OptionTokens);
        Assert.Equal("./a", section.Program);
    }

    [Fact]
    public void Aliases_map_to_the_canonical_name()
    {
        var section = Assert.Single(Split("-l", "--prepend-rank", "-x", "A=1", "-wd", "/t", "-dir", "/u", "-v", "./a"));
        Assert.Equal(["--prepend-rank", "--prepend-rank", T("opt-x", "A=1"), T("wdir", "/t"), T("wdir", "/u"), "--verbose"], section.OptionTokens);
    }

    [Fact]
    public void Options_after_the_program_belong_to_the_program()
    {
        var section = Assert.Single(Split("-np", "2", "./a", "-np", "5", "--help", "-unknown"));
        Assert.Equal([T("np", "2")], section.OptionTokens);
        Assert.Equal(["-np", "5", "--help", "-unknown"], section.ProgramArguments);
    }

    [Fact]
    public void Double_dash_ends_the_options_so_a_program_may_start_with_a_dash()
    {
        var section = Assert.Single(Split("-np", "2", "--", "-prog", "arg"));
        Assert.Equal([T("np", "2")], section.OptionTokens);
        Assert.Equal("-prog", section.Program);
        Assert.Equal(["arg"], section.ProgramArguments);
    }

    [Fact]
    public void A_colon_separates_MPMD_blocks()
    {
        var sections = Split("-np", "1", "./a", ":", "-np", "3", "./b", "arg");
        Assert.Equal(2, sections.Count);
        Assert.Equal([T("np", "1")], sections[0].OptionTokens);
        Assert.Equal("./a", sections[0].Program);
        Assert.Empty(sections[0].ProgramArguments);
        Assert.Equal([T("np", "3")], sections[1].OptionTokens);
        Assert.Equal("./b", sections[1].Program);
        Assert.Equal(["arg"], sections[1].ProgramArguments);
    }

    [Fact]
    public void Options_alone_make_a_section_without_a_program()
    {
        var section = Assert.Single(Split("--help"));
        Assert.Equal(["--help"], section.OptionTokens);
        Assert.Null(section.Program);
        Assert.Null(Assert.Single(Split()).Program);
    }

    [Theory]
    [InlineData("-bogus", "./a")]
    [InlineData("--bogus", "./a")]
    [InlineData("-Np", "4", "./a")]
    [InlineData("-NP", "4", "./a")]
    public void Unknown_options_are_refused(params string[] args)
    {
        var e = Assert.Throws<UsageException>(() => CommandLineTokenizer.Split(args));
        Assert.Contains("unknown option", e.Message);
        Assert.Contains(args[0], e.Message);
    }

    [Theory]
    [InlineData("-np")]
    [InlineData("-genv", "A")]
    [InlineData("-genv")]
    [InlineData("-wdir")]
    public void An_option_missing_its_value_is_refused(params string[] args)
    {
        var e = Assert.Throws<UsageException>(() => CommandLineTokenizer.Split(args));
        Assert.Contains(args[0], e.Message);
    }

    [Fact]
    public void A_flag_with_a_value_is_refused()
    {
        var e = Assert.Throws<UsageException>(() => CommandLineTokenizer.Split(["-l=1", "./a"]));
        Assert.Contains("no value", e.Message);
    }

    [Fact]
    public void A_trailing_colon_is_refused()
    {
        var e = Assert.Throws<UsageException>(() => CommandLineTokenizer.Split(["-np", "1", "./a", ":"]));
        Assert.Contains(":", e.Message);
    }
}
