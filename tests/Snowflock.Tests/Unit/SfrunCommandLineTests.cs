using Snowflock.Cli;
using Snowflock.Launcher;
using Xunit;

namespace Snowflock.Tests.Unit;

[Trait("Area", "unit")]
public sealed class SfrunCommandLineTests
{
    private static readonly Func<string, string?> NoEnvironment = _ => null;

    private static Invocation Parse(params string[] args) => SfrunCommandLine.Parse(args, NoEnvironment);

    private static JobSpec Job(params string[] args)
    {
        var invocation = Parse(args);
        Assert.False(invocation.Help);
        Assert.False(invocation.Version);
        return Assert.IsType<JobSpec>(invocation.Job);
    }

    private static JobSpec JobWithEnvironment(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var invocation = SfrunCommandLine.Parse(args, name => environment.GetValueOrDefault(name));
        return Assert.IsType<JobSpec>(invocation.Job);
    }

    private static string Usage(params string[] args) => Assert.Throws<UsageException>(() => Parse(args)).Message;

    // ---- ranks and program ----

    [Fact]
    public void Launcher_options_reach_the_job_exactly_as_written()
    {
        // Every valued option travels behind a guard character; these once kept it, so
        // -launcher-exec /usr/bin/ssh was "not found" although it was there.
        var job = Job("-launcher", "ssh", "-launcher-exec", "/usr/bin/ssh", "-iface", "eth0", "-n", "2", "/bin/true");
        Assert.Equal("ssh", job.HostLaunch.Launcher);
        Assert.Equal("/usr/bin/ssh", job.HostLaunch.LauncherExec);
        Assert.Equal("eth0", job.HostLaunch.Interface);
    }

    [Fact]
    public void Ranks_program_and_program_arguments()
    {
        var job = Job("-np", "4", "./a", "x", "-y");
        var block = Assert.Single(job.Blocks);
        Assert.Equal(4, block.Ranks);
        Assert.Equal("./a", block.Program);
        Assert.Equal(["x", "-y"], block.Arguments);
        Assert.Equal(4, job.TotalRanks);
    }

    [Theory]
    [InlineData("-n", "4")]
    [InlineData("--np", "4")]
    [InlineData("-np=4")]
    [InlineData("--n=4")]
    [InlineData("-c", "4")]
    public void Rank_count_spellings(params string[] option)
    {
        Assert.Equal(4, Assert.Single(Job([.. option, "./a"]).Blocks).Ranks);
    }

    [Fact]
    public void Without_np_the_count_is_left_to_the_launcher()
    {
        // 0 = not given: the launcher takes the allocation's slot count (1 on a bare host).
        Assert.Equal(0, Assert.Single(Job("./a").Blocks).Ranks);
    }

    [Fact]
    public void Program_arguments_that_look_like_options_belong_to_the_program()
    {
        var block = Assert.Single(Job("-np", "2", "./a", "-np", "5").Blocks);
        Assert.Equal(2, block.Ranks);
        Assert.Equal(["-np", "5"], block.Arguments);
    }

    [Fact]
    public void MPMD_blocks_each_get_their_ranks_program_and_arguments()
    {
        var job = Job("-np", "1", "./a", ":", "-np", "3", "./b", "arg");
        Assert.Equal(2, job.Blocks.Count);
        Assert.Equal((1, "./a"), (job.Blocks[0].Ranks, job.Blocks[0].Program));
        Assert.Empty(job.Blocks[0].Arguments);
        Assert.Equal((3, "./b"), (job.Blocks[1].Ranks, job.Blocks[1].Program));
        Assert.Equal(["arg"], job.Blocks[1].Arguments);
        Assert.Equal(4, job.TotalRanks);
    }

    // ---- environment ----

    [Fact]
    public void Genv_sets_a_variable_for_every_rank()
    {
        var job = Job("-genv", "A", "B", "-genv", "C", "x y", "./a");
        Assert.Equal("B", job.GlobalEnvironment["A"]);
        Assert.Equal("x y", job.GlobalEnvironment["C"]);
        Assert.Equal(EnvironmentPolicy.All, job.Inherit);
    }

    [Fact]
    public void Genv_with_an_empty_value_sets_it_empty()
    {
        var job = Job("-genv", "A", "", "./a");
        Assert.True(job.GlobalEnvironment.TryGetValue("A", out var value));
        Assert.Equal("", value);
    }

    [Fact]
    public void Values_may_start_with_a_dash_or_hold_equals_signs()
    {
        var job = Job("-genv", "A", "-1", "-genv", "B", "k=v", "-wdir", "-dir-", "./a");
        Assert.Equal("-1", job.GlobalEnvironment["A"]);
        Assert.Equal("k=v", job.GlobalEnvironment["B"]);
        Assert.Equal("-dir-", Assert.Single(job.Blocks).WorkingDirectory);
    }

    [Fact]
    public void A_later_genv_of_the_same_name_wins()
    {
        Assert.Equal("2", Job("-genv", "A", "1", "-genv", "A", "2", "./a").GlobalEnvironment["A"]);
    }

