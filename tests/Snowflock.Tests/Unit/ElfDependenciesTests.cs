using System.Text.RegularExpressions;
using Snowflock.Engine.Internal;
using Snowflock.Launcher.Internal;
using Snowflock.Tests.Integration.Support;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>Real binaries, compiled here with the host's cc and both MPIs' wrappers, read by the ELF
/// reader and compared with what <c>readelf -d</c> says about the same files.</summary>
public sealed class ElfBinaries : IAsyncLifetime
{
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "sfrun-elf-" + Guid.NewGuid().ToString("N"));

    public string this[string name] => Path.Combine(Dir, name);

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Dir);
        await File.WriteAllTextAsync(this["plain.c"], "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n");
        await File.WriteAllTextAsync(this["lib.c"], "#include <math.h>\ndouble f(double x) { return sqrt(x); }\n");
        await File.WriteAllTextAsync(this["mpi.c"],
            "#include <mpi.h>\nint main(int c, char **v) { MPI_Init(&c, &v); MPI_Finalize(); return 0; }\n");
        await Compile("cc", "-O1", "-o", this["plain"], this["plain.c"]);
        await Compile("cc", "-O1", "-static", "-o", this["static"], this["plain.c"]);
        await Compile("cc", "-O1", "-shared", "-fPIC", "-o", this["libx.so"], this["lib.c"], "-lm");
        await Compile("mpicc.mpich", "-O1", "-o", this["mpich"], this["mpi.c"]);
        await Compile("mpicc.openmpi", "-O1", "-o", this["openmpi"], this["mpi.c"]);
        await Compile("cc", "-O1", "-o", this["stripped"], this["plain.c"], "-Wl,--no-as-needed", "-lm", "-s");
        await File.WriteAllTextAsync(this["script"], "#!/bin/sh\necho hi\n");
    }

    private static async Task Compile(string compiler, params string[] args)
    {
        var r = await CommandRun.RunAsync(compiler, args, bound: TimeSpan.FromSeconds(60));
        Assert.True(r.ExitCode == 0, $"{compiler} {string.Join(' ', args)} failed: {r.Err}");
    }

    public Task DisposeAsync()
    {
        Directory.Delete(Dir, recursive: true);
        return Task.CompletedTask;
    }
}

[Trait("Area", "unit")]
public sealed partial class ElfDependenciesTests(ElfBinaries bin) : IClassFixture<ElfBinaries>
{
    [GeneratedRegex(@"\(NEEDED\)\s+Shared library: \[(?<name>[^\]]+)\]")]
    private static partial Regex NeededLine();

    private static async Task<string[]> Readelf(string path)
    {
        var r = await CommandRun.RunAsync("readelf", ["-d", "-W", path]);
        Assert.Equal(0, r.ExitCode);
        return NeededLine().Matches(r.Out).Select(m => m.Groups["name"].Value).ToArray();
    }

    [Theory]
    [InlineData("plain")]
    [InlineData("libx.so")]
    [InlineData("mpich")]
    [InlineData("openmpi")]
    [InlineData("stripped")]
    public async Task Needed_libraries_match_readelf(string name)
    {
        var expected = await Readelf(bin[name]);
        Assert.NotEmpty(expected);
        Assert.Equal(expected, ElfDependencies.Of(bin[name]));
    }

    [Fact]
    public void A_static_executable_needs_nothing() => Assert.Equal([], ElfDependencies.Of(bin["static"]));

    [Fact]
    public void A_script_or_a_missing_file_is_not_elf()
    {
        Assert.Null(ElfDependencies.Of(bin["script"]));
        Assert.Null(ElfDependencies.Of(bin["no-such-file"]));
        Assert.Null(ElfDependencies.Of(bin.Dir));
    }

    [Fact]
    public void Section_headers_are_not_needed()
    {
        // Zero e_shoff, e_shnum and e_shstrndx, as some packers and sstrip leave binaries.
        var image = File.ReadAllBytes(bin["openmpi"]);
        image.AsSpan(0x28, 8).Clear();
        image.AsSpan(0x3c, 4).Clear();
        Assert.Contains("libmpi.so.40", ElfDependencies.Parse(image)!);
    }

    [Theory]
    [InlineData("plain", nameof(MpiLibrary.None))]
    [InlineData("static", nameof(MpiLibrary.None))]
    [InlineData("script", nameof(MpiLibrary.None))]
    [InlineData("libx.so", nameof(MpiLibrary.None))]
    [InlineData("mpich", nameof(MpiLibrary.Mpich))]
    [InlineData("openmpi", nameof(MpiLibrary.OpenMpi))]
    public void The_MPI_of_a_program_is_recognised(string name, string expected) =>
        Assert.Equal(expected, MpiFlavor.Classify(ElfDependencies.Of(bin[name])).ToString());

    [Fact]
    public void Truncated_and_mutated_images_never_throw()
    {
        var original = File.ReadAllBytes(bin["openmpi"]);
        var random = new Random(20261125);
        for (var length = 0; length < 256; length++)
            _ = ElfDependencies.Parse(original.AsSpan(0, length));
        for (var i = 0; i < 2000; i++)
        {
            var image = (byte[])original.Clone();
            // Mutate the headers and the dynamic section, where a parser can be led astray.
            for (var j = random.Next(1, 16); j > 0; j--)
                image[random.Next(random.Next(2) == 0 ? 0x200 : image.Length)] = (byte)random.Next(256);
            var cut = random.Next(4) == 0 ? random.Next(image.Length) : image.Length;
            var result = ElfDependencies.Parse(image.AsSpan(0, cut));
            Assert.True(result is null || result.All(n => n is not null));
        }
    }

    [Fact]
    public void Random_bytes_after_an_ELF_magic_never_throw()
    {
        var random = new Random(7);
        for (var i = 0; i < 5000; i++)
        {
            var image = new byte[random.Next(4, 512)];
            random.NextBytes(image);
            new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }.CopyTo(image, 0);
            if (image.Length > 6)
            {
                image[4] = (byte)random.Next(1, 3);
                image[5] = (byte)random.Next(1, 3);
            }
            _ = ElfDependencies.Parse(image);
        }
    }
}
