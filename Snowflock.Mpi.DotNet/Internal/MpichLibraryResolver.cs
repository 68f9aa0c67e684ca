using System.Reflection;
using System.Runtime.InteropServices;
using MPI;

namespace Snowflock.Mpi.DotNet.Internal;

/// <summary>Answers MPI.NET's <c>[DllImport("msmpi.dll")]</c> with MPICH. MPI.NET 1.4.0 is built
/// against MS-MPI, which descends from MPICH and keeps its ABI: the same integer handles
/// (<c>MPI_COMM_WORLD</c> 0x44000000, <c>MPI_INT</c> 0x4c000405, ...), the same five-int
/// <c>MPI_Status</c>, and the MPI-1 functions MPI.NET calls (<c>MPI_Type_struct</c>,
/// <c>MPI_Attr_get</c>, ...) still exported by libmpich.so.12.</summary>
internal static class MpichLibraryResolver
{
    private static readonly Lock Gate = new();
    private static bool _installed;
    private static IntPtr _handle;

    /// <summary>Where MPICH is looked for, in order: the dynamic loader's own search first (so
    /// LD_LIBRARY_PATH can pick a site's MPICH), then the paths distributions install it at.</summary>
    public static IReadOnlyList<string> Candidates { get; } = BuildCandidates(RuntimeInformation.ProcessArchitecture);

    internal static IReadOnlyList<string> BuildCandidates(Architecture architecture)
    {
        var list = new List<string> { "libmpich.so.12" };
        var multiarch = architecture switch
        {
            Architecture.X64 => "x86_64-linux-gnu",
            Architecture.Arm64 => "aarch64-linux-gnu",
            Architecture.Ppc64le => "powerpc64le-linux-gnu",
            Architecture.RiscV64 => "riscv64-linux-gnu",
            _ => null,
        };
        if (multiarch is not null)
            list.Add($"/usr/lib/{multiarch}/libmpich.so.12");
        list.Add("/usr/lib64/mpich/lib/libmpich.so.12");
        list.Add("libmpich.so");
        return list;
    }

    public static void Install()
    {
        if (!OperatingSystem.IsLinux())
            return;
        lock (Gate)
        {
            if (_installed)
                return;
            NativeLibrary.SetDllImportResolver(typeof(Communicator).Assembly, Resolve);
            _installed = true;
        }
    }

    /// <summary>True for the library names MPI.NET imports.</summary>
    public static bool IsMsMpi(string libraryName) =>
        libraryName.Equals("msmpi.dll", StringComparison.OrdinalIgnoreCase)
        || libraryName.Equals("msmpi", StringComparison.OrdinalIgnoreCase);

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (!IsMsMpi(libraryName))
            return IntPtr.Zero;
        lock (Gate)
        {
            if (_handle == IntPtr.Zero)
                _handle = Load(Candidates);
            return _handle;
        }
    }

    /// <summary>The first candidate that loads.</summary>
    /// <exception cref="MpichNotFoundException">none does.</exception>
    internal static IntPtr Load(IReadOnlyList<string> candidates)
    {
        foreach (var candidate in candidates)
            if (NativeLibrary.TryLoad(candidate, out var handle))
                return handle;
        throw new MpichNotFoundException(candidates);
    }
}
