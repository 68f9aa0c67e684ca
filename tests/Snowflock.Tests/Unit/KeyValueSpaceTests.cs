using Snowflock.Mpi.Pmi;
using Xunit;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed class KeyValueSpaceTests
{
    [Fact]
    public void Put_then_get_returns_the_value()
    {
        var kvs = new KeyValueSpace("kvs_1_0", 10);
        Assert.Equal("kvs_1_0", kvs.Name);
        Assert.True(kvs.TryPut("-bcast-1-0", "2F64 with spaces", out var error));
        Assert.Null(error);
        Assert.True(kvs.TryGet("-bcast-1-0", out var value));
        Assert.Equal("2F64 with spaces", value);
        Assert.Equal(1, kvs.Count);
    }

    [Fact]
    public void Get_of_a_missing_key_fails()
    {
        var kvs = new KeyValueSpace("k", 10);
        kvs.TryPut("a", "1", out _);
        Assert.False(kvs.TryGet("b", out _));
        Assert.False(kvs.TryGet("A", out _));
    }

    [Fact]
    public void A_later_put_replaces_the_value()
    {
        var kvs = new KeyValueSpace("k", 10);
        Assert.True(kvs.TryPut("a", "1", out _));
        Assert.True(kvs.TryPut("a", "2", out _));
        Assert.True(kvs.TryGet("a", out var value));
        Assert.Equal("2", value);
        Assert.Equal(1, kvs.Count);
    }

    [Fact]
    public void Empty_value_is_stored()
    {
        var kvs = new KeyValueSpace("k", 10);
        Assert.True(kvs.TryPut("a", "", out _));
        Assert.True(kvs.TryGet("a", out var value));
        Assert.Equal("", value);
    }

    [Fact]
    public void Key_length_is_bounded()
    {
        var kvs = new KeyValueSpace("k", 10);
        Assert.True(kvs.TryPut(new string('k', PmiWire.MaxKeyLength), "v", out _));
        Assert.False(kvs.TryPut(new string('k', PmiWire.MaxKeyLength + 1), "v", out var tooLong));
        Assert.Contains("key", tooLong);
        Assert.False(kvs.TryPut("", "v", out var empty));
        Assert.Contains("key", empty);
        Assert.Equal(1, kvs.Count);
    }

    [Fact]
    public void Value_length_is_bounded()
    {
        var kvs = new KeyValueSpace("k", 10);
        Assert.True(kvs.TryPut("a", new string('v', PmiWire.MaxValueLength), out _));
        Assert.False(kvs.TryPut("b", new string('v', PmiWire.MaxValueLength + 1), out var error));
        Assert.Contains("value", error);
        Assert.False(kvs.TryGet("b", out _));
        // A refused overwrite leaves the old value.
        Assert.False(kvs.TryPut("a", new string('w', PmiWire.MaxValueLength + 1), out _));
        Assert.True(kvs.TryGet("a", out var kept));
        Assert.Equal(new string('v', PmiWire.MaxValueLength), kept);
    }

    [Fact]
    public void MaxKeys_bounds_new_keys_but_overwrites_still_work_when_full()
    {
        var kvs = new KeyValueSpace("k", 3);
        Assert.Equal(3, kvs.MaxKeys);
        for (var i = 0; i < 3; i++)
            Assert.True(kvs.TryPut($"k{i}", "v", out _));
        Assert.False(kvs.TryPut("k3", "v", out var error));
        Assert.Contains("full", error);
        Assert.False(kvs.TryGet("k3", out _));
        Assert.Equal(3, kvs.Count);

        Assert.True(kvs.TryPut("k1", "new", out var overwriteError));
        Assert.Null(overwriteError);
        Assert.True(kvs.TryGet("k1", out var value));
        Assert.Equal("new", value);
        Assert.Equal(3, kvs.Count);
    }
}
