using System.Diagnostics;
using System.Text;

namespace Snowflock.Engine.Engines.Xen.Internal;

/// <summary>What one command in dom0 printed and how it ended.</summary>
internal sealed record Dom0Result(int ExitCode, string Stdout, string Stderr);

/// <summary>
/// Runs commands in dom0: directly when sfrun itself runs there, else through the real OpenSSH
/// client (<c>--xen-host user@host</c> or XEN_HOST), BatchMode so it never prompts, with the
/// user's own agent and keys; SFRUN_SSH_CONFIG adds an ssh_config file (the test host uses it
/// for its port, key and known host).
/// </summary>
internal sealed class Dom0Shell
{
    /// <summary>ssh's own status for "could not connect or authenticate".</summary>
    private const int SshFailed = 255;

    private readonly string? _sshDestination;
    private readonly string? _sshConfig;

    private Dom0Shell(string? sshDestination, string? sshConfig)
    {
        _sshDestination = sshDestination;
        _sshConfig = sshConfig;
    }

    public static Dom0Shell Local() => new(null, null);

    public static Dom0Shell OverSsh(string destination, string? sshConfig) => new(destination, sshConfig);

    /// <summary>For messages: "dom0 (local)" or "dom0 at user@host".</summary>
    public string Where => _sshDestination is null ? "dom0 (local)" : $"dom0 at {_sshDestination}";

    public bool Remote => _sshDestination is not null;

    /// <summary>Runs <paramref name="argv"/> in dom0 and waits for it, within <paramref name="bound"/>.
    /// An ssh that cannot reach dom0 is an <see cref="EngineUnavailableException"/>.</summary>
    public async Task<Dom0Result> RunAsync(IReadOnlyList<string> argv, TimeSpan bound, CancellationToken ct, Stream? stdin = null)
    {
        var psi = new ProcessStartInfo
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (_sshDestination is null)
        {
            psi.FileName = argv[0];
            foreach (var a in argv.Skip(1))
                psi.ArgumentList.Add(a);
        }
        else
        {
            psi.FileName = "ssh";
            foreach (var a in SshArguments(_sshDestination, _sshConfig, argv))
                psi.ArgumentList.Add(a);
        }

        using var process = new System.Diagnostics.Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new EngineUnavailableException(_sshDestination is null
                ? $"xen engine: cannot run {argv[0]}: {e.Message} (is this dom0 with xen-utils installed? else use --xen-host user@dom0)"
                : $"xen engine: cannot run ssh: {e.Message}; install openssh-client");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(bound);
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            if (stdin is not null)
                await stdin.CopyToAsync(process.StandardInput.BaseStream, timeout.Token);
            process.StandardInput.Close();
            await process.WaitForExitAsync(timeout.Token);
            var result = new Dom0Result(process.ExitCode, await stdout, await stderr);
            // 255 with nothing said is the remote command killed by a signal (ssh passes no
            // signal on); the caller sees it as a crash. ssh's own failures always say why.
            if (_sshDestination is not null && result.ExitCode == SshFailed && LooksLikeSshError(result.Stderr))
                throw new EngineUnavailableException($"xen engine: cannot reach {Where} with ssh: {FirstLine(result.Stderr)}");
            return result;
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            await process.WaitForExitAsync(CancellationToken.None);
            if (ct.IsCancellationRequested)
                throw;
            throw new TimeoutException($"{Quote(argv)} in {Where} did not finish within {bound.TotalSeconds:0} s");
        }
        catch (IOException) when (process.HasExited)
        {
            // It exited before reading all of its stdin; its status says what happened.
            return new Dom0Result(process.ExitCode, await stdout, await stderr);
        }
    }

    /// <summary>ssh's argument list: options, "--", the destination, then the command as one
    /// string for the remote shell, each word single-quoted.</summary>
    internal static IReadOnlyList<string> SshArguments(string destination, string? sshConfig, IReadOnlyList<string> argv)
    {
        var args = new List<string> { "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "ServerAliveInterval=15", "-T" };
        if (!string.IsNullOrEmpty(sshConfig))
            args.AddRange(["-F", sshConfig]);
        args.Add("--");
        args.Add(destination);
        args.Add(Quote(argv));
        return args;
    }

    /// <summary>Words quoted for a POSIX shell: safe words bare, the rest in single quotes.</summary>
    internal static string Quote(IReadOnlyList<string> argv) => string.Join(' ', argv.Select(QuoteWord));

    private static string QuoteWord(string word)
    {
        if (word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,@%+".Contains(c)))
            return word;
        var sb = new StringBuilder("'");
        foreach (var c in word)
            sb.Append(c == '\'' ? "'\\''" : c.ToString());
        return sb.Append('\'').ToString();
    }

    private static bool LooksLikeSshError(string stderr) =>
        stderr.Contains("ssh:", StringComparison.Ordinal) || stderr.Contains("Permission denied", StringComparison.Ordinal)
        || stderr.Contains("Host key verification failed", StringComparison.Ordinal)
        || stderr.Contains("Connection", StringComparison.Ordinal);

    private static string FirstLine(string s)
    {
        var line = s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "no message";
        return line.Length <= 200 ? line : line[..200] + "...";
    }
}
