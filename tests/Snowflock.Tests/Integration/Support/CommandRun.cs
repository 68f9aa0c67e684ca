using System.Diagnostics;
using System.Text;

namespace Snowflock.Tests.Integration.Support;

/// <summary>A finished command: exit code and raw output bytes.</summary>
internal sealed record CommandResult(int ExitCode, byte[] Stdout, byte[] Stderr)
{
    public string Out => Encoding.UTF8.GetString(Stdout);
    public string Err => Encoding.UTF8.GetString(Stderr);
    public string[] OutLines => Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
}

/// <summary>Runs a command as a user would in a shell, with a hard bound so a hang fails the test
/// instead of stalling the suite. Environment overrides are added to the test's own environment.</summary>
internal sealed class CommandRun : IAsyncDisposable
{
    public static readonly TimeSpan DefaultBound = TimeSpan.FromSeconds(120);

    private readonly Process _process;
    private readonly Task<byte[]> _stdout;
    private readonly Task<byte[]> _stderr;
    private readonly StringBuilder _seen = new();
    private readonly StringBuilder _stderrSeen = new();
    private readonly SemaphoreSlim _lineArrived = new(0);

    private CommandRun(Process process, bool watchLines)
    {
        _process = process;
        _stdout = watchLines ? WatchAsync(process.StandardOutput.BaseStream) : ReadAllAsync(process.StandardOutput.BaseStream);
        _stderr = watchLines ? WatchStderrAsync(process.StandardError.BaseStream) : ReadAllAsync(process.StandardError.BaseStream);
    }

    public int Pid => _process.Id;

    public static CommandRun Start(string file, IEnumerable<string> args, IDictionary<string, string>? env = null,
        string? workingDirectory = null, bool watchLines = false)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Repo.Root,
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
            psi.Environment[k] = v;
        return new CommandRun(Process.Start(psi)!, watchLines);
    }

    public static async Task<CommandResult> RunAsync(string file, IEnumerable<string> args, byte[]? stdin = null,
        IDictionary<string, string>? env = null, string? workingDirectory = null, TimeSpan? bound = null)
    {
        await using var run = Start(file, args, env, workingDirectory);
        await run.WriteStdinAsync(stdin ?? []);
        return await run.WaitAsync(bound ?? DefaultBound);
    }

    public static Task<CommandResult> SfrunAsync(params string[] args) => RunAsync(Repo.Sfrun, args);

    public async Task WriteStdinAsync(byte[] bytes)
    {
        try
        {
            await _process.StandardInput.BaseStream.WriteAsync(bytes);
            _process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The command exited without reading all of its stdin; its result says what happened.
        }
    }

    public async Task<CommandResult> WaitAsync(TimeSpan bound)
    {
        using var cts = new CancellationTokenSource(bound);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{_process.StartInfo.FileName} {string.Join(' ', _process.StartInfo.ArgumentList)} did not end within {bound}");
        }
        return new CommandResult(_process.ExitCode, await _stdout, await _stderr);
    }

    /// <summary>Waits until stdout so far holds <paramref name="count"/> lines containing <paramref name="text"/>.</summary>
    public async Task WaitForLinesAsync(string text, int count, TimeSpan bound)
    {
        using var cts = new CancellationTokenSource(bound);
        while (true)
        {
            lock (_seen)
                if (CountOf(_seen.ToString(), text) >= count)
                    return;
            try
            {
                // A command that has ended prints no more: fail at once, with what it said on stderr.
                if (await Task.WhenAny(_lineArrived.WaitAsync(cts.Token), _process.WaitForExitAsync(cts.Token)) is var done
                    && done.IsCompletedSuccessfully && _process.HasExited)
                {
                    // What it printed last may still be in the pipe: wait for the reader to reach its end.
                    await Task.WhenAny(_stdout, Task.Delay(TimeSpan.FromSeconds(10)));
                    lock (_seen)
                        if (CountOf(_seen.ToString(), text) >= count)
                            return;
                    throw new InvalidOperationException($"the command ended (exit code {_process.ExitCode}) before {count} lines with '{text}'; "
                        + $"stdout: {Seen()}; stderr: {(_stderr.IsCompleted ? Encoding.UTF8.GetString(await _stderr) : "")}");
                }
                await done;
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"waited {bound} for {count} lines with '{text}'; got: {Seen()}");
            }
        }
    }

    private string Seen()
    {
        lock (_seen)
            return _seen.ToString();
    }

    private static int CountOf(string s, string text) => s.Split('\n').Count(l => l.Contains(text));

    private async Task<byte[]> WatchAsync(Stream s)
    {
        var all = new MemoryStream();
        var buf = new byte[8192];
        int n;
        while ((n = await s.ReadAsync(buf)) > 0)
        {
            all.Write(buf, 0, n);
            lock (_seen)
                _seen.Append(Encoding.UTF8.GetString(buf, 0, n));
            _lineArrived.Release();
        }
        return all.ToArray();
    }

    /// <summary>What the command wrote to stdout so far (only with watchLines).</summary>
    public string OutSoFar
    {
        get
        {
            lock (_seen)
                return _seen.ToString();
        }
    }

    /// <summary>What the command wrote to stderr so far (only with watchLines).</summary>
    public string StderrSoFar
    {
        get
        {
            lock (_stderrSeen)
                return _stderrSeen.ToString();
        }
    }

    private async Task<byte[]> WatchStderrAsync(Stream s)
    {
        var all = new MemoryStream();
        var buf = new byte[8192];
        int n;
        while ((n = await s.ReadAsync(buf)) > 0)
        {
            all.Write(buf, 0, n);
            lock (_stderrSeen)
                _stderrSeen.Append(Encoding.UTF8.GetString(buf, 0, n));
        }
        return all.ToArray();
    }

    private static async Task<byte[]> ReadAllAsync(Stream s)
    {
        var all = new MemoryStream();
        await s.CopyToAsync(all);
        return all.ToArray();
    }

    public void Signal(int signal) => Posix.Kill(_process.Id, signal);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}

internal static partial class Posix
{
    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill")]
    public static partial int Kill(int pid, int signal);
}
