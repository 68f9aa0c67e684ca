using System.Text;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Unit;

/// <summary>A QMP session recorded from the real qemu-system-x86_64 7.2 of these machines by
/// TestData/qmp/capture.py: "&gt; " lines were sent to QEMU, "&lt; " lines came back.</summary>
internal static class QmpTranscript
{
    public static readonly string File = Path.Combine(Repo.Root, "tests", "Snowflock.Tests", "TestData", "qmp", "qemu-7.2-session.txt");

    private static readonly string[] Lines = System.IO.File.ReadAllLines(File);

    /// <summary>Every line QEMU sent, as bytes.</summary>
    public static IReadOnlyList<byte[]> FromQemu =>
        Lines.Where(l => l.StartsWith("< ", StringComparison.Ordinal)).Select(l => Encoding.UTF8.GetBytes(l[2..])).ToList();

    /// <summary>Every line sent to QEMU.</summary>
    public static IReadOnlyList<string> ToQemu =>
        Lines.Where(l => l.StartsWith("> ", StringComparison.Ordinal)).Select(l => l[2..]).ToList();
}
