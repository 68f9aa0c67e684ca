using System.Collections.Concurrent;
using System.Diagnostics;
using SysProcess = System.Diagnostics.Process;

namespace Snowflock.Engine.Internal;

/// <summary>
/// Starts ranks cold (exec'd, not forked from a warm master) so that they die with sfrun even
/// when sfrun is SIGKILLed: through native/warm's sfwarm-exec, which sets PR_SET_PDEATHSIG before
/// exec'ing the program. The kernel sends that signal when the parent *thread* ends, and .NET
/// forks on the calling thread, so every start happens on one dedicated thread that lives as
/// long as sfrun. Without sfwarm-exec, ranks start directly (and outlive a SIGKILLed sfrun).
/// </summary>
internal static class ColdStarter
{
    private static readonly string? Guard = NativeHelpers.Find("sfwarm-exec");
    private static readonly BlockingCollection<(ProcessStartInfo Psi, int InheritFd, TaskCompletionSource<SysProcess?> Done)> Requests = new();
    private static readonly Lazy<Thread> Starter = new(() =>
    {
        var thread = new Thread(Serve) { IsBackground = true, Name = "sfrun cold rank starter" };
        thread.Start();
        return thread;
    });

    /// <summary>True when starts go through sfwarm-exec (which can also restore the rank's fd limit).</summary>
    public static bool Guarded => Guard is not null;

    /// <summary>A start of <paramref name="executable"/>, through the guard when there is one.</summary>
    public static ProcessStartInfo StartInfo(string executable, IEnumerable<string> arguments)
    {
        var psi = new ProcessStartInfo(Guard ?? executable);
        if (Guard is not null)
        {
            psi.ArgumentList.Add(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            psi.ArgumentList.Add(executable);
        }
        foreach (var arg in arguments)
            psi.ArgumentList.Add(arg);
        return psi;
    }

    /// <param name="inheritFd">An fd the program inherits at its own number (the rank's PMI_FD),
    /// or -1. It is close-on-exec everywhere but for the one start that hands it on, so no other
    /// child of sfrun gets a copy (starts are serialised on this thread; a copy in a sibling
    /// would keep the rank's PMI connection open after the rank died).</param>
    public static Task<SysProcess?> StartAsync(ProcessStartInfo psi, int inheritFd = -1)
    {
        _ = Starter.Value;
        var done = new TaskCompletionSource<SysProcess?>(TaskCreationOptions.RunContinuationsAsynchronously);
        Requests.Add((psi, inheritFd, done));
        return done.Task;
    }

    private static void Serve()
    {
        foreach (var (psi, inheritFd, done) in Requests.GetConsumingEnumerable())
        {
            try
            {
                if (inheritFd >= 0)
                    Posix.SetCloseOnExec(inheritFd, on: false);
                try
                {
                    done.SetResult(SysProcess.Start(psi));
                }
                finally
                {
                    if (inheritFd >= 0)
                        Posix.SetCloseOnExec(inheritFd, on: true);
                }
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        }
    }
}
