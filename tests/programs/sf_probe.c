/* Drives the SnowFlock clone API (libsf) for the clone API tests; one mode per behaviour. Prints
 * one line per fact ("clone ID pid PID", "status ID exit CODE", "error ENAME: message") so the
 * tests read what happened. Not an MPI program unless the mode is "mpi".
 *   ids N        N clones each say who they are; the parent joins
 *   exits N      clone i ends with sf_exit(10 * i), the last one is killed by SIGTERM
 *   kill N       the clones sleep; the parent kills them with sf_kill, then checks they are gone
 *   leave N      the clones sleep (no longer dying with the parent); the parent waits for EOF on
 *                stdin and exits without joining
 *   misuse       every kind of bad call, one error line each
 *   budget N     holds a ticket for N - 1 clones, asks for 2 more, kills, asks again
 *   seeds N      srand(42) before cloning; each clone prints rand() and getrandom() bytes
 *   nested       clone 1 clones 2 of its own
 *   agent        prints SF_AGENT and waits for EOF on stdin
 *   mpi N        MPI_Init, then N clones, join, MPI_Finalize */
#include <errno.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sf.h>

static const char *ename(int e)
{
    switch (e) {
    case EINVAL: return "EINVAL";
    case E2BIG: return "E2BIG";
    case EAGAIN: return "EAGAIN";
    case EPERM: return "EPERM";
    case ECHILD: return "ECHILD";
    case EALREADY: return "EALREADY";
    case EBUSY: return "EBUSY";
    default: return strerror(e);
    }
}

static int report(int rc)
{
    if (rc < 0)
        printf("error %s: %s\n", ename(errno), sf_error());
    return rc;
}

static void print_statuses(int n, const int *statuses)
{
    for (int i = 0; i < n; i++) {
        if (WIFEXITED(statuses[i]))
            printf("status %d exit %d\n", i + 1, WEXITSTATUS(statuses[i]));
        else if (WIFSIGNALED(statuses[i]))
            printf("status %d signal %d\n", i + 1, WTERMSIG(statuses[i]));
    }
}

static void wait_for_stdin_eof(void)
{
    char buf[256];
    while (read(0, buf, sizeof buf) > 0)
        ;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "ids";
    int n = argc > 2 ? atoi(argv[2]) : 4;

    if (strcmp(mode, "misuse") == 0) {
        report(sf_request_ticket(0));
        report(sf_join(999, NULL));
        report(sf_exit(0));
        int t = report(sf_request_ticket(2));
        report(sf_join(t, NULL));
        int id = report(sf_clone(t));
        if (id > 0)
            sf_exit(0);
        report(sf_clone(t));
        report(sf_join(t, NULL));
        report(sf_join(t, NULL));
        report(sf_kill(t));
        printf("misuse done\n");
        return 0;
    }
    if (strcmp(mode, "budget") == 0) {
        int held = report(sf_request_ticket(n - 1));
        report(sf_request_ticket(2));
        report(sf_kill(held));
        int again = report(sf_request_ticket(2));
        printf("granted %s\n", again > 0 ? "yes" : "no");
        return 0;
    }
    if (strcmp(mode, "agent") == 0) {
        const char *agent = getenv("SF_AGENT");
        printf("agent %s\n", agent ? agent : "-");
        wait_for_stdin_eof();
        return 0;
    }
    if (strcmp(mode, "seeds") == 0)
        srand(42);
    if (strcmp(mode, "mpi") == 0)
        MPI_Init(&argc, &argv);
    if (strcmp(mode, "nested") == 0)
        n = 2;

    int t = report(sf_request_ticket(n));
    if (t < 0)
        return 3;
    int id = report(sf_clone(t));
    if (id < 0)
        return 4;
    if (id > 0) {
        if (strcmp(mode, "seeds") == 0) {
            unsigned long long bytes;
            if (getrandom(&bytes, sizeof bytes, 0) != (ssize_t)sizeof bytes)
                bytes = 0;
            printf("clone %d rand %d getrandom %016llx\n", id, rand(), bytes);
        } else if (strcmp(mode, "kill") == 0 || strcmp(mode, "leave") == 0) {
            if (strcmp(mode, "leave") == 0)
                prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0); /* as a clone that escaped its parent's fate */
            printf("clone %d pid %d ready\n", id, (int)getpid());
            for (;;)
                pause();
        } else if (strcmp(mode, "exits") == 0 && id == n) {
            raise(SIGTERM);
        } else if (strcmp(mode, "nested") == 0 && id == 1) {
            int inner = report(sf_request_ticket(2));
            int sub = report(sf_clone(inner));
            if (sub > 0) {
                printf("grandclone %d of clone %d pid %d\n", sub, id, (int)getpid());
                sf_exit(0);
            }
            int st[2];
            report(sf_join(inner, st));
            printf("clone 1 joined its clones: %d %d\n", st[0], st[1]);
        } else {
            printf("clone %d pid %d parent %d\n", id, (int)getpid(), (int)getppid());
        }
        sf_exit(strcmp(mode, "exits") == 0 ? 10 * id : 0);
    }

    if (strcmp(mode, "kill") == 0) {
        usleep(100000);
        report(sf_kill(t));
        printf("killed\n");
        return 0;
    }
    if (strcmp(mode, "leave") == 0) {
        printf("parent %d waits\n", (int)getpid());
        wait_for_stdin_eof();
        return 0;
    }
    int *statuses = calloc((size_t)n, sizeof *statuses);
    if (report(sf_join(t, statuses)) < 0)
        return 5;
    printf("joined %d\n", n);
    print_statuses(n, statuses);
    free(statuses);
    if (strcmp(mode, "mpi") == 0)
        MPI_Finalize();
    return 0;
}
