/* fork_chain MODE: starts a fork chain that escapes every parent and process group: each link
 * forks its successor and exits, every 5 ms, for ever (slow enough that the zombies the links
 * leave with their reaper do not fill the pid space of a test machine). No MPI: the chain is what a
 * teardown must not let escape (issue 13, item 8). MODE "exit": the rank then exits 0 at once,
 * leaving the chain behind; "wait": the rank prints "chain started" and sleeps until killed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void chain(void)
{
    struct timespec ms = { 0, 5000000L };
    for (;;) {
        pid_t next = fork();
        if (next < 0) {
            nanosleep(&ms, NULL); /* out of pids for a moment: try again */
            continue;
        }
        if (next > 0)
            _exit(0);
        nanosleep(&ms, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "exit") != 0 && strcmp(argv[1], "wait") != 0)) {
        fprintf(stderr, "usage: fork_chain exit|wait\n");
        return 2;
    }
    pid_t first = fork();
    if (first < 0) {
        fprintf(stderr, "fork_chain: fork failed: %s\n", strerror(errno));
        return 1;
    }
    if (first == 0)
        chain();
    if (strcmp(argv[1], "exit") == 0)
        return 0;
    printf("chain started\n");
    fflush(stdout);
    for (;;)
        pause();
}
