/*
 * libsfinit: preloaded into every rank sfrun starts, whatever the program is, so that a rank
 * whose MPI sfrun could not see coming still joins the job, or fails loudly.
 *
 * Why: sfrun tells a program's MPI from its ELF (DT_NEEDED). A rank started through something
 * else — python3 running mpi4py, `env`, `nice`, a shell script that execs the program — shows
 * sfrun a program without MPI, and Open MPI 4.1, which has no PMI-1 client of its own, only
 * reaches sfrun's PMI through its flux component when FLUX_JOB_ID and FLUX_PMI_LIBRARY_PATH are
 * set. Without them every rank runs MPI_COMM_WORLD of size 1 and exits 0: wrong results,
 * silently. Those two variables cannot simply be put in every rank's environment: Open MPI's own
 * mpirun, started from a rank (a script that runs a nested job), crashes on FLUX_JOB_ID
 * (SIGSEGV, measured with 4.1.4). So sfrun passes them as SFRUN_FLUX_JOB_ID and
 * SFRUN_FLUX_PMI_LIBRARY_PATH, and this library sets the real names only inside MPI_Init of an
 * Open MPI process, for the time of the call.
 *
 * After MPI_Init returns, it compares the size of MPI_COMM_WORLD with PMI_SIZE, the job's size
 * sfrun set: a rank whose PMI connection was lost on the way (a wrapper closed PMI_FD, cleared
 * PMI_*, a Python subprocess with close_fds) became a singleton. It says so on stderr and exits
 * 1, which fails the job, instead of computing alone. A process started by another launcher
 * inside a rank (mpirun, which sets PMIX_NAMESPACE; mpiexec, which sets its own PMI_SIZE) is
 * judged against that launcher's size or not at all. SFRUN_SINGLETON_CHECK=0 turns the check off.
 *
 * Only MPI_Init, MPI_Init_thread and their PMPI_ names are defined here, and one constructor:
 * with --bind-to, sfrun puts the rank's CPUs in SFRUN_CPUS and the constructor pins the process to
 * them before main() (a warm clone never runs constructors: libsfwarm does the same there).
 * Without SFRUN_CPUS a program that never calls MPI_Init runs exactly as without the library.
 */
#include <dlfcn.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload_symbol.h"

#define EXPORT __attribute__((visibility("default")))

typedef int (*init_fn)(int *, char ***);
typedef int (*init_thread_fn)(int *, char ***, int, int *);
typedef int (*comm_size_fn)(void *, int *);

/* MPICH's ABI (MPICH, Intel MPI, MVAPICH) has MPI_COMM_WORLD as this constant handle. */
#define MPICH_COMM_WORLD ((void *)(intptr_t)0x44000000)

/* The MPI library's own definition of a symbol (see ../include/preload_symbol.h). */
static void *mpi_symbol(const char *name)
{
    static const char *const owners[] = { "libmpi.so.40", "libmpich.so.12", "libmpi.so.12", "libmpi.so" };
    return sf_preload_next(name, owners, sizeof owners / sizeof owners[0]);
}

/* Started by another launcher inside the rank (Open MPI's orted sets these for its children). */
static int other_launcher(void)
{
    return getenv("PMIX_NAMESPACE") != NULL || getenv("OMPI_MCA_orte_launch") != NULL;
}

/* Open MPI's MPI_COMM_WORLD. Not the address of ompi_mpi_comm_world as the library defines it:
 * a program that names MPI_COMM_WORLD has its own copy (a copy relocation) and the library uses
 * that one; ompi_mpi_comm_world_addr is Open MPI's own pointer to whichever is in use. */
static void *open_mpi_world(void)
{
    void **addr = dlsym(RTLD_DEFAULT, "ompi_mpi_comm_world_addr");
    if (addr == NULL)
        addr = mpi_symbol("ompi_mpi_comm_world_addr");
    return addr != NULL ? *addr : NULL;
}

static int is_open_mpi(void) { return mpi_symbol("ompi_mpi_comm_world_addr") != NULL; }

/* Gives Open MPI the variables that select its flux component; 1 if this call set them. */
static int lend_flux_variables(void)
{
    const char *job = getenv("SFRUN_FLUX_JOB_ID"), *library = getenv("SFRUN_FLUX_PMI_LIBRARY_PATH");
    if (job == NULL || library == NULL || getenv("FLUX_JOB_ID") != NULL || other_launcher() || !is_open_mpi())
        return 0;
    if (setenv("FLUX_JOB_ID", job, 1) != 0 || setenv("FLUX_PMI_LIBRARY_PATH", library, 1) != 0) {
        perror("libsfinit: setenv FLUX_JOB_ID");
        return 0;
    }
    return 1;
}

/* The rank's children (a nested mpirun) must not see them: they were lent for MPI_Init only. */
static void return_flux_variables(int lent)
{
    if (lent) {
        unsetenv("FLUX_JOB_ID");
        unsetenv("FLUX_PMI_LIBRARY_PATH");
    }
}

