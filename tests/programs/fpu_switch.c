/* Checks that a rank's SSE/AVX registers survive the context switches between ranks that share a
 * CPU (-ppn k in one VM): every rank puts its own pattern in xmm7/ymm7, yields (the kernel switches
 * to another rank), and compares; then it holds the pattern in the register through a busy loop
 * long enough to be preempted. A register that comes back holding another process's bytes is a
 * leak: in real programs it corrupts whatever the compiler or libc kept in a vector register
 * (memcpy, strchr, struct copies), and they crash. Prints one line per rank; exits 1 on a leak.
 * Usage: fpu_switch [yields (default 2000)] */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int avx_usable(void)
{
    unsigned a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!((c >> 27) & 1) || !((c >> 28) & 1)) /* OSXSAVE, AVX */
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6) == 6; /* the OS saves SSE and AVX state */
}

/* Loads want into the register, yields, stores the register into got. */
static void through_yield(int avx, const uint8_t *want, uint8_t *got)
{
    long ret;
    if (avx)
        __asm__ volatile("vmovdqu (%2), %%ymm7\n\tsyscall\n\tvmovdqu %%ymm7, (%3)"
                         : "=a"(ret) : "a"((long)SYS_sched_yield), "r"(want), "r"(got) : "rcx", "r11", "memory", "xmm7");
    else
        __asm__ volatile("movdqu (%2), %%xmm7\n\tsyscall\n\tmovdqu %%xmm7, (%3)"
                         : "=a"(ret) : "a"((long)SYS_sched_yield), "r"(want), "r"(got) : "rcx", "r11", "memory", "xmm7");
    (void)ret;
}

/* Holds want in xmm7 through `rounds` compares with memory; returns how many found it changed. */
static unsigned long through_preemption(const uint8_t *want, unsigned long rounds)
{
    unsigned long bad;
    __asm__ volatile("movdqu (%1), %%xmm7\n\t"
                     "xor %0, %0\n"
                     "1:\n\t"
                     "movdqu (%1), %%xmm6\n\t"
                     "pxor %%xmm7, %%xmm6\n\t"
                     "ptest %%xmm6, %%xmm6\n\t"
                     "jz 2f\n\t"
                     "inc %0\n\t"
                     "movdqu (%1), %%xmm7\n"
                     "2:\n\t"
                     "dec %2\n\t"
                     "jnz 1b"
                     : "=&r"(bad), "+r"(want), "+r"(rounds)
                     :
                     : "memory", "xmm6", "xmm7", "cc");
    return bad;
}

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long yields = argc > 1 ? atol(argv[1]) : 2000;
    int avx = avx_usable();
    unsigned pid = (unsigned)getpid();
    uint8_t want[32], got[32];
    long leaks = 0;
    /* Every rank checks at the same time, so ranks sharing a CPU switch between each other. */
    MPI_Barrier(MPI_COMM_WORLD);
    for (long i = 0; i < yields; i++) {
        for (int b = 0; b < 32; b++)
            want[b] = (uint8_t)(pid * 131 + (unsigned)rank * 29 + (unsigned)i + (unsigned)b * 13);
        memset(got, 0, sizeof got);
        through_yield(avx, want, got);
        if (memcmp(want, got, avx ? 32 : 16) != 0 && leaks++ < 3) {
            fprintf(stderr, "fpu_switch: rank %d: vector register changed across a yield (%ld):", rank, i);
            for (int b = 0; b < (avx ? 32 : 16); b++)
                fprintf(stderr, " %02x/%02x", got[b], want[b]);
            fprintf(stderr, "\n");
        }
        if (i % 100 == 99) {
            unsigned long bad = through_preemption(want, 1UL << 20);
            if (bad != 0 && leaks++ < 3)
                fprintf(stderr, "fpu_switch: rank %d: vector register changed %lu times while preempted\n", rank, bad);
        }
    }
    long all = 0;
    MPI_Reduce(&leaks, &all, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    printf("rank %d: %s\n", rank, leaks == 0 ? "vector registers kept" : "vector registers LEAKED");
    if (rank == 0)
        printf("fpu_switch: %ld leaks in %d ranks\n", all, size);
    MPI_Finalize();
    return all != 0;
}
