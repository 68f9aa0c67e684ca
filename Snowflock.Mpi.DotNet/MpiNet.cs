using MPI;
using Snowflock.Mpi.DotNet.Internal;

namespace Snowflock.Mpi.DotNet;

/// <summary>Makes an MPI.NET 1.4.0 program run on Linux with MPICH, under <c>sfrun</c> and under
/// <c>mpiexec</c>. The one call a program makes, first thing in <c>Main</c>:
/// <code>
/// using var mpi = MpiNet.Start(ref args);
/// var world = mpi.World;
/// </code></summary>
public static class MpiNet
{
    /// <summary>Starts MPI the way <c>new MPI.Environment(ref args, threading)</c> does, after
    /// <see cref="UseMpich"/>, and gives <c>Communicator.world</c> and <c>Communicator.self</c> the
    /// System.Text.Json serializer. An unhandled exception on any rank then aborts the job (exit
    /// code 1) instead of leaving the other ranks waiting. Disposing the session finalizes MPI.</summary>
    public static MpiNetSession Start(ref string[] args, Threading threading = Threading.Serialized)
    {
        UseMpich();
        AbortOnUnhandledException.Install();
        var environment = new MPI.Environment(ref args, threading);
        Communicator.world.UseJsonSerializer();
        Communicator.self.UseJsonSerializer();
        return new MpiNetSession(environment);
    }

    /// <summary>Resolves MPI.NET's <c>msmpi.dll</c> to MPICH's <c>libmpich.so.12</c> (Linux only;
    /// elsewhere MPI.NET keeps loading MS-MPI). Call before the first MPI.NET call; for programs
    /// that create <c>MPI.Environment</c> themselves. Calling it again does nothing.</summary>
    /// <exception cref="MpichNotFoundException">at the first MPI.NET call, when no MPICH library loads.</exception>
    public static void UseMpich() => MpichLibraryResolver.Install();

    /// <summary>Sends the non-primitive messages of <paramref name="communicator"/> as JSON
    /// (<see cref="JsonMessageSerializer.Default"/>). MPI.NET gives every new communicator
    /// (<c>Split</c>, <c>Create</c>, a <c>Clone</c>) BinaryFormatter, which .NET 10 no longer has:
    /// call this on each one that carries objects. Every rank of a communicator must use the same
    /// serializer.</summary>
    public static T UseJsonSerializer<T>(this T communicator) where T : Communicator
    {
        ArgumentNullException.ThrowIfNull(communicator);
        communicator.Serialization.Serializer = JsonMessageSerializer.Default;
        return communicator;
    }
}
