namespace Snowflock.Launcher.Placement;

/// <summary>One host of an allocation and how many ranks it takes.</summary>
public sealed record HostSlots(string Host, int Slots);
