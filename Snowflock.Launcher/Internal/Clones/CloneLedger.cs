namespace Snowflock.Launcher.Internal.Clones;

/// <summary>Why the ledger said no, as libsf will report it: an errno name and one line.</summary>
internal sealed record Refusal(string Errno, string Text);

/// <summary>
/// The job's tickets and its clone budget: at most <paramref name="limit"/> clones granted at
/// once, across every process of the job. A ticket belongs to the connection (<c>owner</c>) that
/// asked for it; its clones are recorded as handles (<typeparamref name="THandle"/>) that the
/// caller kills and closes when the ledger hands them back. No I/O: the agent's dispatcher is its
/// only user, so it needs no lock.
/// </summary>
internal sealed class CloneLedger<THandle>(int limit)
{
    private sealed class Entry(int owner, int count)
    {
        public int Owner { get; } = owner;
        public int Count { get; } = count;
        public List<THandle>? Clones { get; set; }
    }

    /// <summary>The most clones one ticket may hold: its <c>cloned</c> line must fit in <see cref="CloneWire.MaxLine"/>.</summary>
    public const int MaxPerTicket = 4096;

    private readonly Dictionary<int, Entry> _tickets = [];
    private int _nextId = 1;

    public int Limit { get; } = limit > 0 ? limit : throw new ArgumentOutOfRangeException(nameof(limit));

    /// <summary>Clones granted and not yet released.</summary>
    public int Granted { get; private set; }

    public int Request(int owner, int count, out Refusal? refusal)
    {
        refusal = count > MaxPerTicket
            ? new("E2BIG", $"sf_request_ticket({count}): a ticket holds at most {MaxPerTicket} clones; ask for several tickets")
            : count > Limit
            ? new("E2BIG", $"sf_request_ticket({count}): more clones than the job's limit of {Limit} (sfrun --max-clones, SF_MAX_CLONES)")
            : Granted + count > Limit
                ? new("EAGAIN", $"sf_request_ticket({count}): {Granted} of the job's {Limit} clones (sfrun --max-clones) are held by other tickets; join or kill them first")
                : null;
        if (refusal is not null)
            return 0;
        var id = _nextId++;
        _tickets[id] = new Entry(owner, count);
        Granted += count;
        return id;
    }

    /// <summary>Null if <paramref name="owner"/> may record <paramref name="count"/> clones for the ticket.</summary>
    public Refusal? CheckRecord(int owner, int ticket, int count)
    {
        if (Owned(owner, ticket, "cloned") is { } refusal)
            return refusal;
        var entry = _tickets[ticket];
        if (entry.Clones is not null)
            return new("EALREADY", $"ticket {ticket} has already cloned");
        return count > entry.Count ? new("EINVAL", $"ticket {ticket} allows {entry.Count} clones, not {count}") : null;
    }

    public void Record(int ticket, IReadOnlyList<THandle> clones) => _tickets[ticket].Clones = [.. clones];

    /// <summary>Releases the ticket; its recorded clones (reaped by their parent) come back to be closed.</summary>
    public IReadOnlyList<THandle> Done(int owner, int ticket, out Refusal? refusal)
    {
        refusal = Owned(owner, ticket, "done");
        return refusal is null ? Release(ticket) : [];
    }

    /// <summary>The owner's connection closed: its tickets are released, their clones come back to be killed.</summary>
    public List<(int Ticket, IReadOnlyList<THandle> Clones)> Abandon(int owner) =>
        [.. _tickets.Where(t => t.Value.Owner == owner).Select(t => t.Key).ToList().Select(id => (id, Release(id)))];

    /// <summary>The end of the job: every ticket is released, every recorded clone comes back to be killed.</summary>
    public List<THandle> ReleaseAll() => [.. _tickets.Keys.ToList().SelectMany(Release)];

    private IReadOnlyList<THandle> Release(int ticket)
    {
        var entry = _tickets[ticket];
        _tickets.Remove(ticket);
        Granted -= entry.Count;
        return entry.Clones ?? [];
    }

    private Refusal? Owned(int owner, int ticket, string request) =>
        !_tickets.TryGetValue(ticket, out var entry) ? new("EINVAL", $"{request}: no ticket {ticket} is open")
        : entry.Owner != owner ? new("EPERM", $"{request}: ticket {ticket} belongs to another process")
        : null;
}
