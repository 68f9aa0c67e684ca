using Snowflock.Launcher.Internal.Clones;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>The job's clone budget and ticket ownership.</summary>
[Trait("Area", "unit")]
public sealed class CloneLedgerTests
{
    [Fact]
    public void Tickets_are_granted_within_the_limit_and_given_back_when_done()
    {
        var ledger = new CloneLedger<int>(8);
        var a = ledger.Request(owner: 1, 5, out var refusal);
        Assert.Null(refusal);
        Assert.Equal(0, ledger.Request(owner: 2, 4, out refusal));
        Assert.Equal("EAGAIN", refusal!.Errno);
        Assert.Contains("5 of the job's 8 clones", refusal.Text);
        Assert.Equal(0, ledger.Request(owner: 2, 9, out refusal));
        Assert.Equal("E2BIG", refusal!.Errno);
        Assert.Equal(0, new CloneLedger<int>(100_000).Request(owner: 3, CloneLedger<int>.MaxPerTicket + 1, out var huge));
        Assert.Equal("E2BIG", huge!.Errno);
        Assert.Null(ledger.CheckRecord(1, a, 5));
        ledger.Record(a, [101, 102, 103, 104, 105]);
        Assert.Equal([101, 102, 103, 104, 105], ledger.Done(1, a, out refusal));
        Assert.Null(refusal);
        Assert.Equal(0, ledger.Granted);
        Assert.NotEqual(0, ledger.Request(owner: 2, 8, out _));
    }

    [Fact]
    public void Only_the_owner_may_record_or_release_a_ticket_and_only_once()
    {
        var ledger = new CloneLedger<int>(8);
        var t = ledger.Request(owner: 1, 2, out _);
        Assert.Equal("EPERM", ledger.CheckRecord(2, t, 2)!.Errno);
        Assert.Equal("EINVAL", ledger.CheckRecord(1, t, 3)!.Errno);
        Assert.Equal("EINVAL", ledger.CheckRecord(1, t + 1, 1)!.Errno);
        ledger.Record(t, [7, 8]);
        Assert.Equal("EALREADY", ledger.CheckRecord(1, t, 2)!.Errno);
        ledger.Done(2, t, out var refusal);
        Assert.Equal("EPERM", refusal!.Errno);
        ledger.Done(1, t, out refusal);
        Assert.Null(refusal);
        ledger.Done(1, t, out refusal);
        Assert.Equal("EINVAL", refusal!.Errno);
    }

    [Fact]
    public void An_owner_that_leaves_gives_back_its_clones_to_kill_and_the_end_takes_the_rest()
    {
        var ledger = new CloneLedger<int>(10);
        var a = ledger.Request(1, 2, out _);
        var b = ledger.Request(1, 3, out _);
        var c = ledger.Request(2, 4, out _);
        ledger.Record(a, [11, 12]);
        ledger.Record(c, [31, 32, 33, 34]);
        var left = ledger.Abandon(1);
        Assert.Equal([(a, [11, 12]), (b, Array.Empty<int>())], left.Select(l => (l.Ticket, l.Clones.ToArray())).ToArray());
        Assert.Equal(4, ledger.Granted);
        Assert.Equal([31, 32, 33, 34], ledger.ReleaseAll());
        Assert.Equal(0, ledger.Granted);
    }
}
