/* The smallest MPI program: every rank says who it is. Used by bench/launch. */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    printf("hello from rank %d of %d\n", rank, size);
    MPI_Finalize();
    return 0;
}
