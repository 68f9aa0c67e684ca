using System.Globalization;

namespace Snowflock.Engine.Engines.Xen.Internal;

/// <summary>MACs for clones, in Xen's own OUI (00:16:3e) with the job and clone in the low bytes,
/// so two jobs on one bridge differ and a MAC names its clone in a packet dump.</summary>
internal static class MacAddress
{
    public static string For(int jobTag, int cloneId)
    {
        if (cloneId is < 0 or > 0xFFF)
            throw new ArgumentOutOfRangeException(nameof(cloneId), "at most 4096 clones per job");
        var low = ((jobTag & 0xFFF) << 12) | cloneId;
        return string.Create(CultureInfo.InvariantCulture, $"00:16:3e:{(low >> 16) & 0xFF:x2}:{(low >> 8) & 0xFF:x2}:{low & 0xFF:x2}");
    }
}
