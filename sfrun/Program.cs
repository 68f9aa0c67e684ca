using System.Runtime.InteropServices;
using Snowflock.Cli;
using Snowflock.Cli.Commands;
using Snowflock.Cli.Logging;
using Snowflock.Engine;
using Snowflock.Engine.Guest;
using Snowflock.Launcher;

// sfrun's only job here: turn argv into a Job, run it, and turn every failure a user can meet
// into one line on stderr and an exit code (a stack trace only with -v).
const int UsageError = 2, ProgramMissing = 127, InputError = 1, InternalError = 255;
var verbosity = args.Contains("-v") || args.Contains("--verbose") || args.Contains("-vv") ? 1 : 0;
var stderr = Console.Error;
try
{
    if (ImageCommand.Selects(args))
    {
        LogSetup.Configure(verbosity, Environment.GetEnvironmentVariable("SFRUN_LOG"));
        return await ImageCommand.RunAsync(args, Console.Out, CancellationToken.None);
    }
    // Sub-commands: the first word selects one; everything else is an mpiexec command line.
    if (args is ["warm", .. var warmArgs])
        return await WarmCommand.RunAsync(warmArgs, Console.Out, CancellationToken.None);
    if (args is ["agent", .. var agentArgs])
    {
        LogSetup.Configure(agentArgs.Contains("-v") ? 1 : 0, Environment.GetEnvironmentVariable("SFRUN_LOG"));
        FileDescriptorLimit.RaiseToHard();
        return await AgentCommand.RunAsync(agentArgs, Console.In, Console.Error);
    }
    var invocation = SfrunCommandLine.Parse(args, Environment.GetEnvironmentVariable);
    verbosity = invocation.Verbosity;
    if (invocation.Engines)
    {
        foreach (var d in EngineCatalog.Detect())
            Console.Out.WriteLine($"{d.Name,-8} {(d.Usable ? "usable" : "unusable"),-9} {(d.Name == EngineCatalog.Default ? "(default) " : "")}{d.Why}");
        return 0;
    }
    if (invocation.Manual)
    {
        Console.Out.Write(ManPage.Render());
        return 0;
    }
    if (invocation.Help)
    {
        Console.Out.Write(HelpText.Usage());
        return 0;
    }
    if (invocation.Version)
    {
        Console.Out.WriteLine(HelpText.Version);
        return 0;
    }
    if (invocation.Info)
    {
        Console.Out.Write(JobDisplay.Info());
        return 0;
    }
    LogSetup.Configure(invocation.Verbosity, Environment.GetEnvironmentVariable("SFRUN_LOG"));

    var spec = invocation.Job!;
    // The timeline is written when the job ends; an unwritable path is said now, not lost then.
    if (spec.TimelinePath is { } timelinePath && TimelineCheck.WhyUnwritable(timelinePath) is { } why)
        throw new OutputPatternException($"--timeline {timelinePath}: cannot write: {why}");
    // mpirun prints these before the ranks start: the allocation and the map on stdout, the bindings on stderr.
    if (invocation.DisplayAllocation)
        Console.Out.Write(JobDisplay.Allocation(spec));
    if (invocation.DisplayMap)
        Console.Out.Write(JobDisplay.Map(spec));
    Console.Out.Flush();
    if (spec.ReportBindings)
        foreach (var line in JobDisplay.Bindings(spec))
            stderr.WriteLine(line);
    // A job's fds (pipes and PMI of every rank) must not run into a soft limit of 1024; the ranks get it back.
    FileDescriptorLimit.RaiseToHard();
    var job = new Job(spec, Console.OpenStandardInput(), Console.OpenStandardOutput(), Console.OpenStandardError());
    var registrations = new List<PosixSignalRegistration>();
    foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT,
                 (PosixSignal)Signals.SIGUSR1, (PosixSignal)Signals.SIGUSR2 })
    {
        registrations.Add(PosixSignalRegistration.Create(signal, ctx =>
        {
            ctx.Cancel = true;
            job.Deliver(SignalNumber(ctx.Signal));
        }));
    }
    JobResult result;
    try
    {
        result = await job.RunAsync(CancellationToken.None);
    }
    finally
    {
        registrations.ForEach(r => r.Dispose());
    }
    if (spec.PrintAllExitCodes)
        for (var r = 0; r < result.Ranks.Count; r++)
            stderr.WriteLine($"sfrun: rank {r}: {result.Ranks[r]?.ToString() ?? "not started"}");
    if (result.Report is not null)
        stderr.WriteLine($"sfrun: {result.Report}");
    return result.ExitCode;
}
catch (Exception e) when (e is UsageException)
{
    return Fail(e, UsageError);
}
catch (Exception e) when (e is ProgramNotFoundException)
{
    return Fail(e, ProgramMissing);
}
catch (Exception e) when (e is OutputPatternException or PlacementException or EngineUnavailableException or CloneFailedException
    or GuestImageException or UserCacheException)
{
    return Fail(e, InputError);
}
catch (Exception e) when (e is WarmVmNotFoundException or WarmVmDeadException or WarmVmMismatchException or WarmVmCreateException)
{
    return Fail(e, InputError);
}
catch (Exception e)
{
    stderr.WriteLine($"sfrun: internal error: {e.Message}" + (verbosity > 0 ? "" : " (run with -v for details)"));
    if (verbosity > 0)
        stderr.WriteLine(e);
    return InternalError;
}
finally
{
    LogSetup.Shutdown();
}

int Fail(Exception e, int code)
{
    stderr.WriteLine($"sfrun: {e.Message}");
    if (verbosity > 0)
        stderr.WriteLine(e);
    return code;
}

static int SignalNumber(PosixSignal s) => s switch
{
    PosixSignal.SIGINT => Signals.SIGINT,
    PosixSignal.SIGTERM => Signals.SIGTERM,
    PosixSignal.SIGHUP => Signals.SIGHUP,
    PosixSignal.SIGQUIT => Signals.SIGQUIT,
    _ => (int)s,
};
