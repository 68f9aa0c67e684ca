using MPI;

namespace Snowflock.Mpi.DotNet.Internal;

/// <summary>MPI.NET builds an MPI datatype for <c>decimal</c> and for every struct it sends, caches
/// it for the life of the process and never frees it; MPICH then prints "[WARNING] yaksa: N leaked
/// handle pool objects" at <c>MPI_Finalize</c>. <see cref="Free"/> releases them just before.
/// Deriving from <c>DatatypeCache</c> is how its protected cache is reached.</summary>
internal sealed class CachedDatatypes : DatatypeCache
{
    private CachedDatatypes()
    {
    }

    /// <summary>The predefined datatypes MPI.NET puts in its cache; everything else in it was
    /// created by MPI.NET.</summary>
    private static readonly HashSet<int> Predefined =
    [
        Unsafe.MPI_CHAR, Unsafe.MPI_SIGNED_CHAR, Unsafe.MPI_UNSIGNED_CHAR, Unsafe.MPI_BYTE, Unsafe.MPI_WCHAR,
        Unsafe.MPI_SHORT, Unsafe.MPI_UNSIGNED_SHORT, Unsafe.MPI_INT, Unsafe.MPI_UNSIGNED, Unsafe.MPI_LONG,
        Unsafe.MPI_UNSIGNED_LONG, Unsafe.MPI_FLOAT, Unsafe.MPI_DOUBLE, Unsafe.MPI_LONG_DOUBLE,
        Unsafe.MPI_LONG_LONG_INT, Unsafe.MPI_UNSIGNED_LONG_LONG, Unsafe.MPI_PACKED, Unsafe.MPI_DATATYPE_NULL,
    ];

    /// <summary>Frees the datatypes MPI.NET created. Only between MPI_Init and MPI_Finalize; no
    /// MPI.NET call may send a cached struct type afterwards.</summary>
    public static void Free()
    {
        lock (cache)
        {
            foreach (var (type, datatype) in cache.ToArray())
            {
                if (Predefined.Contains(datatype))
                    continue;
                var handle = datatype;
                Unsafe.MPI_Type_free(ref handle);
                cache.Remove(type);
            }
        }
    }
}
