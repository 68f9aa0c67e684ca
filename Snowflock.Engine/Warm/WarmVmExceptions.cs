namespace Snowflock.Engine;

/// <summary>No warm VM of that name exists (<c>sfrun warm list</c> shows those that do).</summary>
public sealed class WarmVmNotFoundException(string message) : Exception(message);

/// <summary>The warm VM's master is no longer running; it must be removed and created again.</summary>
public sealed class WarmVmDeadException(string message) : Exception(message);

/// <summary>The job asks for another program (or other arguments) than the warm VM holds, or the
/// program was rebuilt since the warm VM was created.</summary>
public sealed class WarmVmMismatchException(string message) : Exception(message);

/// <summary>A warm VM cannot be created: bad or taken name, a program that cannot be a warm
/// master, or a master that did not become ready.</summary>
public sealed class WarmVmCreateException(string message) : Exception(message);
