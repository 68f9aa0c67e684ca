using System.Globalization;
using Snowflock.Engine;
using Snowflock.Engine.Guest;
using Snowflock.Launcher;
using Snowflock.Launcher.Internal;

namespace Snowflock.Cli;

/// <summary>
/// <c>sfrun image build|list|rm</c>: the guest images of the VM engines. The word <c>image</c>
/// selects this sub-command only when no program named <c>image</c> is on the PATH, so
/// <c>sfrun image</c> still runs such a program as mpiexec would (mpiexec looks programs up on the
/// PATH, not in the current directory; <c>sfrun ./image</c> always runs the program).
/// </summary>
internal static class ImageCommand
{
    public const string Usage =
        "usage: sfrun image build [--engine qemu|xen] [--agent FILE] PROGRAM [PROGRAM...]\n" +
        "       sfrun image list\n" +
        "       sfrun image rm HASH|--all";

    public static bool Selects(IReadOnlyList<string> args)
    {
        if (args.Count == 0 || args[0] != "image")
            return false;
        try
        {
            ProgramResolver.Resolve("image", Environment.CurrentDirectory, Environment.GetEnvironmentVariable("PATH"));
            return false;
        }
        catch (ProgramNotFoundException)
        {
            return true;
        }
    }

    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter output, CancellationToken ct)
    {
        var rest = args.Skip(1).Where(a => a is not ("-v" or "--verbose" or "-vv")).ToList();
        if (rest.Count == 0)
            throw new UsageException("sfrun image: build, list or rm? (sfrun image --help)");
        if (rest[0] is "-h" or "--help" or "help")
        {
            output.WriteLine(Usage);
            return 0;
        }
        switch (rest[0])
        {
            case "build":
                return await BuildAsync(rest.Skip(1).ToList(), output, ct);
            case "list":
                if (rest.Count > 1)
                    throw new UsageException("sfrun image list takes no arguments");
                foreach (var i in GuestImageStore.List())
                    output.WriteLine($"{i.Hash}  {i.KernelVersion}  {Size(i.InitramfsBytes),9}  {i.Built.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)}  {string.Join(' ', i.Programs)}");
                return 0;
            case "rm":
                if (rest.Count != 2)
                    throw new UsageException("usage: sfrun image rm HASH|--all");
                var removed = rest[1] is "--all" or "-all" ? GuestImageStore.RemoveAll() : GuestImageStore.Remove(rest[1]);
                if (removed == 0 && rest[1] is not ("--all" or "-all"))
                    throw new GuestImageException($"no cached image {rest[1]} (see sfrun image list)");
                output.WriteLine($"removed {removed} image{(removed == 1 ? "" : "s")}");
                return 0;
            default:
                throw new UsageException($"unknown image command '{rest[0]}' (sfrun image --help)");
        }
    }

    private static async Task<int> BuildAsync(List<string> args, TextWriter output, CancellationToken ct)
    {
        string? agent = null;
        var engine = "qemu";
        var programs = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            if (a is "--engine" or "-engine" && i + 1 < args.Count)
            {
                // The same image for both VM engines, but for the devices each gives its guests.
                engine = args[++i];
                if (engine is not ("qemu" or "xen"))
                    throw new UsageException($"sfrun image build --engine {engine}: images are for the qemu and xen engines");
            }
            else if (a is "--agent" or "-agent" && i + 1 < args.Count)
                agent = Path.GetFullPath(args[++i]);
            else if (a.StartsWith('-'))
                throw new UsageException($"sfrun image build: unknown option {a} (sfrun image --help)");
            else
                programs.Add(ProgramResolver.Resolve(a, Environment.CurrentDirectory, Environment.GetEnvironmentVariable("PATH")));
        }
        if (programs.Count == 0)
            throw new UsageException("sfrun image build: no program given (sfrun image --help)");
        agent ??= NativeHelpers.Find("sfagent")
            ?? throw new GuestImageException("the guest agent sfagent is not built: run make -C native (or set SFRUN_NATIVE_DIR)");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var image = await GuestImageBuilder.BuildAsync(GuestImageSpec.ForEngine(engine, programs, agent), ct);
        output.WriteLine($"{image.Hash} kernel {image.KernelVersion} {image.KernelPath} initramfs {image.InitramfsPath} {Size(image.InitramfsBytes)}"
            + (image.FromCache ? $" (cached, {clock.ElapsedMilliseconds} ms)" : $" (built in {clock.ElapsedMilliseconds} ms)"));
        return 0;
    }

    private static string Size(long bytes) => (bytes / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture) + " MiB";
}
