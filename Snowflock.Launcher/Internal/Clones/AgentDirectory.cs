using Snowflock.Engine.Internal;

namespace Snowflock.Launcher.Internal.Clones;

/// <summary>
/// The job's private folder for the agent socket: a fresh 0700 <c>sf-JOB-XXXXXX</c> in the
/// per-user folder (<see cref="PrivateDirectory.PerUser"/>), so only the user's own processes can
/// connect and no other user can make, rename or swap it. Teardown removes it; folders of jobs
/// whose sfrun died (SIGKILL) are swept by the next job, as their names carry sfrun's pid.
/// </summary>
internal static class AgentDirectory
{
    private const string Prefix = "sf-";

    /// <exception cref="IOException">The per-user folder is unsafe or the folder cannot be made.</exception>
    public static string Create(string jobId)
    {
        if (!OperatingSystem.IsLinux())
            throw new IOException("the clone agent needs Linux");
        var parent = PrivateDirectory.PerUser;
        PrivateDirectory.SweepDeadJobs(parent, Prefix);
        return PrivateDirectory.CreateUnique(parent, $"{Prefix}{jobId}-");
    }

    public static void Remove(string dir)
    {
        try
        {
            SafeTree.Delete(dir);
        }
        catch (IOException)
        {
            // Left for the next job's sweep.
        }
    }
}