static void refuse_singleton(int foreign)
{
    const char *expected = getenv("PMI_SIZE"), *rank = getenv("PMI_RANK"), *check = getenv("SFRUN_SINGLETON_CHECK");
    if (expected == NULL || rank == NULL || (check != NULL && strcmp(check, "0") == 0) || foreign)
        return;
    long want = strtol(expected, NULL, 10);
    comm_size_fn size = (comm_size_fn)mpi_symbol("PMPI_Comm_size");
    void *world = open_mpi_world();
    if (world == NULL && mpi_symbol("MPIR_Err_create_code") != NULL)
        world = MPICH_COMM_WORLD;
    int got = 0;
    if (want <= 1 || size == NULL || world == NULL || size(world, &got) != 0 || got == want)
        return;
    fprintf(stderr,
            "sfrun: rank %s (pid %d): MPI_Init made a world of %d rank%s, not the job's %ld: this process did not reach "
            "sfrun's PMI (whatever started it closed PMI_FD or cleared PMI_*) and would run alone; exiting "
            "(SFRUN_SINGLETON_CHECK=0 lets it)\n",
            rank, (int)getpid(), got, got == 1 ? "" : "s", want);
    fflush(stderr);
    _exit(1);
}

/* SFRUN_CPUS, a kernel cpulist ("0,2-3"), into a mask; 0 if it is not one. */
static int parse_cpus(const char *list, cpu_set_t *set)
{
    CPU_ZERO(set);
    for (const char *p = list; *p;) {
        char *end;
        long from = strtol(p, &end, 10), to = from;
        if (end == p || from < 0 || from >= CPU_SETSIZE)
            return 0;
        if (*end == '-') {
            p = end + 1;
            to = strtol(p, &end, 10);
            if (end == p || to < from || to >= CPU_SETSIZE)
                return 0;
        }
        for (long c = from; c <= to; c++)
            CPU_SET((int)c, set);
        if (*end == ',')
            end++;
        else if (*end != '\0')
            return 0;
        p = end;
    }
    return CPU_COUNT(set) > 0;
}

/* A warm master (SFWARM_SOCKET, or SFWARM_LISTEN for a warm VM's) is no rank: each clone is pinned by libsfwarm as it becomes one. */
__attribute__((constructor)) static void sfinit_bind(void)
{
    const char *list = getenv("SFRUN_CPUS");
    cpu_set_t set;
    if (list == NULL || getenv("SFWARM_SOCKET") != NULL || getenv("SFWARM_LISTEN") != NULL)
        return;
    if (!parse_cpus(list, &set) || sched_setaffinity(0, sizeof set, &set) != 0)
        fprintf(stderr, "libsfinit: sched_setaffinity(SFRUN_CPUS=%s) failed; the rank runs unbound\n", list);
}

/* Both names of each entry point are wrapped (a program or a tool may call either); the depth
 * keeps a library whose MPI_Init calls PMPI_Init from being checked twice. */
static __thread int depth;

static int around_init(const char *name, int *argc, char ***argv)
{
    init_fn real = (init_fn)mpi_symbol(name);
    if (real == NULL) {
        fprintf(stderr, "libsfinit: %s: no MPI library defines it\n", name);
        return 1;
    }
    if (depth++ > 0) {
        int rc = real(argc, argv);
        depth--;
        return rc;
    }
    /* Asked before the call: an Open MPI singleton sets PMIX_NAMESPACE for itself. */
    int foreign = other_launcher(), lent = lend_flux_variables();
    int rc = real(argc, argv);
    return_flux_variables(lent);
    if (rc == 0)
        refuse_singleton(foreign);
    depth--;
    return rc;
}

static int around_init_thread(const char *name, int *argc, char ***argv, int required, int *provided)
{
    init_thread_fn real = (init_thread_fn)mpi_symbol(name);
    if (real == NULL) {
        fprintf(stderr, "libsfinit: %s: no MPI library defines it\n", name);
        return 1;
    }
    if (depth++ > 0) {
        int rc = real(argc, argv, required, provided);
        depth--;
        return rc;
    }
    /* Asked before the call: an Open MPI singleton sets PMIX_NAMESPACE for itself. */
    int foreign = other_launcher(), lent = lend_flux_variables();
    int rc = real(argc, argv, required, provided);
    return_flux_variables(lent);
    if (rc == 0)
        refuse_singleton(foreign);
    depth--;
    return rc;
}

EXPORT int MPI_Init(int *argc, char ***argv) { return around_init("MPI_Init", argc, argv); }
EXPORT int PMPI_Init(int *argc, char ***argv) { return around_init("PMPI_Init", argc, argv); }

EXPORT int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)
{
    return around_init_thread("MPI_Init_thread", argc, argv, required, provided);
}

EXPORT int PMPI_Init_thread(int *argc, char ***argv, int required, int *provided)
{
    return around_init_thread("PMPI_Init_thread", argc, argv, required, provided);
}
