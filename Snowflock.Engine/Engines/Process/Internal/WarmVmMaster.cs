using NLog;
using Snowflock.Engine.Internal;
using SysProcess = System.Diagnostics.Process;

namespace Snowflock.Engine.Engines.Process.Internal;

/// <summary>
/// Starts the long-lived master of a warm VM: the program with libsfwarm.so preloaded in listen
/// mode (<c>SFWARM_LISTEN</c>), which detaches itself (own session, stdin /dev/null, output to
/// its log), stops before <c>main()</c>, and serves every job that connects to its socket. The
/// same fork server as a job's own master, so clones behave the same.
/// </summary>
internal static class WarmVmMaster
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.WarmVms");

    /// <summary>The master's pid, once it listens and has answered one hello.</summary>
    /// <exception cref="WarmVmCreateException">It cannot be started, or did not become ready.</exception>
    public static int Start(string executable, IReadOnlyList<string> arguments, string socket, string log, TimeSpan within)
    {
        if (WarmEligibility.WhyNot(executable) is { } why)
            throw new WarmVmCreateException($"{executable} cannot be a warm master: {why}");
        var library = NativeHelpers.Find("libsfwarm.so")
            ?? throw new WarmVmCreateException("libsfwarm.so not found (set SFRUN_NATIVE_DIR, or build native/ with scripts/setup)");
        var psi = new System.Diagnostics.ProcessStartInfo(executable)
        {
            UseShellExecute = false,
            // Not sfrun's own stdio: a caller reading sfrun's output to its end must not wait for the master.
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in arguments)
            psi.ArgumentList.Add(a);
        foreach (var name in WarmMasters.PerRankVariables.Append("SFWARM_SOCKET"))
            psi.Environment.Remove(name);
        psi.Environment["SFWARM_PAD"] = new string('.', 4096);
        if (WarmProfile.PreloadList(WarmProfile.PathFor(executable)) is { Length: > 0 } preload)
            psi.Environment["SFWARM_PRELOAD"] = preload;
        // The master serves many jobs and its clones cannot load anything more, so libsfucx goes
        // in now, for any program (it acts only inside MPI_Finalize, see native/ucx/ucx.c).
        if (NativeHelpers.Find(NativeHelpers.UcxProgressLibrary) is { } ucx)
            library += ":" + ucx;
        // libsfinit likewise (native/init: Open MPI's PMI at MPI_Init, no silent singletons).
        if (NativeHelpers.Find(NativeHelpers.InitCheckLibrary) is { } init)
            library += ":" + init;
        psi.Environment["LD_PRELOAD"] = psi.Environment.TryGetValue("LD_PRELOAD", out var user) && user is { Length: > 0 } ? library + ":" + user : library;
        psi.Environment["SFWARM_LISTEN"] = socket;
        psi.Environment["SFWARM_LOG"] = log;

        SysProcess process;
        try
        {
            process = SysProcess.Start(psi) ?? throw new WarmVmCreateException($"{executable} did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new WarmVmCreateException($"cannot execute {executable}: {e.Message}");
        }
        using (process)
        {
            process.StandardInput.Close();
            var pid = process.Id;
            var deadline = DateTime.UtcNow + within;
            try
            {
                while (true)
                {
                    if (process.HasExited)
                        throw new WarmVmCreateException($"{executable} exited with code {process.ExitCode} before it became warm" + LogTail(log));
                    if (DateTime.UtcNow > deadline)
                        throw new WarmVmCreateException($"{executable} did not become warm within {within.TotalSeconds:0} s" + LogTail(log));
                    if (File.Exists(socket))
                    {
                        try
                        {
                            var (fd, _) = WarmMaster.Greet(socket, pid, WarmVms.AnswerWithin);
                            WarmSyscalls.Close(fd);
                            return pid;
                        }
                        catch (IOException)
                        {
                            // Bound but not listening yet.
                        }
                        catch (WarmUnavailableException e)
                        {
                            throw new WarmVmCreateException($"{executable} cannot be a warm master: {e.Message}");
                        }
                    }
                    Thread.Sleep(5);
                }
            }
            catch
            {
                Posix.TrySignal(pid, Signals.SIGKILL);
                process.WaitForExit();
                TryDelete(socket);
                TryDelete(log);
                throw;
            }
        }
    }

    private static string LogTail(string log)
    {
        try
        {
            var last = File.Exists(log) ? File.ReadLines(log).LastOrDefault(l => l.Trim().Length > 0) : null;
            return last is null ? "" : $": {last.Trim()}";
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException e)
        {
            Log.ForWarnEvent().Message("cannot remove {Path}: {Error}", path, e.Message).Property("EventName", "WarmVmFileLeft").Log();
        }
    }
}
