using System.Runtime.InteropServices;

namespace Snowflock.Engine;

/// <summary>
/// Words for a failed file operation that a user reads. sfrun is published with NativeAOT, which
/// strips .NET's resource strings: an exception's Message is then a key such as
/// <c>IO_FileNotFound_FileName, /path</c>. Every message that can name a file error is built here
/// instead, from the exception's type and, for other I/O errors, the errno .NET keeps in HResult.
/// </summary>
public static partial class IoMessages
{
    [LibraryImport("libc", EntryPoint = "strerror")]
    private static partial IntPtr StrError(int errno);

    /// <summary>"no such file or directory", "permission denied", ... (lower case, as strerror's but
    /// without its capital), for <paramref name="e"/> raised by an operation on a path.</summary>
    public static string Describe(Exception e) => e switch
    {
        FileNotFoundException => "no such file or directory",
        DirectoryNotFoundException => "no such file or directory (a folder on the way is missing)",
        UnauthorizedAccessException => "permission denied",
        PathTooLongException => "file name too long",
        IOException io when io.HResult > 0 && io.HResult < 4096 => Errno(io.HResult),
        ArgumentException or NotSupportedException => "not a valid path",
        _ => "input/output error",
    };

    /// <summary>As <see cref="Describe(Exception)"/>, for an operation on <paramref name="path"/>: reading a
    /// folder as a file fails with UnauthorizedAccessException in .NET, which is no permission problem.</summary>
    public static string Describe(Exception e, string path) =>
        e is UnauthorizedAccessException && Directory.Exists(path) ? "is a directory" : Describe(e);

    /// <summary>strerror(errno) in lower case, as the rest of sfrun's messages.</summary>
    public static string Errno(int errno)
    {
        var text = OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() ? Marshal.PtrToStringUTF8(StrError(errno)) : null;
        return string.IsNullOrEmpty(text) ? $"error {errno}" : char.ToLowerInvariant(text[0]) + text[1..];
    }
}
