/* table: load a large table once, then clone workers that share it copy-on-write (SnowFlock API).
 *
 *   table [MB] [WORKERS] [--hold]   load MB (default 200) of data, clone WORKERS (default 8) with
 *                                   sf_request_ticket/sf_clone; each sums its slice into a shared
 *                                   results page; the parent joins and prints the checksum.
 *                                   --hold: each worker says "worker K pid P ready" and waits until
 *                                   the parent's stdin ends (to measure the workers' memory).
 *   table --mpi [MB]                the same result the usual way: every MPI rank loads the whole
 *                                   table, sums its slice, and MPI_Reduce combines the slices.
 *
 * Both print "checksum 0x..." for the same MB, whatever the number of workers or ranks. The table
 * stands for data a program must read and parse before it can work (here generated: splitmix64). */
#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sf.h>

static uint64_t *load(size_t count)
{
    uint64_t *table = malloc(count * sizeof *table);
    if (!table) {
        perror("table: malloc");
        exit(1);
    }
    uint64_t state = 0x5eed;
    for (size_t i = 0; i < count; i++) {
        uint64_t z = (state += 0x9E3779B97F4A7C15u);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
        table[i] = z ^ (z >> 31);
    }
    return table;
}

/* The work on one slice: a mixing sum, so that every element is read. */
static uint64_t work(const uint64_t *table, size_t count, int part, int parts)
{
    size_t begin = count * (size_t)part / (size_t)parts, end = count * (size_t)(part + 1) / (size_t)parts;
    uint64_t sum = 0;
    for (size_t i = begin; i < end; i++)
        sum += (table[i] * 0x2545F4914F6CDD1Du) ^ (table[i] >> 29);
    return sum;
}

static size_t count_of(const char *mb)
{
    long v = mb ? atol(mb) : 200;
    if (v < 1 || v > 65536) {
        fprintf(stderr, "table: MB must be 1..65536, got %s\n", mb);
        exit(2);
    }
    return (size_t)v * 1024 * 1024 / sizeof(uint64_t);
}

static int run_mpi(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    size_t count = count_of(argc > 2 ? argv[2] : NULL);
    uint64_t *table = load(count);
    uint64_t mine = work(table, count, rank, size), total = 0;
    MPI_Reduce(&mine, &total, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("checksum 0x%016" PRIx64 "\n", total);
    free(table);
    MPI_Finalize();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--mpi") == 0)
        return run_mpi(argc, argv);
    int hold = argc > 1 && strcmp(argv[argc - 1], "--hold") == 0;
    if (hold)
        argc--;
    size_t count = count_of(argc > 1 ? argv[1] : NULL);
    int workers = argc > 2 ? atoi(argv[2]) : 8;
    if (workers < 1) {
        fprintf(stderr, "table: WORKERS must be at least 1\n");
        return 2;
    }

    uint64_t *table = load(count);
    /* The only memory the workers write to the parent: one slot each, shared, not copied. */
    uint64_t *results = mmap(NULL, (size_t)workers * sizeof *results, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int go[2];
    if (results == MAP_FAILED || pipe(go) != 0) {
        perror("table: mmap/pipe");
        return 1;
    }
    int ticket = sf_request_ticket(workers);
    if (ticket < 0) {
        fprintf(stderr, "table: %s\n", sf_error());
        return 1;
    }
    int id = sf_clone(ticket);
    if (id < 0) {
        fprintf(stderr, "table: %s\n", sf_error());
        return 1;
    }
    if (id > 0) {
        close(go[1]);
        results[id - 1] = work(table, count, id - 1, workers);
        if (hold) {
            printf("worker %d pid %d ready\n", id, (int)getpid());
            fflush(stdout);
            char c;
            while (read(go[0], &c, 1) < 0 && errno == EINTR)
                ;
        }
        sf_exit(0);
    }
    close(go[0]);
    if (hold) {
        char buf[256];
        while (read(0, buf, sizeof buf) > 0)
            ;
    }
    close(go[1]);
    int *statuses = calloc((size_t)workers, sizeof *statuses);
    if (!statuses || sf_join(ticket, statuses) != 0) {
        fprintf(stderr, "table: %s\n", statuses ? sf_error() : "out of memory");
        return 1;
    }
    uint64_t total = 0;
    for (int i = 0; i < workers; i++) {
        if (!WIFEXITED(statuses[i]) || WEXITSTATUS(statuses[i]) != 0) {
            fprintf(stderr, "table: worker %d failed (status 0x%x)\n", i + 1, statuses[i]);
            return 1;
        }
        total += results[i];
    }
    printf("checksum 0x%016" PRIx64 "\n", total);
    return 0;
}
