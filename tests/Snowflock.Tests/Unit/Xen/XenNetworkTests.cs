using System.Net;
using Snowflock.Engine.Engines.Xen.Internal;

namespace Snowflock.Tests.Unit.Xen;

/// <summary>Issue #13, item 10: the Xen control listener binds the control address when this host
/// has it, else loopback (an address translated to this host), never every interface.</summary>
[Trait("Area", "unit")]
public sealed class XenNetworkTests
{
    private static readonly IPAddress[] Local = [IPAddress.Loopback, IPAddress.Parse("192.168.122.1"), IPAddress.Parse("10.1.2.3")];

    [Fact]
    public void A_control_address_this_host_has_is_the_one_bound()
    {
        Assert.Equal(IPAddress.Parse("192.168.122.1"), XenNetwork.ListenAddressFor("192.168.122.1", Local));
        Assert.Equal(IPAddress.Parse("10.1.2.3"), XenNetwork.ListenAddressFor("10.1.2.3", Local));
    }

    [Fact]
    public void A_translated_or_unknown_control_address_binds_loopback_not_any()
    {
        // QEMU's user network maps 10.0.2.2 to the host's loopback.
        Assert.Equal(IPAddress.Loopback, XenNetwork.ListenAddressFor("10.0.2.2", Local));
        Assert.Equal(IPAddress.Loopback, XenNetwork.ListenAddressFor("no-such-host.invalid", Local));
        Assert.NotEqual(IPAddress.Any, XenNetwork.ListenAddressFor("0.0.0.0", Local));
    }
}
