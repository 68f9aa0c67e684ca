/* Ranks exchange messages with every peer (an allreduce and a ring of sends), then reach
 * MPI_Finalize far apart: the last rank sleeps `ms` milliseconds (default 500) first. Over TCP
 * this is the pattern on which MPICH 4.0.2 with UCX 1.13 deadlocks in MPI_Finalize every time
 * (the early ranks wait in the PMI barrier while the late one still flushes its endpoints to
 * them), unless libsfucx keeps the waiting ranks progressing. Prints one line per rank. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long ms = argc > 1 ? atol(argv[1]) : 500;

    long mine = rank + 1, sum = 0;
    MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    /* Every rank sends to every other rank, so each has an endpoint to flush to each peer. */
    for (int peer = 0; peer < size; peer++) {
        if (peer == rank)
            continue;
        long out = rank, in = -1;
        MPI_Sendrecv(&out, 1, MPI_LONG, peer, 7, &in, 1, MPI_LONG, peer, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (in != peer) {
            fprintf(stderr, "late_finalize: rank %d got %ld from %d\n", rank, in, peer);
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
    }
    printf("rank %d sum %ld of %d ranks\n", rank, sum, size);
    fflush(stdout);
    if (rank == size - 1) {
        struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
        nanosleep(&t, NULL);
    }
    MPI_Finalize();
    return 0;
}
