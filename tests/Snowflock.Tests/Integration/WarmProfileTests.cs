using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>The first warm job of a program records which libraries it loads at run time (what
/// MPI_Init dlopens); later masters load them before they fork.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class WarmProfileTests
{
    [Fact]
    public async Task The_first_job_records_a_profile_and_the_next_master_preloads_it()
    {
        var cache = Directory.CreateTempSubdirectory("sftest-cache-");
        try
        {
            var env = new Dictionary<string, string> { ["XDG_CACHE_HOME"] = cache.FullName };
            var first = await CommandRun.RunAsync(Repo.Sfrun, ["-v", "-np", "2", Repo.Example("hello")], env: env);
            Assert.True(first.ExitCode == 0, first.Err);
            Assert.Contains("recording its warm profile", first.Err);
            var profile = Assert.Single(Directory.GetFiles(Path.Combine(cache.FullName, "snowflock", "warm-profiles")));
            var libraries = await File.ReadAllLinesAsync(profile);
            // MPICH's ch4:ucx loads UCX transport modules during MPI_Init; none of them is in the master.
            Assert.Contains(libraries, l => l.Contains("/ucx/libuct_", StringComparison.Ordinal));
            Assert.DoesNotContain(libraries, l => l.Contains("libmpich", StringComparison.Ordinal));

            var second = await CommandRun.RunAsync(Repo.Sfrun, ["-v", "-np", "4", Repo.Example("hello")], env: env);
            Assert.True(second.ExitCode == 0, second.Err);
            Assert.Contains($"warm profile: {libraries.Length} libraries preloaded", second.Err);
            Assert.Equal(Enumerable.Range(0, 4).Select(r => $"hello from rank {r} of 4"), second.OutLines.Order(StringComparer.Ordinal));
        }
        finally
        {
            cache.Delete(true);
        }
    }

    [Fact]
    public async Task The_recording_clone_does_not_see_the_recording_variable()
    {
        var cache = Directory.CreateTempSubdirectory("sftest-cache-");
        try
        {
            var r = await CommandRun.RunAsync(Repo.Sfrun, ["-np", "1", "/usr/bin/env"],
                env: new Dictionary<string, string> { ["XDG_CACHE_HOME"] = cache.FullName });
            Assert.Equal(0, r.ExitCode);
            Assert.DoesNotContain(r.OutLines, l => l.StartsWith("SFWARM_", StringComparison.Ordinal));
            Assert.Contains(r.OutLines, l => l.StartsWith("PMI_RANK=0", StringComparison.Ordinal));
        }
        finally
        {
            cache.Delete(true);
        }
    }
}
