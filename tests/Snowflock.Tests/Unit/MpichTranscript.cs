namespace Snowflock.Tests.Unit;

/// <summary>
/// What MPICH 4's own rank 0 of a two-rank job said to its process manager and what hydra
/// answered, captured verbatim (<c>-&gt;</c> rank to server, <c>&lt;-</c> server to rank; the two
/// long business-card values were cut with '…' when captured). Copied from
/// shared/recipes/pmi/transcript_rank0_n2.txt so the unit tests need nothing outside the repo.
/// </summary>
internal static class MpichTranscript
{
    public const string KvsName = "kvs_6091_0";

    public const string RankZeroOfTwo = """
-> cmd=init pmi_version=1 pmi_subversion=1
<- cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0
-> cmd=get_maxes
<- cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024
-> cmd=get_appnum
<- cmd=appnum appnum=0
-> cmd=get_my_kvsname
<- cmd=my_kvsname kvsname=kvs_6091_0
-> cmd=get kvsname=kvs_6091_0 key=PMI_process_mapping
<- cmd=get_result rc=0 msg=success value=(vector,(0,1,2))
-> cmd=barrier_in
<- cmd=barrier_out
-> cmd=put kvsname=kvs_6091_0 key=-bcast-1-0 value=2F6465762F73686D2F6D706963685F736861725F…
<- cmd=put_result rc=0 msg=success
-> cmd=barrier_in
<- cmd=barrier_out
-> cmd=put kvsname=kvs_6091_0 key=-allgather-shm-1-0 value=20CD5A95920AC276D42000637577CC2B3200F8D7…
<- cmd=put_result rc=0 msg=success
-> cmd=barrier_in
<- cmd=barrier_out
-> cmd=get kvsname=kvs_6091_0 key=-allgather-shm-1-0
<- cmd=get_result rc=0 msg=success value=20CD5A95920AC276D42000637577CC2B3200F8D7…
-> cmd=barrier_in
<- cmd=barrier_out
-> cmd=finalize
<- cmd=finalize_ack
-- <EOF>
-- <process exited rc=0>
""";

    /// <summary>The rank's requests, in order, without the "-&gt; " marker.</summary>
    public static IReadOnlyList<string> Requests => Lines("-> ");

    /// <summary>The server's replies, in order, without the "&lt;- " marker.</summary>
    public static IReadOnlyList<string> Replies => Lines("<- ");

    /// <summary>Each request with the reply line that followed it (null when none did).</summary>
    public static IReadOnlyList<(string Request, string? Reply)> Exchanges
    {
        get
        {
            var lines = RankZeroOfTwo.Split('\n');
            var list = new List<(string, string?)>();
            for (var i = 0; i < lines.Length; i++)
            {
                if (!lines[i].StartsWith("-> ", StringComparison.Ordinal))
                    continue;
                var next = i + 1 < lines.Length && lines[i + 1].StartsWith("<- ", StringComparison.Ordinal) ? lines[i + 1][3..] : null;
                list.Add((lines[i][3..], next));
            }
            return list;
        }
    }

    private static List<string> Lines(string marker) =>
        RankZeroOfTwo.Split('\n').Where(l => l.StartsWith(marker, StringComparison.Ordinal)).Select(l => l[marker.Length..]).ToList();
}
