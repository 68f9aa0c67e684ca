using NLog;

namespace Snowflock.Engine.Engines.Xen.Internal;

/// <summary>An xl (or xenstore) command in dom0 failed; <see cref="Failure"/> says why as far as it matters.</summary>
internal sealed class XlCommandException(XlFailure failure, string message) : Exception(message)
{
    public XlFailure Failure { get; } = failure;
}

/// <summary>
/// The toolstack as the engine uses it: xl's subcommands and xenstore writes in dom0, each with a
/// bound (everything is slow under nested TCG, so the bounds are generous), output read by
/// <see cref="XlOutput"/>.
/// </summary>
internal sealed class XlClient(Dom0Shell shell)
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.Xen");
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Slow = TimeSpan.FromSeconds(300);

    public Dom0Shell Shell => shell;

    public async Task<IReadOnlyDictionary<string, string>> InfoAsync(CancellationToken ct) =>
        XlOutput.ParseInfo(await RunAsync(["xl", "info"], Quick, ct));

    public async Task<IReadOnlyList<XlDomain>> ListAsync(CancellationToken ct) =>
        XlOutput.ParseList(await RunAsync(["xl", "list"], Quick, ct));

    /// <summary>The domain called <paramref name="name"/>, or null if there is none.</summary>
    public async Task<XlDomain?> FindAsync(string name, CancellationToken ct)
    {
        try
        {
            return XlOutput.ParseList(await RunAsync(["xl", "list", name], Quick, ct)).SingleOrDefault(d => d.Name == name);
        }
        catch (XlCommandException e) when (e.Failure == XlFailure.NoSuchDomain)
        {
            return null;
        }
    }

    public async Task<int> DomIdAsync(string name, CancellationToken ct) =>
        XlOutput.ParseDomId(await RunAsync(["xl", "domid", name], Quick, ct));

    public Task CreateAsync(string configFile, bool paused, CancellationToken ct) =>
        RunAsync(paused ? ["xl", "create", "-p", configFile] : ["xl", "create", configFile], Slow, ct);

    /// <summary><c>xl save -c</c>: a checkpoint; the domain keeps running afterwards.</summary>
    public Task CheckpointAsync(string domain, string file, CancellationToken ct) =>
        RunAsync(["xl", "save", "-c", domain, file], Slow, ct);

    /// <summary><c>xl restore -p</c>: the new domain stays paused until <see cref="UnpauseAsync"/>,
    /// so its identity is in xenstore before its first instruction.</summary>
    public Task RestorePausedAsync(string configFile, string file, CancellationToken ct) =>
        RunAsync(["xl", "restore", "-p", configFile, file], Slow, ct);

    public Task UnpauseAsync(string domain, CancellationToken ct) => RunAsync(["xl", "unpause", domain], Quick, ct);

    /// <summary><c>xl destroy</c>; a domain that is already gone is not an error.</summary>
    public async Task DestroyAsync(string domain, CancellationToken ct)
    {
        try
        {
            await RunAsync(["xl", "destroy", domain], Quick, ct);
        }
        catch (XlCommandException e) when (e.Failure == XlFailure.NoSuchDomain)
        {
        }
    }

    /// <summary>Whether this xl can fork a domain (<c>xl fork-vm</c>; needs a hypervisor built with mem_sharing).</summary>
    public async Task<bool> HasForkVmAsync(CancellationToken ct)
    {
        var r = await shell.RunAsync(["xl", "fork-vm"], Quick, ct);
        return XlOutput.Classify(r.ExitCode, r.Stderr + r.Stdout) != XlFailure.NotImplemented;
    }

    /// <summary>Writes key/value pairs in one <c>xenstore-write</c>.</summary>
    public Task XenstoreWriteAsync(IEnumerable<KeyValuePair<string, string>> entries, CancellationToken ct) =>
        RunAsync(["xenstore-write", .. entries.SelectMany(e => new[] { e.Key, e.Value })], Quick, ct);

    /// <summary>Writes a file in dom0 from <paramref name="content"/> (through ssh when remote).</summary>
    public Task WriteFileAsync(string path, Stream content, CancellationToken ct) =>
        RunAsync(["sh", "-c", "mkdir -p \"$(dirname \"$1\")\" && cat > \"$1.part\" && mv \"$1.part\" \"$1\"", "sh", path], Slow, ct, content);

    public Task RemoveFilesAsync(IEnumerable<string> paths, CancellationToken ct) => RunAsync(["rm", "-rf", "--", .. paths], Quick, ct);

    /// <summary>Runs a command in dom0; a non-zero status becomes an <see cref="XlCommandException"/>.</summary>
    public async Task<string> RunAsync(IReadOnlyList<string> argv, TimeSpan bound, CancellationToken ct, Stream? stdin = null)
    {
        var r = await shell.RunAsync(argv, bound, ct, stdin);
        Log.ForTraceEvent().Message("{Where}: {Command} -> {ExitCode}", shell.Where, Dom0Shell.Quote(argv), r.ExitCode)
            .Property("EventName", "XlCommand").Log();
        if (r.ExitCode != 0)
            throw new XlCommandException(XlOutput.Classify(r.ExitCode, r.Stderr),
                $"{argv[0]} {(argv.Count > 1 ? argv[1] : "")} failed in {shell.Where} (status {r.ExitCode}): {XlOutput.Reason(r.Stderr.Length > 0 ? r.Stderr : r.Stdout)}");
        return r.Stdout;
    }
}
