using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>A C driver linked against native/build/libsfpmi.so, built once per test class.</summary>
public sealed class SfpmiDriver : IAsyncLifetime
{
    /// <summary>Each rank puts values that a text protocol can easily damage (trailing blanks, the
    /// library's own mark '~', leading blanks, a tab, empty, one of the longest allowed), reads
    /// back its right neighbour's, and checks the clique and the job facts; prints "rank R ok".</summary>
    private const string Source = """
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include "pmi.h"

        #define CHECK(call) do { int rc_ = (call); if (rc_ != PMI_SUCCESS) { \
            printf("rank %d: %s returned %d\n", rank, #call, rc_); return 1; } } while (0)

        int main(void)
        {
            int rank = -1, size, spawned, vmax, appnum, usize, initialized, clique, bad = 0;
            char kvs[300], key[64], got[4096];
            static const char *values[] = { "plain", "pad  ", "tilde~", "both ~", "  lead", "tab\t", "", "~~", NULL };
            int rc = PMI_Init(&spawned);
            if (rc != PMI_SUCCESS) { printf("PMI_Init returned %d\n", rc); return 2; }
            CHECK(PMI_Initialized(&initialized));
            CHECK(PMI_Get_rank(&rank));
            CHECK(PMI_Get_size(&size));
            CHECK(PMI_Get_appnum(&appnum));
            CHECK(PMI_Get_universe_size(&usize));
            CHECK(PMI_KVS_Get_my_name(kvs, sizeof kvs));
            CHECK(PMI_KVS_Get_value_length_max(&vmax));
            char *longest = malloc((size_t)vmax);
            memset(longest, 'x', (size_t)vmax - 1);
            longest[vmax - 2] = ' ';
            longest[vmax - 1] = '\0';
            for (int i = 0; values[i]; i++) {
                snprintf(key, sizeof key, "k-%d-%d", rank, i);
                CHECK(PMI_KVS_Put(kvs, key, values[i]));
            }
            snprintf(key, sizeof key, "long-%d", rank);
            CHECK(PMI_KVS_Put(kvs, key, longest));
            CHECK(PMI_KVS_Commit(kvs));
            CHECK(PMI_Barrier());
            int peer = (rank + 1) % size;
            for (int i = 0; values[i]; i++) {
                snprintf(key, sizeof key, "k-%d-%d", peer, i);
                CHECK(PMI_KVS_Get(kvs, key, got, sizeof got));
                if (strcmp(got, values[i]) != 0) { printf("rank %d: %s is \"%s\", want \"%s\"\n", rank, key, got, values[i]); bad = 1; }
            }
            snprintf(key, sizeof key, "long-%d", peer);
            CHECK(PMI_KVS_Get(kvs, key, got, sizeof got));
            if (strcmp(got, longest) != 0) { printf("rank %d: long value damaged (%zu chars)\n", rank, strlen(got)); bad = 1; }
            if (PMI_KVS_Get(kvs, "no-such-key", got, sizeof got) == PMI_SUCCESS) { printf("rank %d: missing key found\n", rank); bad = 1; }
            char *over = malloc((size_t)vmax + 1);
            memset(over, 'y', (size_t)vmax);
            over[vmax] = '\0';
            if (PMI_KVS_Put(kvs, "too-long", over) != PMI_ERR_INVALID_VAL_LENGTH) { printf("rank %d: too long accepted\n", rank); bad = 1; }
            CHECK(PMI_Get_clique_size(&clique));
            int *ranks = malloc(sizeof(int) * (size_t)clique);
            CHECK(PMI_Get_clique_ranks(ranks, clique));
            int mine = 0;
            for (int i = 0; i < clique; i++) mine |= ranks[i] == rank;
            if (!initialized || !mine || usize != size || appnum != 0) { printf("rank %d: init %d clique %d mine %d usize %d appnum %d\n",
                rank, initialized, clique, mine, usize, appnum); bad = 1; }
            CHECK(PMI_Barrier());
            CHECK(PMI_Finalize());
            if (!bad) printf("rank %d ok clique %d vmax %d\n", rank, clique, vmax);
            return bad;
        }
        """;

