/* sfwarm-exec PARENT PROGRAM [ARGS...]: runs PROGRAM (argv[0] = PROGRAM) so that it dies with
 * sfrun. It asks for SIGKILL when its parent dies (PR_SET_PDEATHSIG survives execve), checks that
 * the parent is still PARENT (sfrun may have died before), and execs. Used for ranks that start
 * cold, so that even a SIGKILL of sfrun leaves none behind. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "nofile.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: sfwarm-exec PARENT PROGRAM [ARGS...]\n");
        return 127;
    }
    char *end;
    long parent = strtol(argv[1], &end, 10);
    if (*end != '\0' || parent <= 0) {
        fprintf(stderr, "sfwarm-exec: bad parent pid '%s'\n", argv[1]);
        return 127;
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        fprintf(stderr, "sfwarm-exec: prctl(PR_SET_PDEATHSIG) failed: %s\n", strerror(errno));
        return 127;
    }
    if (getppid() != (pid_t)parent)
        return 127; /* sfrun died before prctl took effect */
    /* Its own session, as hydra gives each rank: a terminal's Ctrl-C reaches only sfrun (which
     * forwards it), and with sched autogroup each rank gets its own share of a busy machine
     * instead of all ranks sharing sfrun's. */
    if (setsid() < 0) {
        fprintf(stderr, "sfwarm-exec: setsid failed: %s\n", strerror(errno));
        return 127;
    }
    if (sfwarm_restore_nofile() != 0)
        return 127;
    execv(argv[2], argv + 2);
    fprintf(stderr, "sfrun: cannot execute %s: %s\n", argv[2], strerror(errno));
    return 127;
}
