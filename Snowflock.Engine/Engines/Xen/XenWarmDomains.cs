using System.Text;
using Snowflock.Engine.Engines.Xen.Internal;

namespace Snowflock.Engine.Engines.Xen;

/// <summary>A warm domU as <c>sfrun warm list</c> shows it: its programs and whether it runs, waiting.</summary>
public sealed record XenWarmDomain(string Name, IReadOnlyList<string> Programs, bool Running);

/// <summary>
/// Named warm domUs, SnowFlock's own model: a domU booted once from a guest image, its agent
/// waiting, that every job with <c>--engine xen --vm NAME</c> checkpoints (<c>xl save -c</c>; it
/// keeps running) and clones, instead of booting a master of its own. dom0 is where they are
/// known: the domain NAME and its configuration <c>/var/lib/snowflock/warm/NAME.cfg</c>, which
/// also names the programs its image holds.
/// </summary>
public static class XenWarmDomains
{
    private const string Folder = XenGuestFileStore.Root + "/warm";
    private const string ProgramLine = "# snowflock-program = ";

    /// <summary>Boots warm domU <paramref name="name"/> holding <paramref name="executables"/> (absolute paths).</summary>
    public static async Task<XenWarmDomain> CreateAsync(string name, IReadOnlyList<string> executables, string? xenHost, CancellationToken ct)
    {
        if (!WarmVms.IsValidName(name) || name.StartsWith("sf-", StringComparison.Ordinal))
            throw new WarmVmCreateException($"'{name}' cannot name a warm domU: use letters, digits, '-' and '_', not starting with 'sf-' (sfrun's own domains)");
        var xl = XlClient.ForHost(xenHost);
        await RequireXenAsync(xl, ct).ConfigureAwait(false);
        if (await xl.FindAsync(name, ct).ConfigureAwait(false) is not null)
            throw new WarmVmCreateException($"{xl.Shell.Where} has a domain '{name}' already ('sfrun warm rm --engine xen {name}' if it is a warm domU)");
        var bridge = await XenNetwork.BridgeAsync(xl, ct).ConfigureAwait(false);
        var files = await XenGuestFileStore.EnsureAsync(xl, executables, ct).ConfigureAwait(false);
        var config = DomainConfig.ForGuest(name, files, MacAddress.For(Environment.ProcessId, 0xFFF), bridge);
        var text = new StringBuilder();
        foreach (var exe in executables)
            text.Append(ProgramLine).Append(exe).Append('\n');
        text.Append(config.Render());
        var path = $"{Folder}/{name}.cfg";
        try
        {
            await xl.WriteFileAsync(path, new MemoryStream(Encoding.UTF8.GetBytes(text.ToString())), ct).ConfigureAwait(false);
            await xl.MakeDomainAsync(name, path, checkpoint: null, ct).ConfigureAwait(false);
            await xl.UnpauseAsync(name, ct).ConfigureAwait(false);
            await xl.WaitForGuestKeyAsync(name, "waiting", TimeSpan.FromMinutes(5), ct).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            await RemoveQuietlyAsync(xl, name).ConfigureAwait(false);
            if (e is OperationCanceledException)
                throw;
            throw new WarmVmCreateException($"warm domU '{name}' did not come up in {xl.Shell.Where}: {e.Message}");
        }
        return new XenWarmDomain(name, executables, true);
    }

    public static Task<IReadOnlyList<XenWarmDomain>> ListAsync(string? xenHost, CancellationToken ct) =>
        OneLineAsync(xenHost, xl => ListAsync(xl, ct));

