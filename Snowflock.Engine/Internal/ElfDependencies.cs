using System.Buffers.Binary;
using System.Text;

namespace Snowflock.Engine.Internal;

/// <summary>
/// Reads the shared libraries an ELF executable names in its dynamic section (<c>DT_NEEDED</c>),
/// the way <c>readelf -d</c> shows them, without running the loader. Goes through the program
/// headers (<c>PT_DYNAMIC</c>, <c>PT_LOAD</c>), so stripped binaries without section headers work.
/// Pure: bytes in, names out; anything that is not a well-formed ELF file gives <c>null</c>.
/// Also reads what resolving those names needs (<c>DT_RUNPATH</c>, <c>DT_RPATH</c>, <c>PT_INTERP</c>),
/// for the guest image's library closure.
/// </summary>
internal static class ElfDependencies
{
    private const uint PT_LOAD = 1, PT_DYNAMIC = 2, PT_INTERP = 3;
    private const long DT_NULL = 0, DT_NEEDED = 1, DT_STRTAB = 5, DT_STRSZ = 10, DT_RPATH = 15, DT_RUNPATH = 29;
    private const int MaxProgramHeaders = 4096, MaxDynamicEntries = 65536;

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="offset"/>, or fewer at the end of the file.</summary>
    public delegate int ReadAt(long offset, Span<byte> buffer);

    /// <summary>The <c>DT_NEEDED</c> names of the file at <paramref name="path"/>, in order; empty for a
    /// static ELF executable; <c>null</c> if the file is not ELF (a script, say) or cannot be read.</summary>
    public static IReadOnlyList<string>? Of(string path) => DynamicOf(path)?.Needed;

