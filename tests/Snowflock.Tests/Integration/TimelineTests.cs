using System.Xml.Linq;
using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration;

/// <summary>--timeline writes a well-formed SVG (or HTML page) with one row per rank.</summary>
[Trait("Engine", "process")]
[Trait("Area", "integration")]
public sealed class TimelineTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    [Theory]
    [InlineData(".svg")]
    [InlineData(".html")]
    public async Task A_timeline_of_the_job_is_written(string extension)
    {
        var path = Path.Combine(Path.GetTempPath(), $"sftest-timeline-{Guid.NewGuid():N}{extension}");
        try
        {
            var r = await CommandRun.SfrunAsync("--timeline", path, "-np", "4", Repo.Example("cpi"));
            Assert.Equal(0, r.ExitCode);
            var text = await File.ReadAllTextAsync(path);
            if (extension == ".html")
            {
                Assert.StartsWith("<!DOCTYPE html>", text);
                text = text[text.IndexOf("<svg", StringComparison.Ordinal)..(text.IndexOf("</svg>", StringComparison.Ordinal) + 6)];
            }
            var svg = XDocument.Parse(text).Root!;
            Assert.Equal(Svg + "svg", svg.Name);
            var labels = svg.Elements(Svg + "text").Select(t => t.Value).ToList();
            Assert.Equal(["rank 0", "rank 1", "rank 2", "rank 3"], labels.Where(l => l.StartsWith("rank ", StringComparison.Ordinal)));
            var bars = svg.Elements(Svg + "rect").Select(b => b.Element(Svg + "title")?.Value).Where(t => t is not null).ToList();
            for (var rank = 0; rank < 4; rank++)
            {
                Assert.Contains(bars, t => t!.StartsWith($"rank {rank} start-up:", StringComparison.Ordinal));
                Assert.Contains(bars, t => t!.StartsWith($"rank {rank} MPI:", StringComparison.Ordinal));
            }
            Assert.Contains(svg.Elements(Svg + "line"), l => l.Element(Svg + "title")?.Value.StartsWith("PMI barrier 1 complete", StringComparison.Ordinal) == true);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task A_failed_job_names_its_cause_in_the_timeline_title()
    {
        var path = Path.Combine(Path.GetTempPath(), $"sftest-timeline-{Guid.NewGuid():N}.svg");
        try
        {
            var r = await CommandRun.SfrunAsync("--timeline", path, "-np", "3", Repo.TestProgram("crash"), "1", "segv");
            Assert.Equal(11, r.ExitCode);
            var svg = XDocument.Parse(await File.ReadAllTextAsync(path)).Root!;
            Assert.Contains("rank 1", svg.Element(Svg + "title")!.Value);
            Assert.Contains("SIGSEGV", svg.Element(Svg + "title")!.Value);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
