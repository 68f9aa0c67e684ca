/* Ping-pong between ranks 0 and 1: the round-trip latency of small messages and the bandwidth of
 * large ones, as OSU's osu_latency/osu_bw would report them (one-way latency = half a round
 * trip). Other ranks only take part in MPI_Init and MPI_Finalize.
 * Usage: pingpong [iterations, default 2000] [large message bytes, default 1 MiB]
 * Prints: "pingpong: latency 8 B <us> us, bandwidth <bytes> B <MB/s> MB/s" from rank 0. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double round_trips(int rank, char *buf, int bytes, int iters)
{
    int peer = 1 - rank;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++) {
        if (rank == 0) {
            MPI_Send(buf, bytes, MPI_BYTE, peer, 1, MPI_COMM_WORLD);
            MPI_Recv(buf, bytes, MPI_BYTE, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(buf, bytes, MPI_BYTE, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, bytes, MPI_BYTE, peer, 1, MPI_COMM_WORLD);
        }
    }
    return MPI_Wtime() - t0;
}

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    int large = argc > 2 ? atoi(argv[2]) : 1 << 20;
    if (size < 2 || iters < 1 || large < 8) {
        if (rank == 0)
            fprintf(stderr, "pingpong: needs 2 or more ranks, iterations >= 1, large >= 8 bytes\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    char *buf = malloc((size_t)large);
    if (buf == NULL) {
        perror("pingpong: malloc");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    memset(buf, rank, (size_t)large);
    if (rank < 2) {
        round_trips(rank, buf, 8, iters / 10 + 1); /* warm-up: connections, registration */
        double small = round_trips(rank, buf, 8, iters);
        int big_iters = iters / 20 + 1;
        double big = round_trips(rank, buf, large, big_iters);
        if (rank == 0)
            printf("pingpong: latency 8 B %.2f us, bandwidth %d B %.1f MB/s\n", small / iters / 2 * 1e6, large,
                   2.0 * large * big_iters / big / 1e6);
    } else {
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
