namespace Snowflock.Engine.Guest;

/// <summary>The guest image cannot be built on this host; the message says what is missing and,
/// where a package provides it, which one to install.</summary>
public sealed class GuestImageException(string message, Exception? inner = null) : Exception(message, inner);
