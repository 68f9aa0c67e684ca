/* Pi by numerical integration of 4/(1+x^2) over [0,1], the classic MPI first program.
 * Output is deterministic (no timings) so runs under sfrun and mpiexec compare byte for byte. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    const double pi25 = 3.141592653589793238462643;
    int rank, size, namelen;
    char name[MPI_MAX_PROCESSOR_NAME];
    long intervals = argc > 1 ? atol(argv[1]) : 10000;

    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Get_processor_name(name, &namelen);

    MPI_Bcast(&intervals, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    double h = 1.0 / (double)intervals, sum = 0.0;
    for (long i = rank + 1; i <= intervals; i += size) {
        double x = h * ((double)i - 0.5);
        sum += 4.0 / (1.0 + x * x);
    }
    double mine = h * sum, pi = 0.0;
    MPI_Reduce(&mine, &pi, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("pi is approximately %.16f, error is %.16f (%d processes, %ld intervals)\n",
               pi, fabs(pi - pi25), size, intervals);
    MPI_Finalize();
    return 0;
}
