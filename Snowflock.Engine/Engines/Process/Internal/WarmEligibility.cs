using System.Buffers.Binary;

namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>Whether a program can be a warm master: LD_PRELOAD must take effect, so it has to be
/// a dynamically linked ELF executable (or a script whose interpreter is one), and not setuid or
/// setgid (the loader ignores LD_PRELOAD there).</summary>
internal static class WarmEligibility
{
    private const uint PT_INTERP = 3;

    /// <summary>Null if the program can be warm-forked, else the reason it cannot.</summary>
    public static string? WhyNot(string executable) => WhyNot(executable, depth: 0);

    private static string? WhyNot(string executable, int depth)
    {
        if (!OperatingSystem.IsLinux())
            return "warm fork needs Linux";
        try
        {
            var mode = File.GetUnixFileMode(executable);
            if ((mode & (UnixFileMode.SetUser | UnixFileMode.SetGroup)) != 0)
                return $"{executable} is setuid/setgid";
            using var file = File.OpenRead(executable);
            var head = new byte[4096];
            var n = file.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            if (n >= 2 && head[0] == '#' && head[1] == '!')
            {
                if (depth > 0)
                    return $"{executable}: nested #! interpreters";
                var line = System.Text.Encoding.UTF8.GetString(head, 2, n - 2).Split('\n')[0].Trim();
                var interpreter = line.Split([' ', '\t'], 2)[0];
                return interpreter.Length == 0 ? $"{executable}: empty #! line" : WhyNot(interpreter, depth + 1);
            }
            return ElfWhyNot(executable, file, head.AsSpan(0, n));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"cannot inspect {executable}: {e.Message}";
        }
    }

    private static string? ElfWhyNot(string executable, FileStream file, ReadOnlySpan<byte> head)
    {
        if (head.Length < 64 || head[0] != 0x7f || head[1] != 'E' || head[2] != 'L' || head[3] != 'F')
            return $"{executable} is not an ELF executable";
        if (head[4] != 2 || head[5] != 1)
            return $"{executable} is not a 64-bit little-endian ELF";
        var phoff = BinaryPrimitives.ReadUInt64LittleEndian(head[32..]);
        var phentsize = BinaryPrimitives.ReadUInt16LittleEndian(head[54..]);
        var phnum = BinaryPrimitives.ReadUInt16LittleEndian(head[56..]);
        if (phentsize < 56 || phnum == 0 || phnum > 4096)
            return $"{executable}: unexpected ELF program headers";
        var table = new byte[phentsize * phnum];
        file.Position = (long)phoff;
        if (file.ReadAtLeast(table, table.Length, throwOnEndOfStream: false) < table.Length)
            return $"{executable}: truncated ELF program headers";
        for (var i = 0; i < phnum; i++)
            if (BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(i * phentsize)) == PT_INTERP)
                return null;
        return $"{executable} is statically linked";
    }
}
