/* Every rank says it is ready, then sleeps in a loop until a signal ends it: for signal forwarding tests.
 * With "before-init" it does so before MPI_Init (bench/memory: what the ranks hold before MPI). */
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rank;
    if (argc > 1 && strcmp(argv[1], "before-init") == 0) {
        printf("ready\n");
        fflush(stdout);
        for (int i = 0; i < 600; i++)
            sleep(1);
        return 0;
    }
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Barrier(MPI_COMM_WORLD);
    printf("ready %d\n", rank);
    fflush(stdout);
    for (int i = 0; i < 600; i++)
        sleep(1);
    MPI_Finalize();
    return 0;
}
