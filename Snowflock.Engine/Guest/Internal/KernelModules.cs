namespace Snowflock.Engine.Guest.Internal;

/// <summary>
/// Which module files a set of kernel modules needs, in an order that loads each after everything
/// it depends on, read from the kernel's own modules.dep (as modprobe does). Module names compare
/// with '-' and '_' equal, as the kernel does; a module built into the kernel (modules.builtin)
/// needs no file.
/// </summary>
internal static class KernelModules
{
    /// <summary>The module files (paths relative to the modules directory, as modules.dep writes
    /// them) in load order.</summary>
    public static IReadOnlyList<string> LoadOrder(IEnumerable<string> wanted, string modulesDep, string modulesBuiltin)
    {
        var deps = new Dictionary<string, (string File, string[] Deps)>();
        foreach (var line in modulesDep.Split('\n'))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0)
                continue;
            var file = line[..colon].Trim();
            var needs = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            deps[NameOf(file)] = (file, needs);
        }
        var builtin = modulesBuiltin.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(NameOf).ToHashSet();

        var order = new List<string>();
        var done = new HashSet<string>();
        var visiting = new HashSet<string>();
        void Visit(string name)
        {
            if (done.Contains(name))
                return;
            if (!deps.TryGetValue(name, out var entry))
            {
                if (builtin.Contains(name))
                    return;
                throw new GuestImageException($"kernel module {name} is neither in modules.dep nor built in: the guest's devices need it");
            }
            if (!visiting.Add(name))
                throw new GuestImageException($"kernel module {name}: modules.dep has a dependency cycle");
            foreach (var dep in entry.Deps)
                Visit(NameOf(dep));
            visiting.Remove(name);
            done.Add(name);
            order.Add(entry.File);
        }
        foreach (var name in wanted)
            Visit(Normalize(name));
        return order;
    }

    /// <summary>"kernel/drivers/virtio/virtio-rng.ko.xz" → "virtio_rng".</summary>
    public static string NameOf(string file)
    {
        var name = Path.GetFileName(file.Trim());
        var ko = name.IndexOf(".ko", StringComparison.Ordinal);
        return Normalize(ko >= 0 ? name[..ko] : name);
    }

    private static string Normalize(string name) => name.Replace('-', '_');
}
