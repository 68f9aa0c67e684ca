// Pi by numerical integration (as examples/cpi.c, same output line), a token ring with checks,
// reductions of a record (through the JSON serializer) and of a struct (as an MPI datatype), an
// allgather of records and strings streamed in blocks, each checked on every rank. Output is
// deterministic so runs under sfrun and mpiexec compare byte for byte. Usage: MpiNetDemo [intervals] [laps] [--throw-on-rank R]
// (--throw-on-rank shows a failing rank: it throws after MPI_Init and the whole job ends, exit 1.)
using System.Globalization;
using MPI;
using Snowflock.Mpi.DotNet;

using var mpi = MpiNet.Start(ref args);
var world = mpi.World;
var throwAt = Array.IndexOf(args, "--throw-on-rank");
if (throwAt >= 0 && int.Parse(args[throwAt + 1], CultureInfo.InvariantCulture) == world.Rank)
    throw new InvalidOperationException($"rank {world.Rank} fails on purpose (--throw-on-rank)");
var positional = throwAt >= 0 ? args[..throwAt] : args;
var intervals = positional.Length > 0 ? long.Parse(positional[0], CultureInfo.InvariantCulture) : 10000;
var laps = positional.Length > 1 ? int.Parse(positional[1], CultureInfo.InvariantCulture) : 4;

Pi(world, intervals);
Ring(world, laps);
AllreduceRecord(world);
AllreduceStruct(world);
AllgatherRecords(world);
StreamedStrings(world);
return 0;

static void Pi(Intracommunicator world, long intervals)
{
    const double pi25 = 3.141592653589793238462643;
    world.Broadcast(ref intervals, 0);
    double h = 1.0 / intervals, sum = 0.0;
    for (var i = world.Rank + 1L; i <= intervals; i += world.Size)
    {
        var x = h * (i - 0.5);
        sum += 4.0 / (1.0 + x * x);
    }
    var pi = world.Reduce(h * sum, Operation<double>.Add, 0);
    if (world.Rank == 0)
        Console.WriteLine(FormattableString.Invariant(
            $"pi is approximately {pi:F16}, error is {Math.Abs(pi - pi25):F16} ({world.Size} processes, {intervals} intervals)"));
}

// A token travels the ring `laps` times; every hop adds the sender's rank and every rank checks
// what it receives. Rank 0 sends without blocking: with one rank it sends to itself.
static void Ring(Intracommunicator world, int laps)
{
    int rank = world.Rank, size = world.Size;
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    long token = 0, lapSum = (long)size * (size - 1) / 2;
    for (var lap = 0; lap < laps; lap++)
    {
        if (rank == 0)
        {
            var send = world.ImmediateSend(token, next, lap);
            token = world.Receive<long>(prev, lap);
            send.Wait();
            Check(world, token == lapSum * (lap + 1), $"ring: rank 0 lap {lap} got {token}, want {lapSum * (lap + 1)}");
        }
        else
        {
            token = world.Receive<long>(prev, lap);
            var want = lapSum * lap + (long)rank * (rank - 1) / 2;
            Check(world, token == want, $"ring: rank {rank} lap {lap} got {token}, want {want}");
            token += rank;
            world.Send(token, next, lap);
        }
    }
    if (rank == 0)
        Console.WriteLine($"ring: {size} ranks, {laps} laps, token {token} ok");
}

// A record is a class: MPI.NET cannot map it to an MPI datatype, so it crosses as JSON.
static void AllreduceRecord(Intracommunicator world)
{
    int rank = world.Rank, size = world.Size;
    var mine = new RankStats(1, rank, rank, rank, $"r{rank}");
    var all = world.Allreduce(mine, RankStats.Combine);
    var want = new RankStats(size, (long)size * (size - 1) / 2, 0, size - 1, "");
    Check(world, all.Count == want.Count && all.Sum == want.Sum && all.Min == want.Min && all.Max == want.Max,
        $"allreduce record: rank {rank} got {all}, want {want with { Names = all.Names }}");
    var names = all.Names.Split(',').Order(StringComparer.Ordinal).ToArray();
    var wantNames = Enumerable.Range(0, size).Select(r => $"r{r}").Order(StringComparer.Ordinal).ToArray();
    Check(world, names.SequenceEqual(wantNames), $"allreduce record: rank {rank} got names {all.Names}");
    if (rank == 0)
        Console.WriteLine($"allreduce record: {size} ranks, count {all.Count} sum {all.Sum} min {all.Min} max {all.Max} names {string.Join(',', names)} ok");
}

