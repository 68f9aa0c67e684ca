using Snowflock.Cli;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary><c>--no-warm</c> turns warm fork off for the job; it is on by default.</summary>
[Trait("Area", "unit")]
public sealed class NoWarmOptionTests
{
    private static Snowflock.Launcher.JobSpec Job(params string[] args) => SfrunCommandLine.Parse(args, _ => null).Job!;

    [Fact]
    public void Warm_fork_is_on_by_default() => Assert.True(Job("-np", "2", "./a").Warm);

    [Theory]
    [InlineData("--no-warm")]
    [InlineData("-no-warm")]
    public void No_warm_turns_it_off(string flag) => Assert.False(Job(flag, "-np", "2", "./a").Warm);

    [Fact]
    public void No_warm_applies_to_every_block_of_an_MPMD_job() =>
        Assert.False(Job("-np", "1", "./a", ":", "--no-warm", "-np", "2", "./b").Warm);
}
