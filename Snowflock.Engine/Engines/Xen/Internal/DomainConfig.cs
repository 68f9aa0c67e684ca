using System.Globalization;
using System.Text;

namespace Snowflock.Engine.Engines.Xen.Internal;

/// <summary>
/// An xl domain configuration for a PV guest booted from a kernel and an initramfs in dom0, with
/// one vif on a dom0 bridge. Clones are restored with the same file but their own name and MAC.
/// </summary>
internal sealed record DomainConfig(string Name, string Kernel, string Ramdisk, string KernelArgs, int MemoryMiB, int Vcpus,
    string Mac, string Bridge)
{
    /// <summary>The xl configuration text. Every value is checked rather than escaped: xl's
    /// parser has no escapes a generated name would need.</summary>
    public string Render()
    {
        Check(Name, "name", c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');
        Check(Kernel, "kernel", PathChar);
        Check(Ramdisk, "ramdisk", PathChar);
        Check(KernelArgs, "kernel arguments", c => c >= ' ' && c < 0x7f && c is not '"' and not '\\');
        Check(Mac, "mac", c => char.IsAsciiHexDigit(c) || c == ':');
        Check(Bridge, "bridge", c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');
        if (MemoryMiB < 32 || Vcpus < 1)
            throw new ArgumentException($"domain {Name}: memory {MemoryMiB} MiB and {Vcpus} vcpus are too few");
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"name = \"{Name}\"\n");
        sb.Append("type = \"pv\"\n");
        sb.Append(CultureInfo.InvariantCulture, $"kernel = \"{Kernel}\"\n");
        sb.Append(CultureInfo.InvariantCulture, $"ramdisk = \"{Ramdisk}\"\n");
        sb.Append(CultureInfo.InvariantCulture, $"extra = \"{KernelArgs}\"\n");
        sb.Append(CultureInfo.InvariantCulture, $"memory = {MemoryMiB}\n");
        sb.Append(CultureInfo.InvariantCulture, $"vcpus = {Vcpus}\n");
        sb.Append(CultureInfo.InvariantCulture, $"vif = [ \"mac={Mac},bridge={Bridge}\" ]\n");
        // A crashed clone stays for inspection until teardown destroys it; none restarts by itself.
        sb.Append("on_crash = \"preserve\"\non_poweroff = \"destroy\"\non_reboot = \"destroy\"\n");
        return sb.ToString();
    }

    /// <summary>A one-vCPU PV guest booted from the job's image with the agent on the console:
    /// a master or warm domU. SFRUN_XEN_MEMORY (MiB, at least 64) sizes it, default 384: the
    /// initramfs unpacks into guest RAM.</summary>
    public static DomainConfig ForGuest(string name, XenGuestFiles files, string mac, string bridge) =>
        new(name, files.Kernel, files.Ramdisk, "console=hvc0 quiet",
            int.TryParse(Environment.GetEnvironmentVariable("SFRUN_XEN_MEMORY"), out var m) && m >= 64 ? m : 384, 1, mac, bridge);

    /// <summary>Reads back a configuration <see cref="Render"/> wrote (a warm domU's, kept in dom0);
    /// null for anything else.</summary>
    public static DomainConfig? Parse(string text)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            var eq = line.IndexOf('=');
            if (line.Length == 0 || line.StartsWith('#') || eq < 0)
                continue;
            values[line[..eq].Trim()] = line[(eq + 1)..].Trim().Trim('[', ']').Trim().Trim('"');
        }
        string? Get(string key) => values.GetValueOrDefault(key);
        var vif = (Get("vif") ?? "").Split(',').Select(p => p.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0].Trim(), p => p[1].Trim());
        if (Get("name") is not { } name || Get("kernel") is not { } kernel || Get("ramdisk") is not { } ramdisk || Get("extra") is not { } extra
            || !int.TryParse(Get("memory"), NumberStyles.None, CultureInfo.InvariantCulture, out var memory)
            || !int.TryParse(Get("vcpus"), NumberStyles.None, CultureInfo.InvariantCulture, out var vcpus)
            || !vif.TryGetValue("mac", out var mac) || !vif.TryGetValue("bridge", out var bridge))
            return null;
        return new DomainConfig(name, kernel, ramdisk, extra, memory, vcpus, mac, bridge);
    }

    /// <summary>A copy for a clone: its own name and MAC, the rest as the master's.</summary>
    public DomainConfig ForClone(string name, string mac) => this with { Name = name, Mac = mac };

    private static bool PathChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '/' or '-' or '_' or '.' or '+';

    private static void Check(string value, string what, Func<char, bool> allowed)
    {
        if (value.Length == 0 || !value.All(allowed))
            throw new ArgumentException($"xl config: {what} '{value}' has characters xl's parser would misread");
    }
}