// A struct of primitives becomes an MPI struct datatype and the reduction an MPI_Op calling back
// into .NET: MPICH's ABI end to end.
static void AllreduceStruct(Intracommunicator world)
{
    int rank = world.Rank, size = world.Size;
    var all = world.Allreduce(new Extent { Min = rank, Max = rank, Weight = 0.5 * rank }, Extent.Combine);
    var want = new Extent { Min = 0, Max = size - 1, Weight = 0.25 * size * (size - 1) };
    Check(world, all.Min == want.Min && all.Max == want.Max && all.Weight == want.Weight,
        $"allreduce struct: rank {rank} got {all}, want {want}");
    if (rank == 0)
        Console.WriteLine(FormattableString.Invariant($"allreduce struct: {size} ranks, {all} ok"));
}

// Allgather packs every rank's JSON into one buffer: each object must end where the next begins.
static void AllgatherRecords(Intracommunicator world)
{
    int rank = world.Rank, size = world.Size;
    var all = world.Allgather(new Greeting(rank, $"hello from {rank}", [rank, rank * rank], double.NaN));
    for (var r = 0; r < size; r++)
        Check(world, all[r].Rank == r && all[r].Text == $"hello from {r}" && all[r].Squares.SequenceEqual([r, r * r]) && double.IsNaN(all[r].NotANumber),
            $"allgather record: rank {rank} got {all[r]} from rank {r}");
    if (rank == 0)
        Console.WriteLine($"allgather record: {size} ranks, last \"{all[^1].Text}\" ok");
}

// Objects bigger than a serialization block travel as several messages through MPI.NET's worker
// threads. Blocks are made small here so that happens cheaply: one string fills its blocks exactly
// (the stream then ends with an empty block), one does not. The block size is fixed when a
// communicator first serializes, so this runs on a fresh one, which like every communicator
// MPI.NET creates needs the JSON serializer set.
static void StreamedStrings(Intracommunicator world)
{
    const int block = 4096;
    using var comm = ((Intracommunicator)world.Clone()).UseJsonSerializer();
    comm.Serialization.BufferSize = block;
    int rank = comm.Rank, size = comm.Size;
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    // A string of n ASCII characters is n + 2 bytes of JSON after a 4-byte length.
    foreach (var length in new[] { 3 * block - 6, 10_000 })
    {
        var text = string.Create(length, length, (span, n) => { for (var i = 0; i < span.Length; i++) span[i] = (char)('a' + (i + n) % 26); });
        string got;
        if (rank == 0)
        {
            var send = comm.ImmediateSend(text, next, length);
            got = comm.Receive<string>(prev, length);
            send.Wait();
        }
        else
        {
            got = comm.Receive<string>(prev, length);
            comm.Send(got, next, length);
        }
        Check(world, got == text, $"streamed string: rank {rank} got {got.Length} chars, want {length} ({(got.Length == length ? "content differs" : "length differs")})");
    }
    if (rank == 0)
        Console.WriteLine($"streamed strings: {size} ranks, {3 * block - 6} and 10000 chars in {block}-byte blocks ok");
}

static void Check(Intracommunicator world, bool ok, string failure)
{
    if (ok)
        return;
    Console.Error.WriteLine(failure);
    Console.Error.Flush();
    world.Abort(3);
}

internal sealed record RankStats(int Count, long Sum, int Min, int Max, string Names)
{
    public static RankStats Combine(RankStats a, RankStats b) =>
        new(a.Count + b.Count, a.Sum + b.Sum, Math.Min(a.Min, b.Min), Math.Max(a.Max, b.Max), a.Names.Length == 0 ? b.Names : $"{a.Names},{b.Names}");
}

internal sealed record Greeting(int Rank, string Text, int[] Squares, double NotANumber);

internal struct Extent
{
    public int Min;
    public int Max;
    public double Weight;

    public static Extent Combine(Extent a, Extent b) =>
        new() { Min = Math.Min(a.Min, b.Min), Max = Math.Max(a.Max, b.Max), Weight = a.Weight + b.Weight };

    public override readonly string ToString() =>
        FormattableString.Invariant($"min {Min} max {Max} weight {Weight}");
}
