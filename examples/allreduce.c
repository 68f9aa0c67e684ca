/* Allreduce benchmark: sums a vector of doubles across ranks for message sizes 8 B .. 1 MiB and
 * checks the result. Timings go to stderr so stdout stays comparable between launchers. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int iters = argc > 1 ? atoi(argv[1]) : 20;
    const int max_count = 1 << 17;
    double *in = malloc(sizeof(double) * max_count), *out = malloc(sizeof(double) * max_count);
    if (!in || !out)
        MPI_Abort(MPI_COMM_WORLD, 2);
    for (int i = 0; i < max_count; i++)
        in[i] = rank + 1 + i;

    for (int count = 1; count <= max_count; count *= 8) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int it = 0; it < iters; it++)
            MPI_Allreduce(in, out, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        double dt = (MPI_Wtime() - t0) / iters;
        for (int i = 0; i < count; i++) {
            double want = (double)size * (size + 1) / 2 + (double)size * i;
            if (out[i] != want) {
                fprintf(stderr, "allreduce: rank %d count %d element %d is %g, want %g\n",
                        rank, count, i, out[i], want);
                MPI_Abort(MPI_COMM_WORLD, 4);
            }
        }
        if (rank == 0) {
            printf("allreduce %8zu bytes: ok\n", count * sizeof(double));
            fprintf(stderr, "allreduce %8zu bytes: %10.2f us\n", count * sizeof(double), dt * 1e6);
        }
    }
    free(in);
    free(out);
    MPI_Finalize();
    return 0;
}
