namespace Snowflock.Mpi.DotNet;

/// <summary>MPI.NET needs MPICH's shared library and none of the places tried had it.</summary>
public sealed class MpichNotFoundException : DllNotFoundException
{
    public MpichNotFoundException(IReadOnlyList<string> tried)
        : base($"MPI.NET needs MPICH's libmpich.so.12 (it imports msmpi.dll, mapped to MPICH on Linux); tried {string.Join(", ", tried)}. "
            + "Install MPICH (Debian/Ubuntu: apt-get install libmpich12) or put its lib directory on LD_LIBRARY_PATH. "
            + "Open MPI cannot stand in: its ABI differs from MS-MPI's, MPICH's does not.")
    {
        Tried = tried;
    }

    /// <summary>The library names and paths that did not load, in the order tried.</summary>
    public IReadOnlyList<string> Tried { get; }
}
