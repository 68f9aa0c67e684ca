/* sfwarm-exec PARENT PROGRAM [ARGS...]: runs PROGRAM (argv[0] = PROGRAM) so that it dies with
 * sfrun. It asks for SIGKILL when its parent dies (PR_SET_PDEATHSIG survives execve), checks that
 * the parent is still PARENT (sfrun may have died before), and execs. Used for ranks that start
 * cold and for warm masters, so that even a SIGKILL of sfrun leaves none behind. PARENT 0 skips
 * the guard: a warm VM's master outlives the sfrun that created it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cgroup.h"
#include "nofile.h"

/* A program starts as under a shell or hydra: every signal at its default action and none
 * blocked. execve keeps what sfrun's runtime left, and .NET ignores SIGPIPE (and an sfrun started
 * with `&` inherits SIGINT and SIGQUIT ignored): a rank's `yes | head -1` would then say "Broken
 * pipe" instead of dying quietly, and a rank could not be interrupted. Handlers are reset by
 * execve anyway; the ignored signals are what this is for. */
static int reset_signals(void)
{
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    if (sigemptyset(&dfl.sa_mask) != 0) {
        fprintf(stderr, "sfwarm-exec: sigemptyset failed: %s\n", strerror(errno));
        return -1;
    }
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        /* EINVAL: a number that is no signal, or one of glibc's reserved real-time signals. */
        if (sigaction(sig, &dfl, NULL) != 0 && errno != EINVAL) {
            fprintf(stderr, "sfwarm-exec: sigaction(%d, SIG_DFL) failed: %s\n", sig, strerror(errno));
            return -1;
        }
    }
    sigset_t none;
    if (sigemptyset(&none) != 0 || sigprocmask(SIG_SETMASK, &none, NULL) != 0) {
        fprintf(stderr, "sfwarm-exec: sigprocmask(SIG_SETMASK, {}) failed: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: sfwarm-exec PARENT PROGRAM [ARGS...]\n");
        return 127;
    }
    char *end;
    long parent = strtol(argv[1], &end, 10);
    if (*end != '\0' || parent < 0) {
        fprintf(stderr, "sfwarm-exec: bad parent pid '%s'\n", argv[1]);
        return 127;
    }
    if (parent > 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
            fprintf(stderr, "sfwarm-exec: prctl(PR_SET_PDEATHSIG) failed: %s\n", strerror(errno));
            return 127;
        }
        if (getppid() != (pid_t)parent)
            return 127; /* sfrun died before prctl took effect */
    }
    /* Its own session, as hydra gives each rank: a terminal's Ctrl-C reaches only sfrun (which
     * forwards it), and with sched autogroup each rank gets its own share of a busy machine
     * instead of all ranks sharing sfrun's. */
    if (setsid() < 0) {
        fprintf(stderr, "sfwarm-exec: setsid failed: %s\n", strerror(errno));
        return 127;
    }
    if (sfwarm_restore_nofile() != 0)
        return 127;
    /* Before exec: the program's first fork is inside the job's cgroup already. */
    if (sfwarm_join_job_cgroup() != 0)
        return 127;
    if (reset_signals() != 0)
        return 127;
    execv(argv[2], argv + 2);
    fprintf(stderr, "sfrun: cannot execute %s: %s\n", argv[2], strerror(errno));
    return 127;
}
