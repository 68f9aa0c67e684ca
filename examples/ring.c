/* A token travels the ring `laps` times; every hop adds the sender's rank, and every rank checks
 * the value it receives against the value it must be, so a mis-wired job fails loudly. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int laps = argc > 1 ? atoi(argv[1]) : 3;
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    long token = 0, lap_sum = (long)size * (size - 1) / 2;

    for (int lap = 0; lap < laps; lap++) {
        if (rank == 0) {
            /* Non-blocking send: with one rank, rank 0 sends to itself. */
            MPI_Request req;
            long out = token;
            MPI_Isend(&out, 1, MPI_LONG, next, lap, MPI_COMM_WORLD, &req);
            MPI_Recv(&token, 1, MPI_LONG, prev, lap, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Wait(&req, MPI_STATUS_IGNORE);
            long want = lap_sum * (lap + 1);
            if (token != want) {
                fprintf(stderr, "ring: rank 0 lap %d got %ld, want %ld\n", lap, token, want);
                MPI_Abort(MPI_COMM_WORLD, 3);
            }
        } else {
            MPI_Recv(&token, 1, MPI_LONG, prev, lap, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            long want = lap_sum * lap + (long)rank * (rank - 1) / 2;
            if (token != want) {
                fprintf(stderr, "ring: rank %d lap %d got %ld, want %ld\n", rank, lap, token, want);
                MPI_Abort(MPI_COMM_WORLD, 3);
            }
            token += rank;
            MPI_Send(&token, 1, MPI_LONG, next, lap, MPI_COMM_WORLD);
        }
    }
    if (rank == 0)
        printf("ring: %d ranks, %d laps, token %ld ok\n", size, laps, token);
    MPI_Finalize();
    return 0;
}
