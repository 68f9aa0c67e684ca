using Snowflock.Tests.Integration.Support;
using Xunit;

namespace Snowflock.Tests.Integration;

/// <summary><c>sfrun image build|list|rm</c> through the real sfrun binary, each test with its own
/// cache folder (XDG_CACHE_HOME); and the rule that <c>image</c> is a program when one by that name
/// is on the PATH.</summary>
[Trait("Area", "integration")]
[Trait("Engine", "qemu")]
public sealed class ImageCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sftest-imagecli-" + Guid.NewGuid().ToString("N"));

    public ImageCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private Task<CommandResult> Sfrun(params string[] args) =>
        CommandRun.RunAsync(Repo.Sfrun, args, env: new Dictionary<string, string> { ["XDG_CACHE_HOME"] = _dir });

    [Fact]
    public async Task Build_prints_one_line_then_finds_the_image_in_the_cache_lists_and_removes_it()
    {
        var cpi = Repo.Example("cpi");
        var built = await Sfrun("image", "build", "--engine", "qemu", "--agent", Repo.TestProgram("guest_init"), cpi);
        Assert.True(built.ExitCode == 0, built.Err);
        var line = Assert.Single(built.OutLines);
        var hash = line.Split(' ')[0];
        Assert.Matches("^[0-9a-f]{32} kernel \\S+ /\\S+/vmlinux initramfs /\\S+/initramfs.cpio [0-9.]+ MiB \\(built in \\d+ ms\\)$", line);

        var again = await Sfrun("image", "build", "--agent", Repo.TestProgram("guest_init"), cpi);
        Assert.StartsWith(hash + " ", again.Out);
        Assert.Contains("(cached, ", again.Out);

        var list = await Sfrun("image", "list");
        Assert.Equal(0, list.ExitCode);
        Assert.StartsWith(hash + "  ", Assert.Single(list.OutLines));
        Assert.EndsWith(cpi, list.OutLines[0]);

        var rm = await Sfrun("image", "rm", hash);
        Assert.Equal((0, "removed 1 image\n"), (rm.ExitCode, rm.Out));
        Assert.Empty((await Sfrun("image", "list")).OutLines);
        var rmAll = await Sfrun("image", "rm", "--all");
        Assert.Equal((0, "removed 0 images\n"), (rmAll.ExitCode, rmAll.Out));
    }

    [Theory]
    [InlineData(127, "no-such-program-sftest: command not found in PATH", "image", "build", "no-such-program-sftest")]
    [InlineData(2, "no program given", "image", "build")]
    [InlineData(2, "unknown image command 'frob'", "image", "frob")]
    [InlineData(2, "build, list or rm?", "image")]
    [InlineData(1, "not an image hash", "image", "rm", "zz")]
    [InlineData(1, "no cached image abcd", "image", "rm", "abcd")]
    [InlineData(1, "guest agent /nonexistent/sfagent-missing not found", "image", "build", "--agent", "/nonexistent/sfagent-missing", "/bin/true")]
    public async Task Bad_input_is_one_line_and_an_exit_code(int code, string message, params string[] args)
    {
        var r = await Sfrun(args);
        Assert.Equal(code, r.ExitCode);
        var error = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("sfrun: ", error);
        Assert.Contains(message, error);
    }

    [Fact]
    public async Task A_program_named_image_on_the_PATH_runs_as_a_program()
    {
        var bin = Path.Combine(_dir, "bin");
        Directory.CreateDirectory(bin);
        var program = Path.Combine(bin, "image");
        await File.WriteAllTextAsync(program, "#!/bin/sh\necho \"I am the program, args: $*\"\n");
        Assert.Equal(0, (await CommandRun.RunAsync("chmod", ["755", program])).ExitCode);
        var r = await CommandRun.RunAsync(Repo.Sfrun, ["image", "list"],
            env: new Dictionary<string, string> { ["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH"), ["XDG_CACHE_HOME"] = _dir });
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal("I am the program, args: list\n", r.Out);
    }
}
