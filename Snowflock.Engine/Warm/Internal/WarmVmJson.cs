using System.Text.Json.Serialization;

namespace Snowflock.Engine.Warm.Internal;

/// <summary>Source-generated JSON for <see cref="WarmVmRecord"/>: sfrun is NativeAOT, no reflection.</summary>
[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(WarmVmRecord))]
internal sealed partial class WarmVmJson : JsonSerializerContext;