    /// <summary>Includes the library's source to reach its PMI_process_mapping parser: prints the
    /// node of each rank (or -1) for the mapping and rank count given on the command line.</summary>
    private const string MappingSource = """
        #include "sfpmi.c"
        int main(int argc, char **argv)
        {
            if (argc != 3) return 2;
            int n = atoi(argv[2]), node;
            for (int r = 0; r < n; r++)
                printf("%d%s", node_of(argv[1], r, &node) == 0 ? node : -1, r + 1 < n ? " " : "\n");
            return 0;
        }
        """;

    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "sfrun-sfpmi-" + Guid.NewGuid().ToString("N"));

    public string Program => Path.Combine(Dir, "driver");

    public string Mapping => Path.Combine(Dir, "mapping");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Dir);
        var source = Path.Combine(Dir, "driver.c");
        await File.WriteAllTextAsync(source, Source);
        var lib = Path.Combine(Repo.Root, "native", "build");
        Assert.True(File.Exists(Path.Combine(lib, "libsfpmi.so")), "native/build/libsfpmi.so is not built: run scripts/setup");
        var r = await CommandRun.RunAsync("cc", ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I", Path.Combine(Repo.Root, "native", "pmi"),
            "-o", Program, source, "-L", lib, "-lsfpmi", "-Wl,-rpath," + lib], bound: TimeSpan.FromSeconds(60));
        Assert.True(r.ExitCode == 0, r.Err);
        var mappingSource = Path.Combine(Dir, "mapping.c");
        await File.WriteAllTextAsync(mappingSource, MappingSource);
        r = await CommandRun.RunAsync("cc", ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-I", Path.Combine(Repo.Root, "native", "pmi"),
            "-o", Mapping, mappingSource, "-lpthread"], bound: TimeSpan.FromSeconds(60));
        Assert.True(r.ExitCode == 0, r.Err);
    }

    public Task DisposeAsync()
    {
        Directory.Delete(Dir, recursive: true);
        return Task.CompletedTask;
    }
}

/// <summary>libsfpmi, the PMI-1 library Open MPI ranks load, against sfrun's real PMI server.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class SfpmiLibraryTests(SfpmiDriver driver) : IClassFixture<SfpmiDriver>
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(8)]
    public async Task Values_round_trip_exactly_and_the_clique_is_the_whole_host(int np)
    {
        var r = await CommandRun.SfrunAsync("-np", np.ToString(), driver.Program);
        Assert.True(r.ExitCode == 0, r.Out + r.Err);
        var expected = Enumerable.Range(0, np).Select(rank => $"rank {rank} ok clique {np} vmax 1023");
        Assert.Equal(expected.Order(StringComparer.Ordinal), r.OutLines.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Outside_sfrun_PMI_Init_fails_with_a_reason()
    {
        var r = await CommandRun.RunAsync(driver.Program, [], env: new Dictionary<string, string> { ["PMI_PORT"] = "", ["PMI_FD"] = "" });
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("PMI_Init returned 1\n", r.Out);
        Assert.Contains("neither PMI_PORT nor PMI_FD is set", r.Err);
    }

    [Theory]
    [InlineData("(vector,(0,1,4))", 4, "0 0 0 0")]
    [InlineData("(vector,(0,2,2))", 4, "0 0 1 1")]
    [InlineData("(vector,(0,2,2),(2,1,3))", 8, "0 0 1 1 2 2 2 -1")]
    [InlineData("(vector,(3,2,1),(0,1,2))", 4, "3 4 0 0")]
    [InlineData("(vector,(0,0,2))", 2, "-1 -1")]
    [InlineData("(nonsense)", 2, "-1 -1")]
    [InlineData("", 1, "-1")]
    public async Task Process_mappings_give_each_rank_its_node(string mapping, int ranks, string nodes)
    {
        var r = await CommandRun.RunAsync(driver.Mapping, [mapping, ranks.ToString()]);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(nodes + "\n", r.Out);
    }
}
