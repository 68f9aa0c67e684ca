using System.Buffers;
using System.IO.Pipelines;

namespace Snowflock.Engine.Guest.Internal;

/// <summary>A rank running inside a guest, seen through its agent's channel: its streams are
/// frames, its end is the agent's EXIT frame (or the guest vanishing).</summary>
internal sealed class GuestRankProcess : IRankProcess
{
    private readonly AgentChannel _channel;
    private readonly ushort _slot;
    private readonly string _vm;
    private bool _gone;
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<RankExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _guestPid;

    /// <param name="vm">Where it runs, for reports: "in vm3", "on h2".</param>
    public GuestRankProcess(AgentChannel channel, ushort slot, int rank, string vm)
    {
        _channel = channel;
        _slot = slot;
        _vm = vm;
        Rank = rank;
        StandardInput = new AgentStdinStream(channel, slot);
        StandardOutput = Stdout.Reader.AsStream();
        StandardError = Stderr.Reader.AsStream();
    }

    public int Rank { get; }
    public string Location => $"pid {_guestPid} {_vm}" + (_gone ? ", whose agent is gone" : "");
    public Stream StandardInput { get; }
    public Stream StandardOutput { get; }
    public Stream StandardError { get; }
    public Task<RankExit> Exited => _exited.Task;
    internal Task Started => _started.Task;
    internal Pipe Stdout { get; } = new();
    internal Pipe Stderr { get; } = new();

    /// <summary>The rank's PMI connection reaches the server from sfrun's own relay socket, so
    /// sfrun's pid is the process the server's peer check must find holding it.</summary>
    public int? HostPid => Environment.ProcessId;

    internal void OnStarted(int guestPid)
    {
        _guestPid = guestPid;
        _started.TrySetResult();
    }

    internal void OnStartFailed(string message)
    {
        _started.TrySetException(new RankStartException($"rank {Rank} {_vm}: {message}"));
        Stdout.Writer.Complete();
        Stderr.Writer.Complete();
    }

    internal async ValueTask OnOutputAsync(Pipe pipe, ReadOnlySequence<byte> data)
    {
        if (data.Length == 0)
        {
            await pipe.Writer.CompleteAsync().ConfigureAwait(false);
            return;
        }
        try
        {
            foreach (var segment in data)
                await pipe.Writer.WriteAsync(segment).ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // Written after EOF: a frame for a stream already closed.
        }
    }

    internal void OnExit(RankExit exit)
    {
        Stdout.Writer.Complete();
        Stderr.Writer.Complete();
        _exited.TrySetResult(exit);
    }

    internal void GuestGone()
    {
        _gone = true;
        _started.TrySetException(new RankStartException($"rank {Rank}: the agent {_vm} stopped before the rank started"));
        OnExit(new RankExit(0, 9));
    }

    public void Signal(int signal)
    {
        if (_exited.Task.IsCompleted)
            return;
        var payload = BitConverter.GetBytes((uint)signal);
        _ = _channel.SendAsync(AgentFrameType.Signal, _slot, payload, CancellationToken.None);
    }

    public ValueTask DisposeAsync()
    {
        StandardInput.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>Writes become STDIN frames; closing sends the EOF frame, once.</summary>
    private sealed class AgentStdinStream(AgentChannel channel, ushort slot) : Stream
    {
        private int _closed;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) =>
            WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
        {
            for (var at = 0; at < buffer.Length; at += AgentFrame.MaxPayload)
                await channel.SendAsync(AgentFrameType.Stdin, slot, buffer.Slice(at, Math.Min(AgentFrame.MaxPayload, buffer.Length - at)), ct)
                    .ConfigureAwait(false);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
            WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();

        protected override void Dispose(bool disposing)
        {
            if (disposing && Interlocked.Exchange(ref _closed, 1) == 0)
                _ = channel.SendAsync(AgentFrameType.Stdin, slot, ReadOnlyMemory<byte>.Empty, CancellationToken.None);
            base.Dispose(disposing);
        }
    }
}