    [Fact]
    public void Env_belongs_to_its_block_only()
    {
        var job = Job("-env", "A", "1", "./a", ":", "-env", "B", "2", "./b");
        Assert.Equal(new Dictionary<string, string> { ["A"] = "1" }, job.Blocks[0].Environment);
        Assert.Equal(new Dictionary<string, string> { ["B"] = "2" }, job.Blocks[1].Environment);
        Assert.Empty(job.GlobalEnvironment);
    }

    [Fact]
    public void X_with_a_value_exports_that_value()
    {
        Assert.Equal("V=W", Job("-x", "NAME=V=W", "./a").GlobalEnvironment["NAME"]);
    }

    [Fact]
    public void X_without_a_value_exports_sfruns_own_value_and_unset_stays_unset()
    {
        var job = JobWithEnvironment(new Dictionary<string, string> { ["SET"] = "mine", ["EMPTY"] = "" },
            "-x", "SET", "-x", "EMPTY", "-x", "UNSET", "./a");
        Assert.Equal("mine", job.GlobalEnvironment["SET"]);
        Assert.Equal("", job.GlobalEnvironment["EMPTY"]);
        Assert.False(job.GlobalEnvironment.ContainsKey("UNSET"));
    }

    [Theory]
    [InlineData("-x", "=V")]
    [InlineData("-genv", "", "V")]
    public void An_empty_variable_name_is_refused(params string[] option)
    {
        Assert.Contains("not a valid environment variable name", Usage([.. option, "./a"]));
    }

    [Fact]
    public void Genvlist_passes_only_the_listed_variables()
    {
        var job = Job("-genvlist", "A,B", "-genvlist", "C, ,D", "./a");
        Assert.Equal(EnvironmentPolicy.Listed, job.Inherit);
        Assert.Equal(["A", "B", "C", "D"], job.InheritList);
    }

    [Fact]
    public void Option_values_may_be_empty_or_start_with_a_blank()
    {
        Assert.Equal(" /dir with leading blank", Assert.Single(Job("-wdir", " /dir with leading blank", "./a").Blocks).WorkingDirectory);
        Assert.Equal(["A", "B"], Job("-genvlist", " A, B", "./a").InheritList);
        Assert.Equal(" out.%r", Job("-outfile-pattern", " out.%r", "./a").Output.StdoutPattern);
        Assert.Contains("-wdir", Usage("-wdir", "", "./a"));
    }

    [Fact]
    public void Genvnone_passes_nothing_but_explicit_variables()
    {
        var job = Job("-genvnone", "-genv", "A", "1", "./a");
        Assert.Equal(EnvironmentPolicy.None, job.Inherit);
        Assert.Equal("1", job.GlobalEnvironment["A"]);
    }

    [Fact]
    public void Genvall_is_the_default_and_can_be_asked_for()
    {
        Assert.Equal(EnvironmentPolicy.All, Job("./a").Inherit);
        Assert.Equal(EnvironmentPolicy.All, Job("-genvall", "./a").Inherit);
        Assert.Empty(Job("./a").GlobalEnvironment);
    }

    // ---- placement and output ----

    [Fact]
    public void Wdir_sets_the_working_directory_of_its_block()
    {
        var job = Job("-wdir", "/tmp/w", "./a", ":", "./b");
        Assert.Equal("/tmp/w", job.Blocks[0].WorkingDirectory);
        Assert.Null(job.Blocks[1].WorkingDirectory);
    }

    [Theory]
    [InlineData("-l")]
    [InlineData("--tag-output")]
    [InlineData("-tag-output")]
    [InlineData("-prepend-rank")]
    public void Tagging_output_lines(string option)
    {
        Assert.True(Job(option, "./a").Output.TagLines);
    }

    [Fact]
    public void By_default_output_is_untagged_and_goes_to_sfruns_streams()
    {
        var job = Job("./a");
        Assert.False(job.Output.TagLines);
        Assert.Null(job.Output.StdoutPattern);
        Assert.Null(job.Output.StderrPattern);
        Assert.False(job.PrintAllExitCodes);
        Assert.Null(job.Timeout);
    }

    [Fact]
    public void Outfile_and_errfile_patterns()
    {
        var job = Job("-outfile-pattern", "out.%r", "-errfile-pattern", "err.%r", "./a");
        Assert.Equal("out.%r", job.Output.StdoutPattern);
        Assert.Equal("err.%r", job.Output.StderrPattern);
    }

    [Fact]
    public void Print_all_exitcodes()
    {
        Assert.True(Job("-print-all-exitcodes", "./a").PrintAllExitCodes);
    }

    // ---- timeout ----

    [Fact]
    public void Timeout_option()
    {
        Assert.Equal(TimeSpan.FromSeconds(5), Job("-timeout", "5", "./a").Timeout);
        Assert.Equal(TimeSpan.FromSeconds(1.5), Job("--timeout=1.5", "./a").Timeout);
    }

