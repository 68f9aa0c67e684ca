/* Prints how long this rank's MPI_Init took, in milliseconds: for bench/warm, which compares
 * MPI_Init with and without the warm start-up state (cached topology, UCX_TLS=self,sm). */
#include <mpi.h>
#include <stdio.h>
#include <time.h>

int main(int argc, char **argv)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    MPI_Init(&argc, &argv);
    clock_gettime(CLOCK_MONOTONIC, &b);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    printf("rank %d init_ms %.3f\n", rank, (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6);
    MPI_Finalize();
    return 0;
}
