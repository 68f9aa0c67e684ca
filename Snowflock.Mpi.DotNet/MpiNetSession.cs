using MPI;
using Snowflock.Mpi.DotNet.Internal;

namespace Snowflock.Mpi.DotNet;

/// <summary>MPI started by <see cref="MpiNet.Start"/>. Dispose it at the end of <c>Main</c> (a
/// <c>using</c> declaration): it releases the datatypes MPI.NET built and cached, so MPICH does
/// not report them as leaked, and finalizes MPI.</summary>
public sealed class MpiNetSession : IDisposable
{
    private readonly MPI.Environment _environment;
    private bool _disposed;

    internal MpiNetSession(MPI.Environment environment) => _environment = environment;

    /// <summary><c>MPI_COMM_WORLD</c>, already using the JSON serializer.</summary>
    public Intracommunicator World => Communicator.world;

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (MPI.Environment.Finalized)
            return;
        CachedDatatypes.Free();
        _environment.Dispose();
    }
}
