using System.Globalization;
using System.Text.Json;
using NLog;
using Snowflock.Engine.Engines.Process.Internal;
using Snowflock.Engine.Internal;
using Snowflock.Engine.Warm.Internal;

namespace Snowflock.Engine;

/// <summary>
/// Warm VMs: warm masters kept alive between jobs under a name (<c>sfrun warm create|list|rm</c>,
/// <c>sfrun --vm NAME</c>). Each is a long-lived detached master with a control socket and a small
/// record, both in <see cref="Directory"/>: NAME.sock, NAME.json, and NAME.log (the master's own
/// output). Only the process engine has them so far.
/// </summary>
public static class WarmVms
{
    private static readonly Logger Log = LogManager.GetLogger("Snowflock.Engine.WarmVms");

    /// <summary>How long a new master may take to load the program and start listening.</summary>
    private static readonly TimeSpan ReadyWithin = TimeSpan.FromSeconds(10);

    /// <summary>How long a master may take to answer on its socket.</summary>
    internal static readonly TimeSpan AnswerWithin = TimeSpan.FromSeconds(5);

    /// <summary>The per-user folder's warm/ (<see cref="PrivateDirectory.PerUser"/>), made 0700 and checked ours.</summary>
    public static string Directory
    {
        get
        {
            try
            {
                var warm = Path.Combine(PrivateDirectory.PerUser, "warm");
                PrivateDirectory.Ensure(warm);
                return warm;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new WarmVmCreateException($"warm VM directory: {e.Message}");
            }
        }
    }

