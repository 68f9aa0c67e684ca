/* Shows where a rank came from, for the warm fork tests: the pid that ran this program's
 * constructor (the same for every rank forked from one warm master, the rank's own pid when it
 * started cold), whether the fork server's variables leaked into the rank's environment, and
 * its working directory. With "exit CODE", rank 0 then exits with CODE before MPI_Finalize. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int constructor_pid;

__attribute__((constructor)) static void remember_constructor(void)
{
    constructor_pid = (int)getpid();
}

int main(int argc, char **argv)
{
    int rank;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        strcpy(cwd, "?");
    const char *preload = getenv("LD_PRELOAD"), *socket = getenv("SFWARM_SOCKET");
    printf("rank %d constructor %d pid %d preload %s socket %s cwd %s\n", rank, constructor_pid, (int)getpid(),
           preload ? preload : "-", socket ? socket : "-", cwd);
    fflush(stdout);
    if (argc > 2 && strcmp(argv[1], "exit") == 0 && rank == 0)
        exit(atoi(argv[2]));
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return 0;
}
