namespace Snowflock.Engine;

/// <summary>The engine asked for cannot run on this host; the message says what to install or use instead.</summary>
public sealed class EngineUnavailableException(string message) : Exception(message);

/// <summary>The engine could not create a clone; the message carries the engine's own error text.</summary>
public sealed class CloneFailedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A rank could not be started in its clone (exec failed).</summary>
public sealed class RankStartException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The user's cache folder cannot be used (full, read-only, not writable, another user's);
/// the message names the folder and what to do. An IOException, so callers for which the cache is
/// only an optimisation (warm profiles, topology) go on without it.</summary>
public sealed class UserCacheException(string message, Exception? inner = null) : IOException(message, inner);
