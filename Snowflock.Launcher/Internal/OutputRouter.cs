namespace Snowflock.Launcher.Internal;

/// <summary>Maps each rank's stdout and stderr to a sink: sfrun's own streams, or files named by
/// <c>-outfile-pattern</c>/<c>-errfile-pattern</c> (ranks whose pattern expands to the same path share one file).</summary>
internal sealed class OutputRouter : IAsyncDisposable
{
    private readonly OutputSink _stdout;
    private readonly OutputSink _stderr;
    private readonly Dictionary<string, OutputSink> _files = new(StringComparer.Ordinal);
    private readonly OutputOptions _options;

    private OutputRouter(OutputOptions options, Stream stdout, Stream stderr)
    {
        _options = options;
        _stdout = new OutputSink(stdout, ownsStream: false);
        _stderr = new OutputSink(stderr, ownsStream: false);
    }

    /// <summary>Opens every pattern file before any rank starts, so an unwritable path fails the job up front.</summary>
    public static async Task<OutputRouter> OpenAsync(OutputOptions options, int ranks, Stream stdout, Stream stderr)
    {
        var router = new OutputRouter(options, stdout, stderr);
        try
        {
            for (var r = 0; r < ranks; r++)
            {
                if (options.StdoutPattern is { } o)
                    router.OpenFile(Expand(o, r), "-outfile-pattern");
                if (options.StderrPattern is { } e)
                    router.OpenFile(Expand(e, r), "-errfile-pattern");
            }
        }
        catch
        {
            await router.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return router;
    }

    public static string Expand(string pattern, int rank) => pattern.Replace("%r", rank.ToString());

    private void OpenFile(string path, string option)
    {
        if (_files.ContainsKey(path))
            return;
        FileStream stream;
        try
        {
            if (_options.CreateFolders)
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1, useAsync: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new OutputPatternException($"{option}: cannot write {path}: {Snowflock.Engine.IoMessages.Describe(e, path)}", e);
        }
        _files[path] = new OutputSink(stream, ownsStream: true);
    }

    /// <summary>Bytes every sink has taken so far: while it grows, output is still moving.</summary>
    public long Written => _stdout.Written + _stderr.Written + _files.Values.Sum(f => f.Written);

    public OutputSink StdoutOf(int rank) =>
        _options.StdoutPattern is { } p ? _files[Expand(p, rank)] : _stdout;

    public OutputSink StderrOf(int rank) =>
        _options.StderrPattern is { } p ? _files[Expand(p, rank)] : _stderr;

    public async ValueTask DisposeAsync()
    {
        foreach (var f in _files.Values)
            await f.DisposeAsync().ConfigureAwait(false);
        await _stdout.DisposeAsync().ConfigureAwait(false);
        await _stderr.DisposeAsync().ConfigureAwait(false);
    }
}
