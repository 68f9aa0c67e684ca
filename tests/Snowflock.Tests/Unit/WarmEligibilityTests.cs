using Snowflock.Engine.Engines.Process.Internal;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>Which programs can be warm masters: LD_PRELOAD must take effect in them.</summary>
[Trait("Area", "unit")]
public sealed class WarmEligibilityTests
{
    [Fact]
    public void A_dynamically_linked_executable_can_be_a_master() => Assert.Null(WarmEligibility.WhyNot("/bin/sh"));

    [Fact]
    public void A_static_executable_cannot() => Assert.Contains("statically linked", WarmEligibility.WhyNot("/sbin/ldconfig"));

    [Fact]
    public void A_script_is_judged_by_its_interpreter()
    {
        var dir = Directory.CreateTempSubdirectory("warm-elig-");
        try
        {
            var ok = Path.Combine(dir.FullName, "ok.sh");
            File.WriteAllText(ok, "#!/bin/sh\necho hi\n");
            var bad = Path.Combine(dir.FullName, "bad.sh");
            File.WriteAllText(bad, "#!/sbin/ldconfig -p\n");
            var text = Path.Combine(dir.FullName, "text");
            File.WriteAllText(text, "not a program\n");
            Assert.Null(WarmEligibility.WhyNot(ok));
            Assert.Contains("statically linked", WarmEligibility.WhyNot(bad));
            Assert.Contains("not an ELF", WarmEligibility.WhyNot(text));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void A_missing_program_is_reported_not_thrown() => Assert.NotNull(WarmEligibility.WhyNot("/nonexistent/program"));
}
