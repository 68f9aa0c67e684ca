using System.Buffers.Binary;
using Snowflock.Engine;
using Snowflock.Engine.Engines.Process.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>Warm VM pieces without a master: the STATS frame a listening libsfwarm.so sends after
/// its hello, and which names a warm VM may have (they become file names).</summary>
[Trait("Area", "unit")]
public sealed class WarmVmUnitTests
{
    [Fact]
    public void Hello_then_stats_parse_as_a_listening_master_sends_them()
    {
        var bytes = new byte[8 + 12 + 8 + 8];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, 12);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), 1);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), 1);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(12), 77);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(16), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(20), 8);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(24), 5);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(28), 3);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(32), 64);
        Assert.Equal(new WarmMessage.Hello(1, 77, 1), WarmProtocol.TryParse(bytes, out var used));
        Assert.Equal(new WarmMessage.Stats(3, 64), WarmProtocol.TryParse(bytes.AsSpan(used), out var more));
        Assert.Equal(bytes.Length, used + more);

        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(20), 12);
        Assert.Throws<InvalidDataException>(() => WarmProtocol.TryParse(bytes.AsSpan(used), out _));
    }

    [Theory]
    [InlineData("ring", true)]
    [InlineData("cpi-1.2_x", true)]
    [InlineData("", false)]
    [InlineData("-rf", false)]
    [InlineData(".hidden", false)]
    [InlineData("../etc", false)]
    [InlineData("a/b", false)]
    [InlineData("a b", false)]
    [InlineData("é", false)]
    public void Names_are_safe_file_names(string name, bool valid) => Assert.Equal(valid, WarmVms.IsValidName(name));

    [Fact]
    public void A_name_longer_than_64_is_refused() => Assert.False(WarmVms.IsValidName(new string('a', 65)));
}
