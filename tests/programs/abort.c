/* Rank given by argv[1] (default 1) calls MPI_Abort with code argv[2] (default 7); others wait in a barrier. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int rank;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int who = argc > 1 ? atoi(argv[1]) : 1, code = argc > 2 ? atoi(argv[2]) : 7;
    if (rank == who) {
        fprintf(stderr, "rank %d aborting with %d\n", rank, code);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return 0;
}
