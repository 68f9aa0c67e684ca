using System.Reflection;
using System.Text.RegularExpressions;
using CommandLine;
using Snowflock.Cli;
using Xunit;

namespace Snowflock.Tests.Unit;

/// <summary>The catalog is the one list of options: the tokenizer, CommandLineParser's
/// <see cref="SfrunOptions"/> and <c>--help</c> must all agree with it.</summary>
[Trait("Area", "unit")]
public sealed class OptionCatalogTests
{
    private static Dictionary<string, PropertyInfo> OptionProperties() =>
        typeof(SfrunOptions).GetProperties()
            .Select(p => (Property: p, Attribute: p.GetCustomAttribute<OptionAttribute>()))
            .Where(p => p.Attribute is not null)
            .ToDictionary(p => p.Attribute!.LongName, p => p.Property, StringComparer.Ordinal);

    [Fact]
    public void Every_catalog_option_has_an_SfrunOptions_property()
    {
        var properties = OptionProperties();
        foreach (var def in OptionCatalog.Parsed)
            Assert.True(properties.ContainsKey(def.Canonical),
                $"option -{def.Names[0]} (canonical '{def.Canonical}') has no [Option(\"{def.Canonical}\")] on SfrunOptions");
    }

    [Fact]
    public void Every_SfrunOptions_property_is_in_the_catalog()
    {
        var canonical = OptionCatalog.Parsed.Select(d => d.Canonical).ToHashSet(StringComparer.Ordinal);
        foreach (var (longName, property) in OptionProperties())
            Assert.True(canonical.Contains(longName), $"SfrunOptions.{property.Name} ('{longName}') is not in OptionCatalog.Parsed");
        Assert.Equal(OptionCatalog.Parsed.Count, OptionProperties().Count);
    }

    [Fact]
    public void Property_types_fit_the_arity()
    {
        var properties = OptionProperties();
        foreach (var def in OptionCatalog.Parsed)
        {
            var type = properties[def.Canonical].PropertyType;
            if (def.Arity == 0)
                Assert.True(type == typeof(bool), $"flag -{def.Names[0]} should be a bool, is {type.Name}");
            else
                Assert.True(type == typeof(string) || type == typeof(IEnumerable<string>),
                    $"-{def.Names[0]} takes a value, but its property is {type.Name}");
        }
    }

    [Fact]
    public void Every_name_is_found_and_names_are_unique()
    {
        var names = OptionCatalog.Parsed.SelectMany(d => d.Names).ToList();
        Assert.Equal(names.Count, names.Distinct(StringComparer.Ordinal).Count());
        foreach (var def in OptionCatalog.Parsed)
            foreach (var name in def.Names)
                Assert.Same(def, OptionCatalog.Find(name));
        Assert.Null(OptionCatalog.Find("no-such-option"));
        Assert.Null(OptionCatalog.Find(""));
    }

    [Fact]
    public void Every_option_is_accepted_by_the_parser_with_one_or_two_dashes()
    {
        foreach (var def in OptionCatalog.Parsed)
        {
            var values = Enumerable.Repeat(def.Sample, def.Arity).ToArray();
            foreach (var name in def.Names)
                foreach (var dashes in new[] { "-", "--" })
                {
                    var args = new[] { dashes + name }.Concat(values).Append("./a").ToArray();
                    var invocation = SfrunCommandLine.Parse(args, _ => null);
                    Assert.True(invocation.Job is not null || invocation.Help || invocation.Version || invocation.Manual || invocation.Engines || invocation.Info, string.Join(' ', args));
                }
        }
    }

    [Fact]
    public void Usage_mentions_every_option_name()
    {
        var usage = HelpText.Usage();
        foreach (var name in OptionCatalog.Parsed.SelectMany(d => d.Names))
            Assert.True(Regex.IsMatch(usage, $@"(?<![\w-])-{Regex.Escape(name)}(?![\w-])"), $"--help does not mention -{name}");
    }

    [Fact]
    public void Usage_mentions_what_each_option_is_like_and_its_help()
    {
        var usage = HelpText.Usage();
        foreach (var def in OptionCatalog.Parsed)
        {
            Assert.Contains(def.Help, usage);
            Assert.Contains(def.Equivalent, usage);
        }
    }

    [Fact]
    public void Version_names_sfrun()
    {
        Assert.StartsWith("sfrun ", HelpText.Version);
    }
}
