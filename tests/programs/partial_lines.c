/* Each rank writes its line in small unbuffered pieces with pauses, so lines of different ranks
 * interleave at the byte level unless the launcher re-assembles them. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rank;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char line[128];
    snprintf(line, sizeof line, "rank %d says: the quick brown fox jumps over the lazy dog\n", rank);
    for (size_t i = 0; i < strlen(line); i += 5) {
        size_t len = strlen(line) - i < 5 ? strlen(line) - i : 5;
        if (write(1, line + i, len) < 0)
            return 1;
        usleep(1000);
    }
    if (write(2, "err ", 4) < 0 || write(2, line, strlen(line)) < 0)
        return 1;
    MPI_Finalize();
    return 0;
}
