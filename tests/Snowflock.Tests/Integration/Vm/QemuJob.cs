using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Vm;

/// <summary>
/// One sfrun job on the qemu engine, with what it needs to be checked for leaks: the job runs with
/// its own TMPDIR (the engine's sockets and console logs go there; it must be empty afterwards)
/// and a tag in sfrun's own environment, which every QEMU and the job's network holder inherit,
/// so any of them still alive afterwards is found by <see cref="Leaks"/>.
/// </summary>
internal sealed class QemuJob : IDisposable
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(400);

    public string Tag { get; } = Leaks.NewTag();
    public string TempDir { get; } = Directory.CreateTempSubdirectory("sfq").FullName;

    public Dictionary<string, string> Environment => new()
    {
        ["SFRUN_TEST_TAG"] = Tag,
        ["TMPDIR"] = TempDir,
        // A JIT-built sfrun (not the published NativeAOT one) puts the .NET runtime's diagnostic
        // pipes in TMPDIR, and a SIGKILL leaves them: not the job's files.
        ["DOTNET_EnableDiagnostics"] = "0",
    };

    public string[] Args(params string[] args) => ["--engine", "qemu", .. args];

    public Task<CommandResult> RunAsync(params string[] args) =>
        CommandRun.RunAsync(Repo.Sfrun, Args(args), env: Environment, bound: Bound);

    public CommandRun Start(params string[] args) =>
        CommandRun.Start("/usr/bin/env", ["--default-signal=HUP,INT,QUIT,TERM,USR1,USR2", Repo.Sfrun, .. Args(args)], Environment, watchLines: true);

    /// <summary>No QEMU, network holder or rank process of the job alive, and nothing left in its TMPDIR.</summary>
    public async Task AssertNothingLeftAsync()
    {
        await Leaks.AssertNoneAsync(Tag);
        Assert.Empty(Directory.EnumerateFileSystemEntries(TempDir));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(TempDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