    /// <summary>Everything the dynamic loader reads from the file to find its libraries; <c>null</c>
    /// if the file is not ELF or cannot be read.</summary>
    public static ElfDynamic? DynamicOf(string path)
    {
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return ParseDynamic((offset, buffer) => RandomAccess.Read(handle, buffer, offset));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Parses an ELF image held in memory.</summary>
    public static IReadOnlyList<string>? Parse(ReadOnlySpan<byte> image)
    {
        var copy = image.ToArray();
        return Parse((offset, buffer) =>
        {
            if (offset < 0 || offset >= copy.Length)
                return 0;
            var n = (int)Math.Min(buffer.Length, copy.Length - offset);
            copy.AsSpan((int)offset, n).CopyTo(buffer);
            return n;
        });
    }

    public static IReadOnlyList<string>? Parse(ReadAt read) => ParseDynamic(read)?.Needed;

    public static ElfDynamic? ParseDynamic(ReadAt read)
    {
        Span<byte> ident = stackalloc byte[64];
        if (!ReadExactly(read, 0, ident) || ident[0] != 0x7f || ident[1] != (byte)'E' || ident[2] != (byte)'L' || ident[3] != (byte)'F')
            return null;
        var wide = ident[4] switch { 1 => false, 2 => true, _ => (bool?)null };
        var little = ident[5] switch { 1 => true, 2 => false, _ => (bool?)null };
        if (wide is not { } is64 || little is not { } le)
            return null;
        var f = new Fields(is64, le);

        var phoff = f.Addr(ident, is64 ? 0x20 : 0x1c);
        var phentsize = f.U16(ident, is64 ? 0x36 : 0x2a);
        var phnum = f.U16(ident, is64 ? 0x38 : 0x2c);
        if (phnum > MaxProgramHeaders || phentsize < (is64 ? 56 : 32) || phoff <= 0)
            return phnum == 0 ? ElfDynamic.Static : null;

        var loads = new List<(ulong Vaddr, ulong Offset, ulong Filesz)>();
        (ulong Offset, ulong Size)? dynamic = null;
        string? interpreter = null;
        var ph = new byte[phentsize];
        for (var i = 0; i < phnum; i++)
        {
            if (!ReadExactly(read, phoff + (long)i * phentsize, ph))
                return null;
            var type = f.U32(ph, 0);
            ulong offset, vaddr, filesz;
            if (is64)
                (offset, vaddr, filesz) = (f.U64(ph, 8), f.U64(ph, 16), f.U64(ph, 32));
            else
                (offset, vaddr, filesz) = (f.U32(ph, 4), f.U32(ph, 8), f.U32(ph, 16));
            if (type == PT_LOAD)
                loads.Add((vaddr, offset, filesz));
            else if (type == PT_DYNAMIC)
                dynamic = (offset, filesz);
            else if (type == PT_INTERP && filesz is > 1 and < 4096 && offset < long.MaxValue / 2)
            {
                var text = new byte[(int)filesz];
                if (!ReadExactly(read, (long)offset, text))
                    return null;
                interpreter = Encoding.UTF8.GetString(text.AsSpan().TrimEnd((byte)0));
            }
        }
        if (dynamic is not { } dyn)
            return ElfDynamic.Static with { Interpreter = interpreter };

        var entrySize = is64 ? 16 : 8;
        var count = (int)Math.Min(dyn.Size / (ulong)entrySize, MaxDynamicEntries);
        var entry = new byte[entrySize];
        var needed = new List<ulong>();
        ulong? strtab = null, runpath = null, rpath = null;
        ulong strsz = 0;
        for (var i = 0; i < count; i++)
        {
            if (dyn.Offset > long.MaxValue / 2 || !ReadExactly(read, (long)dyn.Offset + (long)i * entrySize, entry))
                return null;
            var tag = is64 ? (long)f.U64(entry, 0) : (int)f.U32(entry, 0);
            var val = is64 ? f.U64(entry, 8) : f.U32(entry, 4);
            if (tag == DT_NULL)
                break;
            if (tag == DT_NEEDED)
                needed.Add(val);
            else if (tag == DT_STRTAB)
                strtab = val;
            else if (tag == DT_STRSZ)
                strsz = val;
            else if (tag == DT_RUNPATH)
                runpath = val;
            else if (tag == DT_RPATH)
                rpath = val;
        }
        if (needed.Count == 0 && runpath is null && rpath is null)
            return ElfDynamic.Static with { Interpreter = interpreter };
        if (strtab is not { } strAddr || strsz == 0 || strsz > 64 << 20)
            return null;

        // DT_STRTAB is a virtual address: find the loaded segment that holds it.
        var seg = loads.FirstOrDefault(l => strAddr >= l.Vaddr && strAddr - l.Vaddr < l.Filesz);
        if (seg.Filesz == 0)
            return null;
        var strOffset = seg.Offset + (strAddr - seg.Vaddr);
        strsz = Math.Min(strsz, seg.Filesz - (strAddr - seg.Vaddr));
        if (strOffset > long.MaxValue / 2)
            return null;
        var strings = new byte[(int)strsz];
        if (!ReadExactly(read, (long)strOffset, strings))
            return null;

        string? StringAt(ulong at)
        {
            if (at >= strsz)
                return null;
            var rest = strings.AsSpan((int)at);
            var end = rest.IndexOf((byte)0);
            return end < 0 ? null : Encoding.UTF8.GetString(rest[..end]);
        }

        var names = new List<string>(needed.Count);
        foreach (var at in needed)
        {
            if (StringAt(at) is not { } name)
                return null;
            names.Add(name);
        }
        string? runpathText = null, rpathText = null;
        if (runpath is { } rp && (runpathText = StringAt(rp)) is null)
            return null;
        if (rpath is { } r && (rpathText = StringAt(r)) is null)
            return null;
        return new ElfDynamic(names, runpathText, rpathText, interpreter);
    }

    private static bool ReadExactly(ReadAt read, long offset, Span<byte> buffer)
    {
        if (offset < 0)
            return false;
        var done = 0;
        while (done < buffer.Length)
        {
            var n = read(offset + done, buffer[done..]);
            if (n <= 0)
                return false;
            done += n;
        }
        return true;
    }

    private readonly record struct Fields(bool Is64, bool Little)
    {
        public ushort U16(ReadOnlySpan<byte> b, int at) =>
            Little ? BinaryPrimitives.ReadUInt16LittleEndian(b[at..]) : BinaryPrimitives.ReadUInt16BigEndian(b[at..]);

        public uint U32(ReadOnlySpan<byte> b, int at) =>
            Little ? BinaryPrimitives.ReadUInt32LittleEndian(b[at..]) : BinaryPrimitives.ReadUInt32BigEndian(b[at..]);

        public ulong U64(ReadOnlySpan<byte> b, int at) =>
            Little ? BinaryPrimitives.ReadUInt64LittleEndian(b[at..]) : BinaryPrimitives.ReadUInt64BigEndian(b[at..]);

        /// <summary>An offset field (e_phoff): 8 bytes in ELF64, 4 in ELF32; negative if absurd.</summary>
        public long Addr(ReadOnlySpan<byte> b, int at)
        {
            var v = Is64 ? U64(b, at) : U32(b, at);
            return v > long.MaxValue / 2 ? -1 : (long)v;
        }
    }
}

/// <summary>What the dynamic loader reads from an ELF file: the libraries it names, where to look for
/// them (<c>DT_RUNPATH</c> wins over <c>DT_RPATH</c>, as in ld.so), and the loader itself.</summary>
internal sealed record ElfDynamic(IReadOnlyList<string> Needed, string? RunPath, string? RPath, string? Interpreter)
{
    public static readonly ElfDynamic Static = new([], null, null, null);
}
