/* Rank argv[1] (default 1) dies in the way argv[2] names after MPI_Init: segv, exit3, exit0
 * (exit 0 without MPI_Finalize), kill9; the others wait in a barrier it never reaches. */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rank;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int who = argc > 1 ? atoi(argv[1]) : 1;
    const char *how = argc > 2 ? argv[2] : "segv";
    if (rank == who) {
        if (strcmp(how, "segv") == 0)
            raise(SIGSEGV);
        else if (strcmp(how, "kill9") == 0)
            raise(SIGKILL);
        else if (strcmp(how, "exit3") == 0)
            exit(3);
        else if (strcmp(how, "exit0") == 0)
            exit(0);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return 0;
}
