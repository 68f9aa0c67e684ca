using Snowflock.Tests.Integration.Support;

namespace Snowflock.Tests.Integration.Vm;

/// <summary>
/// The qemu engine end to end on real QEMU (TCG on these machines): unchanged MPICH programs run one
/// rank per VM clone of a warm template, with the same output and exit codes as under the process
/// engine and hydra, and no VM, network, socket or file of the job left afterwards. One class, so
/// the VMs of these tests do not compete with each other for the two cores.
/// </summary>
[Trait("Engine", "qemu")]
[Trait("Area", "integration")]
public sealed class QemuEngineTests
{
    [Fact]
    public async Task One_rank_in_one_clone_prints_what_the_process_engine_prints()
    {
        using var job = new QemuJob();
        var r = await job.RunAsync("-np", "1", Repo.Example("cpi"), "100000");
        var local = await CommandRun.SfrunAsync("-np", "1", Repo.Example("cpi"), "100000");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(local.Out, r.Out);
        Assert.Equal("", r.Err);
        await job.AssertNothingLeftAsync();
    }

    /// <summary>Two clones are two hosts with their own names and addresses, and can reach each other.</summary>
    [Fact]
    public async Task Two_clones_are_two_machines_on_one_network()
    {
        using var job = new QemuJob();
        var ping = await job.RunAsync("-np", "2", "/bin/sh", "-c", "ping -c 1 -W 5 10.77.0.2 >/dev/null && ping -c 1 -W 5 10.77.0.3 >/dev/null && echo reached");
        Assert.True(ping.ExitCode == 0, ping.Err);
        Assert.Equal(["reached", "reached"], ping.OutLines);
        var names = await job.RunAsync("-l", "-np", "2", "/bin/sh", "-c", "hostname");
        Assert.True(names.ExitCode == 0, names.Err);
        Assert.Equal(["[0] vm0", "[1] vm1"], names.OutLines.Order());
        await job.AssertNothingLeftAsync();
    }

    /// <summary>Issue #15: message-passing MPICH programs across four VM clones (TCP between them)
    /// finish, ten jobs in a row, each bounded: a ring, cpi, an allreduce and ranks that reach
    /// MPI_Finalize 300 ms apart (unfixed, MPICH 4.0.2 with UCX 1.13 deadlocks there; libsfucx in
    /// the guest image keeps the waiting ranks progressing). Output as under the process engine.</summary>
    [Fact]
    public async Task Ten_message_passing_jobs_across_four_clones_all_finish()
    {
        using var job = new QemuJob();
        string[][] programs =
        [
            [Repo.Example("ring"), "3"],
            [Repo.TestProgram("late_finalize"), "300"],
            [Repo.Example("cpi"), "20000"],
            [Repo.Example("allreduce")],
        ];
        for (var run = 0; run < 10; run++)
        {
            var args = programs[run % programs.Length];
            var what = $"job {run + 1} of 10 ({Path.GetFileName(args[0])})";
            CommandResult r;
            try
            {
                r = await CommandRun.RunAsync(Repo.Sfrun, job.Args(["-np", "4", .. args]), env: job.Environment,
                    bound: TimeSpan.FromSeconds(120));
            }
            catch (TimeoutException e)
            {
                throw new Xunit.Sdk.XunitException($"{what} hung: {e.Message}");
            }
            Assert.True(r.ExitCode == 0, $"{what}: exit {r.ExitCode}: {r.Err}");
            if (run < 2)
            {
                // Deterministic output: the same lines as four ranks of the process engine.
                var local = await CommandRun.SfrunAsync(["-np", "4", .. args]);
                Assert.Equal(local.OutLines.Order(StringComparer.Ordinal), r.OutLines.Order(StringComparer.Ordinal));
            }
            else
                Assert.NotEmpty(r.OutLines);
        }
        await job.AssertNothingLeftAsync();
    }

    /// <summary>-ppn k puts k ranks in each VM: they share its hostname and see hydra's local rank
    /// numbering, which MPICH also gets as the PMI process mapping (one node per VM).</summary>
    [Fact]
    public async Task Ppn_puts_several_ranks_in_each_clone()
    {
        using var job = new QemuJob();
        var r = await job.RunAsync("-l", "-ppn", "2", "-np", "4", "/bin/sh", "-c", "echo $(hostname) $MPI_LOCALRANKID/$MPI_LOCALNRANKS");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(["[0] vm0 0/2", "[1] vm0 1/2", "[2] vm1 0/2", "[3] vm1 1/2"], r.OutLines.Order());
        await job.AssertNothingLeftAsync();
    }

    [Fact]
    public async Task MPI_Abort_in_a_clone_ends_the_job_with_its_code()
    {
        using var job = new QemuJob();
        var r = await job.RunAsync("-np", "2", Repo.TestProgram("abort"), "1", "7");
        Assert.Equal(7, r.ExitCode);
        Assert.Contains("sfrun: rank 1 (pid ", r.Err);
        Assert.Contains("in vm1) called MPI_Abort with exit code 7", r.Err);
        await job.AssertNothingLeftAsync();
    }

