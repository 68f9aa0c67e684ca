namespace Snowflock.Launcher;

/// <summary>The program to run does not exist or cannot be executed.</summary>
public sealed class ProgramNotFoundException(string message) : Exception(message);

/// <summary>An <c>-outfile-pattern</c>/<c>-errfile-pattern</c> names a file that cannot be written.</summary>
public sealed class OutputPatternException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The ranks cannot be placed as asked (bad <c>-wdir</c>, hosts, slots).</summary>
public sealed class PlacementException(string message) : Exception(message);
