using System.Text.RegularExpressions;
using Snowflock.Mpi.Pmi;
using Xunit;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed partial class ProcessMappingTests
{
    [Theory]
    [InlineData(new[] { 0 }, "(vector,(0,1,1))")]
    [InlineData(new[] { 0, 0 }, "(vector,(0,1,2))")]
    [InlineData(new[] { 0, 0, 0, 0 }, "(vector,(0,1,4))")]
    [InlineData(new[] { 0, 1, 2, 3 }, "(vector,(0,4,1))")]
    [InlineData(new[] { 0, 0, 1, 1 }, "(vector,(0,2,2))")]
    [InlineData(new[] { 0, 0, 1 }, "(vector,(0,1,2),(1,1,1))")]
    [InlineData(new[] { 0, 0, 0, 1, 1, 1, 2 }, "(vector,(0,2,3),(2,1,1))")]
    [InlineData(new[] { 0, 1, 0 }, "(vector,(0,2,1),(0,1,1))")]
    [InlineData(new[] { 0, 1, 0, 1 }, "(vector,(0,2,1),(0,2,1))")]
    [InlineData(new[] { 1, 0 }, "(vector,(1,1,1),(0,1,1))")]
    public void Formats_as_hydra_does(int[] nodeOfRank, string expected)
    {
        Assert.Equal(expected, ProcessMapping.Format(nodeOfRank));
    }

    [Theory]
    [InlineData(new[] { 0, 0, 0, 0 })]
    [InlineData(new[] { 0, 1, 2, 3 })]
    [InlineData(new[] { 0, 0, 1, 1 })]
    [InlineData(new[] { 0, 0, 1 })]
    [InlineData(new[] { 0, 1, 0 })]
    [InlineData(new[] { 2, 2, 0, 1, 1, 0 })]
    public void MPICH_reads_back_the_placement_it_was_given(int[] nodeOfRank)
    {
        Assert.Equal(nodeOfRank, ReadAsMpich(ProcessMapping.Format(nodeOfRank), nodeOfRank.Length));
    }

    [Fact]
    public void Random_placements_survive_the_round_trip()
    {
        var random = new Random(4242);
        for (var i = 0; i < 2000; i++)
        {
            var nodes = 1 + random.Next(6);
            var ranks = 1 + random.Next(40);
            // Mostly blocked placements (runs of one node), sometimes scattered ones.
            var placement = new int[ranks];
            var node = random.Next(nodes);
            for (var r = 0; r < ranks; r++)
            {
                if (random.Next(4) == 0)
                    node = random.Next(nodes);
                placement[r] = node;
            }
            var mapping = ProcessMapping.Format(placement);
            Assert.Matches(@"^\(vector(,\(\d+,\d+,\d+\))+\)$", mapping);
            Assert.Equal(placement, ReadAsMpich(mapping, ranks));
        }
    }

    /// <summary>What MPICH's MPL_rankmap_str_to_array makes of a triplet vector: block (X,Y,Z) puts Z
    /// ranks on each of nodes X..X+Y-1; a vector that covers fewer ranks than the job repeats from the start.</summary>
    private static int[] ReadAsMpich(string mapping, int size)
    {
        var blocks = Triplet().Matches(mapping)
            .Select(m => (Start: int.Parse(m.Groups[1].Value), Nodes: int.Parse(m.Groups[2].Value), PerNode: int.Parse(m.Groups[3].Value)))
            .ToList();
        Assert.NotEmpty(blocks);
        var covered = blocks.Sum(b => b.Nodes * b.PerNode);
        Assert.Equal(size, covered);
        var result = new List<int>();
        while (result.Count < size)
            foreach (var (start, nodes, perNode) in blocks)
                for (var n = 0; n < nodes; n++)
                    for (var k = 0; k < perNode && result.Count < size; k++)
                        result.Add(start + n);
        return [.. result];
    }

    [GeneratedRegex(@"\((\d+),(\d+),(\d+)\)")]
    private static partial Regex Triplet();
}
