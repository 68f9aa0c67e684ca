using MPI;

namespace Snowflock.Mpi.DotNet.Internal;

/// <summary>Ends the whole job when a rank dies of an unhandled exception. .NET runs the finally
/// blocks of an unhandled exception, so the session's Dispose would call MPI_Finalize, which waits
/// for ranks that are themselves waiting for this one: the job would hang instead of failing.
/// MPI.NET's own <c>Environment.Run</c> aborts the same way (exit code 1).</summary>
internal static class AbortOnUnhandledException
{
    public const int ExitCode = 1;

    private static int _installed;

    public static void Install()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 0)
            AppDomain.CurrentDomain.UnhandledException += OnUnhandledException;
    }

    private static void OnUnhandledException(object sender, UnhandledExceptionEventArgs e)
    {
        if (!MPI.Environment.Initialized || MPI.Environment.Finalized)
            return;
        var rank = Communicator.world?.Rank;
        Console.Out.Flush();
        Console.Error.WriteLine($"rank {rank}: unhandled exception, aborting the MPI job: {e.ExceptionObject}");
        Console.Error.Flush();
        MPI.Environment.Abort(ExitCode);
    }
}