    [Fact]
    public void MPIEXEC_TIMEOUT_sets_the_timeout_and_the_option_wins_over_it()
    {
        var environment = new Dictionary<string, string> { ["MPIEXEC_TIMEOUT"] = "10" };
        Assert.Equal(TimeSpan.FromSeconds(10), JobWithEnvironment(environment, "./a").Timeout);
        Assert.Equal(TimeSpan.FromSeconds(3), JobWithEnvironment(environment, "-timeout", "3", "./a").Timeout);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("abc")]
    [InlineData("1e3")]
    public void A_timeout_that_is_not_a_positive_number_is_refused(string value)
    {
        Assert.Contains("-timeout", Usage("-timeout", value, "./a"));
        var environment = new Dictionary<string, string> { ["MPIEXEC_TIMEOUT"] = value };
        Assert.Throws<UsageException>(() => JobWithEnvironment(environment, "./a"));
    }

    // ---- help, version, verbosity ----

    [Theory]
    [InlineData("--help")]
    [InlineData("-help")]
    [InlineData("-h")]
    public void Help_needs_no_program(string option)
    {
        var invocation = Parse(option);
        Assert.True(invocation.Help);
        Assert.Null(invocation.Job);
    }

    [Fact]
    public void Help_wins_even_with_a_program()
    {
        Assert.True(Parse("-np", "2", "--help", "./a").Help);
    }

    [Theory]
    [InlineData("--version")]
    [InlineData("-version")]
    [InlineData("-V")]
    public void Version_needs_no_program(string option)
    {
        var invocation = Parse(option);
        Assert.True(invocation.Version);
        Assert.False(invocation.Help);
        Assert.Null(invocation.Job);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1, "-v")]
    [InlineData(1, "--verbose")]
    [InlineData(2, "-vv")]
    [InlineData(2, "-v", "-vv")]
    public void Verbosity(int expected, params string[] options)
    {
        Assert.Equal(expected, Parse([.. options, "./a"]).Verbosity);
    }

    [Fact]
    public void Verbosity_is_known_with_help_too()
    {
        Assert.Equal(1, Parse("-v", "--help").Verbosity);
    }

    [Fact]
    public void Engine_defaults_and_can_be_chosen()
    {
        Assert.Equal(Snowflock.Engine.EngineCatalog.Default, Job("./a").Engine);
        Assert.Equal("qemu", Job("-engine", "qemu", "./a").Engine);
    }

    // ---- errors ----

    [Fact]
    public void Unknown_option()
    {
        Assert.Contains("-frobnicate", Usage("-frobnicate", "./a"));
    }

    [Fact]
    public void Np_without_a_value()
    {
        Assert.Contains("-np", Usage("-np"));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("abc")]
    [InlineData("1.5")]
    [InlineData("+2")]
    [InlineData("99999999999")]
    public void Np_that_is_not_a_positive_whole_number(string value)
    {
        Assert.Contains("-np", Usage("-np", value, "./a"));
    }

    [Theory]
    [InlineData("")]
    [InlineData(" 2")]
    public void Np_that_is_empty_or_padded_is_refused(string value)
    {
        // Refused by CommandLineParser before sfrun's own check, so the message does not name -np (see the report).
        Usage("-np", value, "./a");
    }

    [Theory]
    [InlineData]
    [InlineData("-np", "2")]
    [InlineData("-l")]
    public void No_program(params string[] args)
    {
        Assert.Contains("no program", Usage(args));
    }

    [Fact]
    public void A_block_without_a_program()
    {
        Assert.Contains("no program", Usage(":", "./a"));
        Assert.Contains("no program", Usage("-np", "1", "./a", ":", "-np", "2"));
    }

    [Fact]
    public void Trailing_colon()
    {
        Assert.Contains(":", Usage("-np", "1", "./a", ":"));
    }

    // ---- the xen engine's dom0 ----

    [Fact]
    public void Xen_host_names_the_xen_engine_and_its_dom0()
    {
        var job = Job("--xen-host", "root@dom0", "-np", "2", "./a");
        Assert.Equal("xen", job.Engine);
        Assert.Equal("root@dom0", job.XenHost);
        Assert.Equal("xen", Job("--engine", "xen", "--xen-host", "root@dom0", "./a").Engine);
        Assert.Null(Job("--engine", "xen", "./a").XenHost);
    }

    [Fact]
    public void Xen_host_with_another_engine_is_a_usage_error()
    {
        Assert.Contains("--xen-host is for the xen engine", Usage("--engine", "qemu", "--xen-host", "root@dom0", "./a"));
        Assert.Contains("USER@HOST", Usage("--xen-host", "", "./a"));
    }

    [Fact]
    public void A_warm_domU_job_names_its_program()
    {
        var job = Job("--engine", "xen", "--vm", "w1", "-np", "4", "./a");
        Assert.Equal("w1", job.WarmVm);
        Assert.Equal("./a", Assert.Single(job.Blocks).Program);
        Assert.Contains("needs the program too", Usage("--engine", "xen", "--vm", "w1", "-np", "4"));
        Assert.Contains("contradict", Usage("--xen-host", "h", "--vm", "w1", "--no-warm", "./a"));
    }
}
