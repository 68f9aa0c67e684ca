using Snowflock.Engine;
using Snowflock.Launcher.Internal;

namespace Snowflock.Launcher;

/// <summary><c>sfrun warm create</c>: finds the program as a job would (PATH, current directory),
/// then makes the warm VM.</summary>
public static class WarmVmSetup
{
    /// <exception cref="ProgramNotFoundException">The program does not exist or cannot be executed.</exception>
    /// <exception cref="WarmVmCreateException">The warm VM cannot be made.</exception>
    public static WarmVmRecord Create(string name, string engine, string program, IReadOnlyList<string> arguments)
    {
        var executable = ProgramResolver.Resolve(program, Directory.GetCurrentDirectory(), Environment.GetEnvironmentVariable("PATH"));
        return WarmVms.Create(name, engine, executable, arguments);
    }

    /// <summary>The program's absolute path, found as a job finds it.</summary>
    /// <exception cref="ProgramNotFoundException">The program does not exist or cannot be executed.</exception>
    public static string Resolve(string program) =>
        ProgramResolver.Resolve(program, Directory.GetCurrentDirectory(), Environment.GetEnvironmentVariable("PATH"));
}
