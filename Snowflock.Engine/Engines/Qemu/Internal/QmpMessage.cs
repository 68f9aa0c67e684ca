using System.Text.Json;
using System.Text.Unicode;

namespace Snowflock.Engine.Engines.Qemu.Internal;

/// <summary>
/// One line QEMU sends on its QMP socket (docs/interop/qmp-spec.rst): the greeting, a command's
/// return value or error, or an asynchronous event. <see cref="Parse"/> is the only place QMP JSON
/// is read; anything it does not recognise is a <see cref="QmpProtocolException"/>.
/// </summary>
internal abstract record QmpMessage
{
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 64 };

    /// <summary>Parses one line (without its newline). Pure; throws only <see cref="QmpProtocolException"/>.</summary>
    public static QmpMessage Parse(ReadOnlySpan<byte> line)
    {
        // JsonDocument checks UTF-8 only when a string is read; QEMU sends UTF-8 or nothing.
        if (!Utf8.IsValid(line))
            throw new QmpProtocolException("not UTF-8", line);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line.ToArray(), Options);
        }
        catch (JsonException e)
        {
            throw new QmpProtocolException($"not JSON: {e.Message}", line);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new QmpProtocolException("not a JSON object", line);
            if (root.TryGetProperty("QMP", out var qmp))
                return ParseGreeting(qmp, line);
            var id = root.TryGetProperty("id", out var idElement) ? idElement.GetRawText() : null;
            if (root.TryGetProperty("return", out var value))
                return new QmpReturn(id, value.Clone());
            if (root.TryGetProperty("error", out var error))
            {
                if (error.ValueKind != JsonValueKind.Object || !TryString(error, "class", out var errorClass) || !TryString(error, "desc", out var desc))
                    throw new QmpProtocolException("an error without a class and desc string", line);
                return new QmpError(id, errorClass, desc);
            }
            if (root.TryGetProperty("event", out var name))
            {
                if (name.ValueKind != JsonValueKind.String)
                    throw new QmpProtocolException("an event whose name is not a string", line);
                if (!root.TryGetProperty("timestamp", out var ts) || ts.ValueKind != JsonValueKind.Object
                    || !ts.TryGetProperty("seconds", out var s) || !s.TryGetInt64(out var seconds)
                    || !ts.TryGetProperty("microseconds", out var us) || !us.TryGetInt64(out var micros)
                    || seconds is < 0 or > 253402300799 || micros is < 0 or > 999999)
                    throw new QmpProtocolException("an event without a valid timestamp", line);
                var data = root.TryGetProperty("data", out var d) ? d.Clone() : default;
                return new QmpEvent(name.GetString()!, data, DateTimeOffset.FromUnixTimeSeconds(seconds).AddTicks(micros * 10));
            }
            throw new QmpProtocolException("neither a greeting, a return, an error nor an event", line);
        }
    }

    private static QmpGreeting ParseGreeting(JsonElement qmp, ReadOnlySpan<byte> line)
    {
        if (qmp.ValueKind != JsonValueKind.Object
            || !qmp.TryGetProperty("version", out var version) || version.ValueKind != JsonValueKind.Object
            || !version.TryGetProperty("qemu", out var qemu) || qemu.ValueKind != JsonValueKind.Object
            || !TryInt(qemu, "major", out var major) || !TryInt(qemu, "minor", out var minor) || !TryInt(qemu, "micro", out var micro))
            throw new QmpProtocolException("a greeting without a QEMU version", line);
        var package = TryString(version, "package", out var p) ? p : "";
        var capabilities = new List<string>();
        if (qmp.TryGetProperty("capabilities", out var caps))
        {
            if (caps.ValueKind != JsonValueKind.Array)
                throw new QmpProtocolException("a greeting whose capabilities are not a list", line);
            foreach (var c in caps.EnumerateArray())
                capabilities.Add(c.ValueKind == JsonValueKind.String ? c.GetString()! : throw new QmpProtocolException("a capability that is not a string", line));
        }
        return new QmpGreeting(new Version(major, minor, micro), package, capabilities);
    }

    private static bool TryString(JsonElement o, string name, out string value)
    {
        value = "";
        if (!o.TryGetProperty(name, out var e) || e.ValueKind != JsonValueKind.String)
            return false;
        value = e.GetString()!;
        return true;
    }

    private static bool TryInt(JsonElement o, string name, out int value)
    {
        value = 0;
        return o.TryGetProperty(name, out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out value) && value >= 0;
    }
}

/// <summary>The first line of a session: QEMU's version and the optional capabilities it offers.</summary>
internal sealed record QmpGreeting(Version Version, string Package, IReadOnlyList<string> Capabilities) : QmpMessage;

/// <summary>A command succeeded. <paramref name="Id"/> is the raw JSON of the id the command carried, or null.</summary>
internal sealed record QmpReturn(string? Id, JsonElement Value) : QmpMessage;

/// <summary>A command failed: QMP's error class (GenericError, CommandNotFound, ...) and description.</summary>
internal sealed record QmpError(string? Id, string Class, string Description) : QmpMessage;

/// <summary>Something happened in QEMU (STOP, RESUME, MIGRATION, SHUTDOWN, ...); <paramref name="Data"/> is
/// undefined when the event has none.</summary>
internal sealed record QmpEvent(string Name, JsonElement Data, DateTimeOffset Timestamp) : QmpMessage;
