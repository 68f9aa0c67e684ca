using System.Text;

namespace Snowflock.Mpi.Pmi;

/// <summary>
/// MPICH's <c>PMI_process_mapping</c> value: which node each rank runs on, as
/// <c>(vector,(start_node,node_count,ranks_per_node),...)</c>. MPICH uses it to decide which ranks
/// may talk through shared memory, so it must say the truth about where ranks are.
/// </summary>
public static class ProcessMapping
{
    /// <summary>Formats the mapping for ranks placed on nodes <paramref name="nodeOfRank"/>[r].
    /// Runs of whole nodes with the same rank count become one block, as hydra writes them.</summary>
    public static string Format(IReadOnlyList<int> nodeOfRank)
    {
        // Group consecutive ranks by node; a node that reappears later breaks the vector form.
        var runs = new List<(int Node, int Count)>();
        foreach (var node in nodeOfRank)
        {
            if (runs.Count > 0 && runs[^1].Node == node)
                runs[^1] = (node, runs[^1].Count + 1);
            else
                runs.Add((node, 1));
        }
        var blocks = new List<(int Start, int Nodes, int PerNode)>();
        foreach (var (node, count) in runs)
        {
            if (blocks.Count > 0)
            {
                var (start, nodes, per) = blocks[^1];
                if (per == count && start + nodes == node)
                {
                    blocks[^1] = (start, nodes + 1, per);
                    continue;
                }
            }
            blocks.Add((node, 1, count));
        }
        var sb = new StringBuilder("(vector");
        foreach (var (start, nodes, per) in blocks)
            sb.Append(",(").Append(start).Append(',').Append(nodes).Append(',').Append(per).Append(')');
        return sb.Append(')').ToString();
    }
}