    [Theory]
    [InlineData("segv", 11, "killed by signal 11 (SIGSEGV)")]
    [InlineData("exit3", 3, "exited with code 3 before calling MPI_Finalize")]
    public async Task A_crashing_rank_in_a_clone_ends_the_job_and_is_named(string how, int exitCode, string report)
    {
        using var job = new QemuJob();
        var r = await job.RunAsync("-np", "2", Repo.TestProgram("crash"), "1", how);
        Assert.Equal(exitCode, r.ExitCode);
        var line = Assert.Single(r.Err.Split('\n'), l => l.StartsWith("sfrun: ", StringComparison.Ordinal));
        Assert.Contains("rank 1 (pid ", line);
        Assert.Contains("in vm1)", line);
        Assert.Contains(report, line);
        await job.AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Stdin_reaches_rank_0_inside_its_clone()
    {
        using var job = new QemuJob();
        var input = "first line\nsecond line\n"u8.ToArray();
        var r = await CommandRun.RunAsync(Repo.Sfrun, job.Args("-np", "1", "/bin/sh", "-c", "cat; echo done"), stdin: input,
            env: job.Environment, bound: QemuJob.Bound);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal("first line\nsecond line\ndone\n", r.Out);
        await job.AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Ctrl_C_stops_the_ranks_and_destroys_every_clone()
    {
        using var job = new QemuJob();
        await using var run = job.Start("-np", "2", "/bin/sh", "-c", "echo ready; while :; do sleep 0.1; done");
        await run.WaitForLinesAsync("ready", 2, QemuJob.Bound);
        Assert.True(Leaks.ProcessesWithTag(job.Tag).Count >= 2, "the clones' QEMUs carry the tag while they run");
        run.Signal(2);
        var r = await run.WaitAsync(QemuJob.Bound);
        Assert.Equal(130, r.ExitCode);
        Assert.Contains("interrupted by SIGINT", r.Err);
        await job.AssertNothingLeftAsync();
    }

    /// <summary>Ctrl-C while the VMs are still booting (a cold boot takes seconds under TCG) ends the
    /// job at once: the set-up is cancelled, not waited for.</summary>
    [Fact]
    public async Task Ctrl_C_during_set_up_cancels_it_and_leaves_nothing()
    {
        using var job = new QemuJob();
        await using var run = job.Start("--no-warm", "-np", "1", "/bin/sh", "-c", "echo ready; sleep 100");
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.Equal("", run.OutSoFar);
        run.Signal(2);
        var r = await run.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(130, r.ExitCode);
        Assert.Contains("interrupted by SIGINT", r.Err);
        Assert.Equal("", r.Out);
        await job.AssertNothingLeftAsync();
    }

    /// <summary>kill -9 of sfrun: every QEMU dies with it (PR_SET_PDEATHSIG through sfwarm-exec), and so
    /// does the job's network namespace; the folder of sockets is removed by the next job.</summary>
    [Fact]
    public async Task SIGKILL_of_sfrun_takes_every_clone_with_it_and_the_next_job_sweeps_its_files()
    {
        using var job = new QemuJob();
        await using (var run = job.Start("-np", "2", "/bin/sh", "-c", "echo ready; while :; do sleep 0.1; done"))
        {
            await run.WaitForLinesAsync("ready", 2, QemuJob.Bound);
            run.Signal(9);
            await run.WaitAsync(QemuJob.Bound);
        }
        await Leaks.AssertNoneAsync(job.Tag);
        var next = await job.RunAsync("-np", "1", "/bin/true");
        Assert.True(next.ExitCode == 0, next.Err);
        await job.AssertNothingLeftAsync();
    }

    [Fact]
    public async Task Cold_boot_with_no_warm_runs_the_same_program()
    {
        using var job = new QemuJob();
        var r = await job.RunAsync("--no-warm", "-np", "1", Repo.Example("cpi"), "1000");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.StartsWith("pi is approximately", r.Out);
        await job.AssertNothingLeftAsync();
    }

    /// <summary>Under TCG the qemu engine is opt-in (correct but slow); SFRUN_ENGINE picks the default
    /// engine for scripts that cannot be edited.</summary>
    [Fact]
    public async Task The_default_engine_is_process_under_TCG_and_SFRUN_ENGINE_overrides_it()
    {
        var plain = await CommandRun.SfrunAsync("--engines");
        Assert.Contains(plain.OutLines, l => l.StartsWith("process  usable    (default)", StringComparison.Ordinal));
        Assert.Contains(plain.OutLines, l => l.StartsWith("qemu     usable    VM clones", StringComparison.Ordinal) && l.Contains("TCG"));
        var chosen = await CommandRun.RunAsync(Repo.Sfrun, ["--engines"], env: new Dictionary<string, string> { ["SFRUN_ENGINE"] = "qemu" });
        Assert.Contains(chosen.OutLines, l => l.StartsWith("qemu     usable    (default)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_missing_qemu_is_one_line_that_says_what_to_install()
    {
        using var job = new QemuJob();
        var env = job.Environment;
        env["SFRUN_QEMU"] = "/nonexistent/qemu-system-x86_64";
        var r = await CommandRun.RunAsync(Repo.Sfrun, job.Args("-np", "1", Repo.Example("cpi")), env: env);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("sfrun: qemu engine: qemu-system-x86_64 not found; install qemu-system-x86 (scripts/setup does) or use --engine process\n", r.Err);
        await job.AssertNothingLeftAsync();
    }
}
