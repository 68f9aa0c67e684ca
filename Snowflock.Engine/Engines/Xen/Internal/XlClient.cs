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

    /// <summary>The toolstack of dom0 <paramref name="xenHost"/> (<c>--xen-host</c>) over ssh; null:
    /// XEN_HOST's, or this machine's own when neither is set (sfrun runs in dom0).</summary>
    public static XlClient ForHost(string? xenHost)
    {
        var host = xenHost ?? Environment.GetEnvironmentVariable("XEN_HOST");
        return new XlClient(string.IsNullOrEmpty(host) ? Dom0Shell.Local() : Dom0Shell.OverSsh(host, Environment.GetEnvironmentVariable("SFRUN_SSH_CONFIG")));
    }

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

    /// <summary><c>xl save -c</c>: a checkpoint; the domain keeps running afterwards. A save whose
    /// xl crashed (seen under nested TCG) is taken again from the start.</summary>
    public async Task CheckpointAsync(string domain, string file, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await RunAsync(["xl", "save", "-c", domain, file], Slow, ct);
                return;
            }
            catch (XlCommandException e) when (e.Failure == XlFailure.Crashed && attempt < 3)
            {
                Log.ForDebugEvent().Message("{Where}: xl save -c of {Domain} crashed (try {Attempt}), taking it again: {Reason}", shell.Where, domain, attempt, e.Message)
                    .Property("EventName", "XenCheckpointRetried").Log();
                await Task.Delay(TimeSpan.FromSeconds(attempt), ct);
                await RunAsync(["sh", "-c", "rm -f \"$1\"; xl unpause \"$2\" 2>/dev/null; true", "sh", file, domain], Quick, ct);
            }
        }
    }

    /// <summary><c>xl restore -p</c>: the new domain stays paused until <see cref="UnpauseAsync"/>,
    /// so its identity is in xenstore before its first instruction.</summary>
    public Task RestorePausedAsync(string configFile, string file, CancellationToken ct) =>
        RunAsync(["xl", "restore", "-p", configFile, file], Slow, ct);

    /// <summary>
    /// Restores one clone, paused, retrying when xl or a hotplug script it runs crashed or failed
    /// (seen under nested TCG: a segfaulting vif-bridge, xl itself, vif-bridge failing while
    /// several restores run). Whatever a failed try left of the
    /// domain is destroyed first, so no paused half-clone survives; a refusal (name in use, no
    /// memory) is not retried.
    /// </summary>
    public Task RestoreCloneAsync(string name, string configFile, string file, CancellationToken ct, int tries = 3) =>
        MakeDomainAsync(name, configFile, file, ct, tries);

    /// <summary>As <see cref="RestoreCloneAsync"/> when <paramref name="checkpoint"/> is given;
    /// else <c>xl create -p</c> of a fresh domain, with the same retries.</summary>
    public async Task MakeDomainAsync(string name, string configFile, string? checkpoint, CancellationToken ct, int tries = 3)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (checkpoint is null)
                    await CreateAsync(configFile, paused: true, ct);
                else
                    await RestorePausedAsync(configFile, checkpoint, ct);
                return;
            }
            catch (XlCommandException e) when (e.Failure != XlFailure.NameInUse)
            {
                await DestroyAsync(name, CancellationToken.None);
                if (e.Failure is not (XlFailure.Crashed or XlFailure.HotplugFailed) || attempt >= tries)
                    throw;
                Log.ForDebugEvent().Message("{Where}: making {Name} failed (try {Attempt} of {Tries}), trying again: {Reason}",
                        shell.Where, name, attempt, tries, e.Message)
                    .Property("EventName", "XenRestoreRetried").Log();
            }
            catch (Exception e) when (e is not XlCommandException { Failure: XlFailure.NameInUse })
            {
                // Cancelled or timed out half-way: the domain may exist, paused.
                await DestroyAsync(name, CancellationToken.None);
                throw;
            }
        }
    }

    /// <summary>In one dom0 call: writes <paramref name="entries"/> (keys relative to the
    /// domain's <c>data/snowflock/</c>) and unpauses the domain. Returns its domain id.</summary>
    public async Task<int> IdentifyAndUnpauseAsync(string name, IReadOnlyDictionary<string, string> entries, CancellationToken ct)
    {
        var script = "id=$(xl domid \"$1\") || exit 1; shift; at=/local/domain/$id/data/snowflock; " +
                     "while [ $# -gt 1 ]; do xenstore-write \"$at/$1\" \"$2\" || exit 1; shift 2; done; xl unpause \"$1\" && echo $id";
        var argv = new List<string> { "sh", "-c", script, "sh", name };
        foreach (var (k, v) in entries)
            argv.AddRange([k, v]);
        argv.Add(name);
        return XlOutput.ParseDomId(await RunAsync(argv, Quick, ct));
    }

    /// <summary>Waits (inside dom0, one call) until the domain has written <c>data/snowflock/KEY</c>.</summary>
    public Task WaitForGuestKeyAsync(string name, string key, TimeSpan bound, CancellationToken ct) =>
        RunAsync(["sh", "-c",
            "end=$(( $(date +%s) + $3 )); while [ $(date +%s) -lt $end ]; do " +
            "xenstore-read \"/local/domain/$(xl domid \"$1\")/data/snowflock/$2\" >/dev/null 2>&1 && exit 0; sleep 0.3; done; " +
            "echo \"$1 never wrote data/snowflock/$2 in xenstore\" >&2; exit 1",
            "sh", name, key, ((int)bound.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture)], bound + Quick, ct);

    /// <summary>Waits (one dom0 call, at most <paramref name="bound"/>) until none of the named domains exists.</summary>
    public Task WaitGoneAsync(IReadOnlyList<string> names, TimeSpan bound, CancellationToken ct) =>
        names.Count == 0 ? Task.CompletedTask : RunAsync(["sh", "-c",
            "n=$1; shift; for i in $(seq 1 $n); do alive=0; for d in \"$@\"; do xl domid \"$d\" >/dev/null 2>&1 && alive=1; done; " +
            "[ $alive = 0 ] && exit 0; sleep 0.3; done; exit 0", "sh",
            ((int)(bound.TotalSeconds / 0.5)).ToString(System.Globalization.CultureInfo.InvariantCulture), .. names], bound + Quick, ct);

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

    /// <summary>Runs a command in dom0; a non-zero status becomes an <see cref="XlCommandException"/>.
    /// A command that crashed (seen under nested TCG: tools in dom0 dying of SIGSEGV now and then)
    /// is run again up to three times, a little later each time, unless it is one that must not be repeated blindly (create,
    /// save, restore: their callers decide) or it read from a stream.</summary>
    public async Task<string> RunAsync(IReadOnlyList<string> argv, TimeSpan bound, CancellationToken ct, Stream? stdin = null)
    {
        var repeatable = stdin is null && !(argv[0] == "xl" && argv.Count > 1 && argv[1] is "create" or "save" or "restore");
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await RunOnceAsync(argv, bound, ct, stdin);
            }
            catch (XlCommandException e) when (e.Failure == XlFailure.Crashed && repeatable && attempt < 4)
            {
                // Crashes come in bursts on the nested test host: give it a moment.
                await Task.Delay(TimeSpan.FromMilliseconds(500 * attempt), ct);
                Log.ForDebugEvent().Message("{Where}: {Command} crashed, running it again: {Reason}", shell.Where, Dom0Shell.Quote(argv), e.Message)
                    .Property("EventName", "XlCommandRetried").Log();
            }
        }
    }

    private async Task<string> RunOnceAsync(IReadOnlyList<string> argv, TimeSpan bound, CancellationToken ct, Stream? stdin)
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
