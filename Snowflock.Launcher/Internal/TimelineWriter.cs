using System.Globalization;
using System.Security;
using System.Text;

namespace Snowflock.Launcher.Internal;

/// <summary>
/// Renders a <see cref="Timeline"/> as an SVG (or an HTML page holding it): one row per rank with
/// its start-up (started → MPI_Init reached PMI), MPI (→ MPI_Finalize) and exit phases, dashed
/// lines for job-wide steps, so a user sees where start-up time went and which rank was slow.
/// </summary>
internal static class TimelineWriter
{
    private const int Left = 150, Right = 30, Top = 60, Row = 18, Width = 1000;

    public static void Write(string path, Timeline t, string title)
    {
        var svg = Svg(t, title);
        var text = path.EndsWith(".html", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".htm", StringComparison.OrdinalIgnoreCase)
            ? $"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{Esc(title)}</title>\n" +
              "<style>body{font-family:sans-serif;margin:16px;background:#fff}</style></head>\n<body>\n" + svg + "\n</body></html>\n"
            : svg;
        File.WriteAllText(path, text, new UTF8Encoding(false));
    }

    private static string F(double v) => v.ToString("0.#", CultureInfo.InvariantCulture);
    private static string Esc(string s) => SecurityElement.Escape(s) ?? "";

    public static string Svg(Timeline t, string title)
    {
        var end = Math.Max(1, t.Ranks.Select(r => r.Exited ?? 0).Concat(t.JobMarks.Select(m => m.At)).DefaultIfEmpty(1).Max());
        double X(double ms) => Left + ms / end * (Width - Left - Right);
        var height = Top + t.Ranks.Length * Row + 50;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{height}\" viewBox=\"0 0 {Width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n");
        sb.Append(CultureInfo.InvariantCulture, $"<title>{Esc(title)}</title>\n<rect width=\"{Width}\" height=\"{height}\" fill=\"white\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"10\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{Esc(title)}</text>\n");
        // Legend.
        var legend = new[] { ("#9ecae1", "start-up: started \u2192 MPI_Init reached sfrun"), ("#3182bd", "MPI: \u2192 MPI_Finalize"), ("#fdae6b", "exit: \u2192 process ended"), ("#e6550d", "failed") };
        var lx = 10.0;
        foreach (var (color, label) in legend)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(lx)}\" y=\"28\" width=\"12\" height=\"10\" fill=\"{color}\"/><text x=\"{F(lx + 16)}\" y=\"37\">{Esc(label)}</text>\n");
            lx += 16 + label.Length * 6.2 + 18;
        }
        // Axis with five ticks.
        var axisY = Top + t.Ranks.Length * Row + 8;
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{axisY}\" x2=\"{Width - Right}\" y2=\"{axisY}\" stroke=\"#444\"/>\n");
        for (var i = 0; i <= 5; i++)
        {
            var ms = end * i / 5;
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(X(ms))}\" y1=\"{axisY}\" x2=\"{F(X(ms))}\" y2=\"{axisY + 4}\" stroke=\"#444\"/><text x=\"{F(X(ms))}\" y=\"{axisY + 16}\" text-anchor=\"middle\">{F(ms)} ms</text>\n");
        }
        // Job-wide marks.
        foreach (var (at, what) in t.JobMarks)
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(X(at))}\" y1=\"{Top - 6}\" x2=\"{F(X(at))}\" y2=\"{axisY}\" stroke=\"#888\" stroke-dasharray=\"3,3\"><title>{Esc(what)} at {F(at)} ms</title></line>\n");
        // One row per rank.
        for (var r = 0; r < t.Ranks.Length; r++)
        {
            var rt = t.Ranks[r];
            var y = Top + r * Row;
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 8}\" y=\"{y + 12}\" text-anchor=\"end\">rank {r}</text>\n");
            var failed = rt.Exit is not null && rt.Exit != "exit code 0";
            Bar(sb, X, rt.Started, rt.Initialized ?? (rt.Finalized is null ? rt.Exited : null), y, "#9ecae1", $"rank {r} start-up");
            Bar(sb, X, rt.Initialized, rt.Finalized ?? rt.Exited, y, failed && rt.Finalized is null ? "#e6550d" : "#3182bd", $"rank {r} MPI");
            Bar(sb, X, rt.Finalized, rt.Exited, y, failed ? "#e6550d" : "#fdae6b", $"rank {r} exit ({rt.Exit})");
            if (rt.Exit is { } exit)
                sb.Append(CultureInfo.InvariantCulture, $"<title>rank {r}: {Esc(exit)}</title>\n");
        }
        sb.Append("</svg>");
        return sb.ToString();
    }

    private static void Bar(StringBuilder sb, Func<double, double> x, double? from, double? to, int y, string color, string what)
    {
        if (from is not { } a || to is not { } b)
            return;
        var w = Math.Max(1, x(b) - x(a));
        sb.Append(CultureInfo.InvariantCulture,
            $"<rect x=\"{F(x(a))}\" y=\"{y + 2}\" width=\"{F(w)}\" height=\"{Row - 4}\" fill=\"{color}\"><title>{Esc(what)}: {F(a)} \u2192 {F(b)} ms ({F(b - a)} ms)</title></rect>\n");
    }
}