    /// <summary>Letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64.</summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= 64 && char.IsAsciiLetterOrDigit(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    /// <summary>Starts a warm master of <paramref name="executable"/> that stays until <see cref="Remove"/>.
    /// It gets sfrun's environment (each job's ranks then get their own) and directory.</summary>
    public static WarmVmRecord Create(string name, string engine, string executable, IReadOnlyList<string> arguments)
    {
        if (!IsValidName(name))
            throw new WarmVmCreateException($"'{name}' is not a valid warm VM name: use letters, digits, '.', '_' and '-' (at most 64)");
        if (engine != "process")
        {
            if (!EngineCatalog.Names.Contains(engine))
                throw new EngineUnavailableException($"unknown engine '{engine}'; choose one of: {string.Join(", ", EngineCatalog.Names)}");
            throw new EngineUnavailableException($"{engine} engine: warm VMs are not available on it in this build of sfrun; use --engine process");
        }
        var dir = Directory;
        var paths = PathsOf(dir, name);
        if (Read(paths.Record) is { } old)
        {
            if (IsAlive(old))
                throw new WarmVmCreateException($"warm VM '{name}' already exists (pid {old.Pid}); remove it first with 'sfrun warm rm {name}'");
            Log.ForDebugEvent().Message("warm VM {Vm}: replacing the record of dead master {Pid}", name, old.Pid)
                .Property("EventName", "WarmVmReplaced").Log();
            DeleteFiles(paths);
        }
        else if (File.Exists(paths.Socket))
            DeleteFiles(paths);
        var info = new FileInfo(executable);
        var pid = WarmVmMaster.Start(executable, arguments, paths.Socket, paths.Log, ReadyWithin);
        var record = new WarmVmRecord
        {
            Name = name,
            Engine = engine,
            Program = executable,
            Arguments = [.. arguments],
            ProgramSize = info.Length,
            ProgramModifiedUtc = info.LastWriteTimeUtc,
            Pid = pid,
            PidStartTime = StartTime(pid) ?? 0,
            CreatedUtc = DateTime.UtcNow,
            Socket = paths.Socket,
        };
        var temp = paths.Record + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(record, WarmVmJson.Default.WarmVmRecord));
        File.Move(temp, paths.Record, overwrite: true);
        Log.ForDebugEvent().Message("warm VM {Vm}: master {Pid} of {Program} is ready", name, pid, executable)
            .Property("EventName", "WarmVmCreated").Log();
        return record;
    }

    /// <summary>Every warm VM, by name, with its state.</summary>
    public static IReadOnlyList<WarmVmStatus> List()
    {
        var dir = Directory;
        var list = new List<WarmVmStatus>();
        foreach (var file in System.IO.Directory.EnumerateFiles(dir, "*.json").Order(StringComparer.Ordinal))
        {
            if (Read(file) is not { } record)
                continue;
            var alive = IsAlive(record);
            var stats = alive ? WarmMaster.Query(record.Socket, record.Pid, AnswerWithin) : null;
            list.Add(new WarmVmStatus(record, alive, stats?.JobsServed, stats?.Clones));
        }
        return list;
    }

    /// <exception cref="WarmVmNotFoundException">There is none of that name.</exception>
    public static WarmVmRecord Find(string name)
    {
        if (!IsValidName(name))
            throw new WarmVmNotFoundException($"no warm VM named '{name}' ('sfrun warm list' shows them)");
        return Read(PathsOf(Directory, name).Record)
            ?? throw new WarmVmNotFoundException($"no warm VM named '{name}'; create it with 'sfrun warm create {name} ./app' ('sfrun warm list' shows them)");
    }

    /// <summary>The warm VM a job will fork from, checked: the program is the one it holds and was
    /// not rebuilt since, and the master is alive.</summary>
    public static WarmVmRecord ForJob(string name, string executable, IReadOnlyList<string> arguments)
    {
        var record = Find(name);
        if (!string.Equals(Path.GetFullPath(executable), record.Program, StringComparison.Ordinal))
            throw new WarmVmMismatchException($"warm VM '{name}' holds {record.Program}, not {executable}; omit the program after --vm, or create a warm VM of it");
        if (!arguments.SequenceEqual(record.Arguments, StringComparer.Ordinal))
            throw new WarmVmMismatchException($"warm VM '{name}' holds {record.Program} with arguments [{string.Join(' ', record.Arguments)}], "
                + $"not [{string.Join(' ', arguments)}]; a warm master's argv is fixed when it is created");
        var info = new FileInfo(record.Program);
        if (!info.Exists || info.Length != record.ProgramSize || info.LastWriteTimeUtc != record.ProgramModifiedUtc)
            throw new WarmVmMismatchException($"warm VM '{name}': {record.Program} was "
                + (info.Exists ? "rebuilt" : "removed") + $" since the warm VM was created; run 'sfrun warm rm {name}' and create it again");
        if (!IsAlive(record))
            throw new WarmVmDeadException(DeadMessage(record));
        return record;
    }

    internal static string DeadMessage(WarmVmRecord record) =>
        $"warm VM '{record.Name}' is dead (its master, pid {record.Pid}, is gone); run 'sfrun warm rm {record.Name}' and create it again";

    /// <summary>Kills the master (its clones die with it) and removes socket, record and log.</summary>
    public static void Remove(string name)
    {
        var record = Find(name);
        Kill(record);
        DeleteFiles(PathsOf(Directory, name));
        Log.ForDebugEvent().Message("warm VM {Vm} removed", name).Property("EventName", "WarmVmRemoved").Log();
    }

    /// <summary>Removes every warm VM; returns their names.</summary>
    public static IReadOnlyList<string> RemoveAll()
    {
        var names = new List<string>();
        foreach (var status in List())
        {
            Remove(status.Record.Name);
            names.Add(status.Record.Name);
        }
        // Leftovers of a create that died half-way: a socket or log without a record.
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory))
            if (!File.Exists(Path.ChangeExtension(file, ".json")))
                TryDelete(file);
        return names;
    }

    private static void Kill(WarmVmRecord record)
    {
        if (!IsAlive(record))
            return;
        Posix.TrySignal(record.Pid, Signals.SIGKILL);
        // Not our child: wait until the kernel says it is gone (or a zombie its reaper has not reaped).
        var deadline = DateTime.UtcNow + AnswerWithin;
        while (IsAlive(record) && DateTime.UtcNow < deadline)
            Thread.Sleep(5);
    }

    /// <summary>Whether the record's master still runs: its pid exists, is no zombie, and started
    /// when the master did (a pid the kernel reused for another process is not it).</summary>
    public static bool IsAlive(WarmVmRecord record) =>
        ProcStat(record.Pid) is { } stat && stat.State != 'Z' && stat.StartTime == record.PidStartTime;

    private static long? StartTime(int pid) => ProcStat(pid)?.StartTime;

    private static (char State, long StartTime)? ProcStat(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // After the parenthesised command name: field 3 (state) ... field 22 (starttime).
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields.Length > 19 ? (fields[0][0], long.Parse(fields[19], CultureInfo.InvariantCulture)) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    private sealed record Paths(string Record, string Socket, string Log);

    private static Paths PathsOf(string dir, string name) =>
        new(Path.Combine(dir, name + ".json"), Path.Combine(dir, name + ".sock"), Path.Combine(dir, name + ".log"));

    private static WarmVmRecord? Read(string path)
    {
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize(File.ReadAllText(path), WarmVmJson.Default.WarmVmRecord) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            Log.ForWarnEvent().Message("ignoring unreadable warm VM record {Path}: {Error}", path, e.Message)
                .Property("EventName", "WarmVmRecordUnreadable").Log();
            return null;
        }
    }

    private static void DeleteFiles(Paths paths)
    {
        TryDelete(paths.Socket);
        TryDelete(paths.Log);
        TryDelete(paths.Record);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.ForWarnEvent().Message("cannot remove {Path}: {Error}", path, e.Message).Property("EventName", "WarmVmFileLeft").Log();
        }
    }
}
