namespace Snowflock.Tests;

/// <summary>Tests that measure this process (open fds, threads, memory) must not share it with
/// tests running in parallel: xunit runs this collection alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialCollection
{
    public const string Name = "serial";
}
