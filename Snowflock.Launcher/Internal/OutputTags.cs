using System.Text;

namespace Snowflock.Launcher.Internal;

/// <summary>The prefix of each rank's stdout and stderr lines, in the dialect the user asked in:
/// hydra's <c>-l</c> gives <c>[r] </c> on both streams, Open MPI's <c>--tag-output</c> gives
/// <c>[1,r]&lt;stdout&gt;:</c> and <c>[1,r]&lt;stderr&gt;:</c> ("1" is mpirun's job number).</summary>
internal static class OutputTags
{
    public static (byte[]? Stdout, byte[]? Stderr) For(OutputOptions options, int rank)
    {
        if (!options.TagLines)
            return (null, null);
        if (!options.OpenMpiTags)
            return (LineForwarder.TagFor(rank), LineForwarder.TagFor(rank));
        return (Encoding.ASCII.GetBytes($"[1,{rank}]<stdout>:"), Encoding.ASCII.GetBytes($"[1,{rank}]<stderr>:"));
    }
}
