/* Rank 0 copies its stdin to stdout and reports the byte count; other ranks report that their stdin is empty. */
#include <mpi.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rank;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char buf[4096];
    long total = 0;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        if (rank == 0 && write(1, buf, (size_t)n) != n)
            return 1;
        total += n;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    fprintf(stderr, "rank %d read %ld bytes\n", rank, total);
    MPI_Finalize();
    return 0;
}
