using System.Text;

namespace Snowflock.Engine.Engines.Qemu.Internal;

/// <summary>QEMU sent something that is not QMP (or not the QMP this client knows).</summary>
internal sealed class QmpProtocolException(string message) : Exception(message)
{
    private const int Shown = 200;

    public QmpProtocolException(string what, ReadOnlySpan<byte> line)
        : this($"QMP: {what}: {Show(line)}")
    {
    }

    private static string Show(ReadOnlySpan<byte> line)
    {
        var text = Encoding.UTF8.GetString(line[..Math.Min(line.Length, Shown)]);
        return line.Length > Shown ? text + "..." : text;
    }
}

/// <summary>QEMU refused a command; <see cref="ErrorClass"/> and <see cref="Description"/> are QMP's own.</summary>
internal sealed class QmpCommandException(string command, string errorClass, string description)
    : Exception($"QMP {command}: {description} ({errorClass})")
{
    public string Command { get; } = command;
    public string ErrorClass { get; } = errorClass;
    public string Description { get; } = description;
}

/// <summary>The QMP socket closed (QEMU exited or the client was disposed) before the answer came.</summary>
internal sealed class QmpConnectionClosedException(string message, Exception? inner = null) : Exception(message, inner);