    private static async Task<IReadOnlyList<XenWarmDomain>> ListAsync(XlClient xl, CancellationToken ct)
    {
        var text = await xl.RunAsync(["sh", "-c", "for f in \"$1\"/*.cfg; do [ -f \"$f\" ] && { echo \"@@ $f\"; cat \"$f\"; }; done; true", "sh", Folder],
            TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        var running = (await xl.ListAsync(ct).ConfigureAwait(false)).Select(d => d.Name).ToHashSet(StringComparer.Ordinal);
        return text.Split("@@ ", StringSplitOptions.RemoveEmptyEntries)
            .Select(chunk => (Config: DomainConfig.Parse(chunk), Programs: Programs(chunk)))
            .Where(c => c.Config is not null)
            .Select(c => new XenWarmDomain(c.Config!.Name, c.Programs, running.Contains(c.Config.Name)))
            .ToList();
    }

    /// <summary>Destroys warm domU <paramref name="name"/> and forgets it.</summary>
    public static Task RemoveAsync(string name, string? xenHost, CancellationToken ct) =>
        OneLineAsync(xenHost, async xl => { await RemoveAsync(xl, name, ct).ConfigureAwait(false); return true; });

    private static async Task RemoveAsync(XlClient xl, string name, CancellationToken ct)
    {
        var known = await xl.RunAsync(["sh", "-c", "[ -f \"$1\" ] && echo yes; true", "sh", $"{Folder}/{name}.cfg"], TimeSpan.FromSeconds(60), ct)
            .ConfigureAwait(false);
        if (known.Trim() != "yes")
            throw new WarmVmNotFoundException($"no warm domU '{name}' in {xl.Shell.Where} ('sfrun warm list --engine xen' shows them)");
        await xl.DestroyAsync(name, ct).ConfigureAwait(false);
        await xl.RemoveFilesAsync([$"{Folder}/{name}.cfg"], ct).ConfigureAwait(false);
    }

    /// <summary>The configuration clones of warm domU <paramref name="name"/> are restored with,
    /// after checking that it runs, waits in its agent, and holds <paramref name="executables"/>.</summary>
    internal static async Task<DomainConfig> ConfigForClonesAsync(XlClient xl, string name, IReadOnlyList<string> executables, CancellationToken ct)
    {
        string text;
        try
        {
            text = await xl.RunAsync(["cat", $"{Folder}/{name}.cfg"], TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        }
        catch (XlCommandException)
        {
            throw new WarmVmNotFoundException($"no warm domU '{name}' in {xl.Shell.Where} ('sfrun warm create --engine xen {name} ./app' makes one)");
        }
        var config = DomainConfig.Parse(text) ?? throw new WarmVmNotFoundException($"{Folder}/{name}.cfg in {xl.Shell.Where} is not a warm domU's configuration");
        if (await xl.FindAsync(name, ct).ConfigureAwait(false) is not { } domain || domain.Crashed || domain.Dying)
            throw new WarmVmDeadException($"warm domU '{name}' is not running in {xl.Shell.Where}; 'sfrun warm rm --engine xen {name}' and create it again");
        var held = Programs(text);
        if (executables.FirstOrDefault(e => !held.Contains(e)) is { } missing)
            throw new WarmVmMismatchException($"warm domU '{name}' holds {string.Join(", ", held)}, not {missing}");
        return config;
    }

    private static IReadOnlyList<string> Programs(string text) =>
        text.Split('\n').Where(l => l.StartsWith(ProgramLine, StringComparison.Ordinal)).Select(l => l[ProgramLine.Length..].Trim()).ToList();

    /// <summary>A failure in dom0 as the one line a user sees.</summary>
    private static async Task<T> OneLineAsync<T>(string? xenHost, Func<XlClient, Task<T>> action)
    {
        var xl = XlClient.ForHost(xenHost);
        try
        {
            return await action(xl).ConfigureAwait(false);
        }
        catch (Exception e) when (e is XlCommandException or TimeoutException or FormatException)
        {
            throw new EngineUnavailableException($"xen engine: {e.Message}");
        }
    }

    internal static async Task RequireXenAsync(XlClient xl, CancellationToken ct)
    {
        try
        {
            var info = await xl.InfoAsync(ct).ConfigureAwait(false);
            if (!info.TryGetValue("xen_caps", out var caps) || !caps.Contains("xen-3.0-x86_64", StringComparison.Ordinal))
                throw new EngineUnavailableException($"xen engine: {xl.Shell.Where} cannot run 64-bit PV guests (xen_caps: {caps})");
        }
        catch (Exception e) when (e is XlCommandException or FormatException or TimeoutException)
        {
            throw new EngineUnavailableException($"xen engine: xl info failed in {xl.Shell.Where}: {e.Message}");
        }
    }

    private static async Task RemoveQuietlyAsync(XlClient xl, string name)
    {
        try
        {
            await xl.DestroyAsync(name, CancellationToken.None).ConfigureAwait(false);
            await xl.RemoveFilesAsync([$"{Folder}/{name}.cfg"], CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is XlCommandException or TimeoutException or EngineUnavailableException)
        {
        }
    }
}
