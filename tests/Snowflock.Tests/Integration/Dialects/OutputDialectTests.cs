using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Dialects;

/// <summary>Issue #14: tagged output in the dialect of the option's spelling, and -genvnone/-genvlist
/// keeping HOME and PATH as hydra's local ranks do — side by side with both launchers.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class OutputDialectTests
{
    private const string Both = "echo out; echo err >&2";

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public async Task Tag_output_is_Open_MPIs_format()
    {
        var ours = await Dialect.Sfrun("--tag-output", "-n", "2", "sh", "-c", Both);
        var theirs = await Dialect.MpirunOpenMpi("--tag-output", "-n", "2", "sh", "-c", Both);
        Assert.Equal(["[1,0]<stdout>:out", "[1,1]<stdout>:out"], Lines(ours.Out));
        Assert.Equal(Lines(theirs.Out), Lines(ours.Out));
        Assert.Equal(Lines(theirs.Err), Lines(ours.Err));
    }

    [Theory]
    [InlineData("-l")]
    [InlineData("-prepend-rank")]
    public async Task Hydras_spelling_gives_hydras_format(string option)
    {
        var ours = await Dialect.Sfrun(option, "-n", "2", "sh", "-c", Both);
        var hydra = await Dialect.Hydra(option, "-n", "2", "sh", "-c", Both);
        Assert.Equal(["[0] out", "[1] out"], Lines(ours.Out));
        Assert.Equal(Lines(hydra.Out), Lines(ours.Out));
        Assert.Equal(Lines(hydra.Err), Lines(ours.Err));
    }

    [Theory]
    [InlineData("-genvnone")]
    [InlineData("-genvlist", "SF_LISTED")]
    public async Task Genvnone_and_genvlist_keep_HOME_and_PATH_as_hydra(params string[] options)
    {
        const string show = "echo home=$HOME path=$PATH";
        var env = new Dictionary<string, string> { ["SF_LISTED"] = "1" };
        var ours = await CommandRun.RunAsync(Repo.Sfrun, [.. options, "-n", "1", "sh", "-c", show], env: env);
        var hydra = await CommandRun.RunAsync(Repo.Hydra, [.. options, "-n", "1", "sh", "-c", show], env: env);
        Assert.True(ours.ExitCode == 0, ours.Err);
        Assert.Equal($"home={Environment.GetEnvironmentVariable("HOME")} path={Environment.GetEnvironmentVariable("PATH")}", ours.Out.Trim());
        Assert.Equal(hydra.Out, ours.Out);
    }
}
