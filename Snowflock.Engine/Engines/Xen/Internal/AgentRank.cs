using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;

namespace Snowflock.Engine.Engines.Xen.Internal;

/// <summary>A rank inside a Xen clone, seen through its agent's frames: stdout/stderr arrive as
/// frames and are exposed as streams, stdin and signals go out as frames.</summary>
internal sealed class AgentRank : IRankProcess
{
    private readonly AgentConnection _agent;
    private readonly ushort _slot;
    private readonly string _clone;
    // No pause threshold: the one frame reader never waits on one rank's consumer, and every flush completes at once.
    private readonly Pipe _stdout = new(new PipeOptions(pauseWriterThreshold: 0)), _stderr = new(new PipeOptions(pauseWriterThreshold: 0));
    private readonly TaskCompletionSource<RankExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<int> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public AgentRank(AgentConnection agent, ushort slot, int rank, string clone)
    {
        _agent = agent;
        _slot = slot;
        Rank = rank;
        _clone = clone;
        Location = $"domain {clone}";
        StandardOutput = _stdout.Reader.AsStream();
        StandardError = _stderr.Reader.AsStream();
        StandardInput = new AgentStdin(agent, slot);
    }

    public int Rank { get; }
    public string Location { get; private set; }
    public Stream StandardInput { get; }
    public Stream StandardOutput { get; }
    public Stream StandardError { get; }
    public Task<RankExit> Exited => _exited.Task;
    public Task<int> Started => _started.Task;

    public void Signal(int signal)
    {
        if (!_exited.Task.IsCompleted)
            _agent.Send(AgentFrames.Signal, _slot, BitConverter.GetBytes((uint)signal));
    }

    internal void OnFrame(AgentFrame f)
    {
        switch (f.Type)
        {
            case AgentFrames.Started:
                var pid = f.Payload.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(f.Payload) : 0;
                Location = $"pid {pid} on {_clone}";
                _started.TrySetResult(pid);
                break;
            case AgentFrames.Stdout:
                Write(_stdout.Writer, f.Payload);
                break;
            case AgentFrames.Stderr:
                Write(_stderr.Writer, f.Payload);
                break;
            case AgentFrames.Exit when f.Payload.Length >= 8:
                var code = BinaryPrimitives.ReadInt32LittleEndian(f.Payload);
                var signal = BinaryPrimitives.ReadInt32LittleEndian(f.Payload.AsSpan(4));
                End(new RankExit(code, signal == 0 ? null : signal));
                break;
            case AgentFrames.Error:
                var message = System.Text.Encoding.UTF8.GetString(f.Payload).Trim();
                if (!_started.TrySetException(new RankStartException($"rank {Rank}: {message}")))
                    End(new RankExit(255, null));
                break;
        }
    }

    /// <summary>The clone is gone with the rank still in it: as good as killed.</summary>
    internal void Lost()
    {
        _started.TrySetException(new RankStartException($"rank {Rank}: the clone's agent went away"));
        End(new RankExit(137, 9));
    }

    private void End(RankExit exit)
    {
        _stdout.Writer.Complete();
        _stderr.Writer.Complete();
        _exited.TrySetResult(exit);
    }

    private static void Write(PipeWriter writer, byte[] data)
    {
        if (data.Length == 0)
        {
            writer.Complete();
            return;
        }
        try
        {
            // The frame reader must not wait on a slow consumer of one rank; pipes buffer.
            writer.Write(data);
            _ = writer.FlushAsync();
        }
        catch (InvalidOperationException)
        {
            // Output after EOF or after the reader left: nobody wants it.
        }
    }

    public ValueTask DisposeAsync()
    {
        _stdout.Reader.Complete();
        _stderr.Reader.Complete();
        return ValueTask.CompletedTask;
    }

    /// <summary>Rank stdin: writes become STDIN frames, disposal an empty one (EOF).</summary>
    private sealed class AgentStdin(AgentConnection agent, ushort slot) : Stream
    {
        private bool _closed;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            for (var at = 0; at < count; at += AgentFrames.MaxPayload)
                agent.Send(AgentFrames.Stdin, slot, buffer.AsSpan(offset + at, Math.Min(AgentFrames.MaxPayload, count - at)).ToArray());
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct)
        {
            Write(buffer, offset, count);
            return Task.CompletedTask;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
        {
            Write(buffer.ToArray(), 0, buffer.Length);
            return ValueTask.CompletedTask;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing && !_closed)
            {
                _closed = true;
                agent.Send(AgentFrames.Stdin, slot, []);
            }
            base.Dispose(disposing);
        }
    }
}
