/*
 * libsfucx: keeps UCX progressing while MPI_Finalize waits for the launcher's PMI barrier.
 *
 * Why: MPICH 4.0.2's UCX netmod closes every endpoint with a flush (ucp_disconnect_nb), spins
 * until the closes complete, and only then waits in a blocking PMI barrier (read() on the PMI
 * socket, no UCX progress). Over UCX's TCP transport a flush of an endpoint that has sent data
 * sends a zero-length PUT_REQ and completes only when the peer's progress loop answers it with
 * PUT_ACK. A peer already blocked in the barrier never answers, so the last rank to close spins
 * for ever and the job never ends. MPICH 4.2 moved the barrier before the closes; Open MPI
 * progresses UCX while it waits in its fence. This library does what Open MPI does, for programs
 * whose MPI does not: inside MPI_Finalize, after the first endpoint close and until the worker is
 * destroyed, a blocking read() on a socket or pipe made by the finalizing thread waits in short
 * poll() slices and calls ucp_worker_progress() on every live worker between them. The rank
 * still blocks until the launcher answers the barrier, so barrier semantics are unchanged; the
 * rank merely keeps answering its peers' protocol traffic while it waits.
 *
 * What it does not touch: any thread other than the finalizing one; any read() outside that
 * window (MPI_Comm_disconnect, a user's own reads before MPI_Finalize); non-blocking descriptors;
 * regular files. Every UCX entry point is found with dlsym(RTLD_NEXT), so a rank whose MPI has no
 * UCX (or is newer and never blocks there) only pays a thread-local test per read().
 *
 * SFRUN_UCX_TRACE=1 prints, at worker destruction, how long the window lasted and how many
 * progress calls made headway: the tests use it to prove the library acted.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "preload_symbol.h"

#define EXPORT __attribute__((visibility("default")))
#define MAX_WORKERS 64
/* One poll slice. A peer's PUT_REQ waits at most this long for its ACK, so a close costs a few
 * milliseconds at worst; shorter slices only burn CPU in ranks that are done. */
#define SLICE_MS 1

/* UCX's types, opaque here so that the library needs neither UCX's headers nor its libraries. */
typedef void *ucp_worker_h;
typedef void *ucp_ep_h;
typedef void *ucp_context_h;
typedef int ucs_status_t;
typedef void *ucs_status_ptr_t;

typedef ssize_t (*read_fn)(int, void *, size_t);
typedef int (*finalize_fn)(void);
typedef ucs_status_t (*worker_create_fn)(ucp_context_h, const void *, ucp_worker_h *);
typedef void (*worker_destroy_fn)(ucp_worker_h);
typedef unsigned (*worker_progress_fn)(ucp_worker_h);
typedef ucs_status_ptr_t (*disconnect_fn)(ucp_ep_h);
typedef ucs_status_ptr_t (*close_nb_fn)(ucp_ep_h, unsigned);
typedef ucs_status_ptr_t (*close_nbx_fn)(ucp_ep_h, const void *);

static read_fn real_read;
static worker_progress_fn real_progress;
static int trace;

static pthread_mutex_t workers_lock = PTHREAD_MUTEX_INITIALIZER;
static ucp_worker_h workers[MAX_WORKERS];
static int nworkers;

/* Per thread: how deep inside MPI_Finalize, whether an endpoint close has opened the window,
 * and whether this thread is inside our own progress call (UCX may read() itself). A preload is
 * loaded at start-up, so its TLS can be initial-exec: no __tls_get_addr call per read(). */
#define TLS __thread __attribute__((tls_model("initial-exec")))
static TLS int in_finalize;
static TLS int window;
static TLS int progressing;
static TLS unsigned long made_progress, waited_reads;
static TLS struct timespec window_start;
/* Windows open in any thread: read()'s fast path is one load of this global while it is 0,
 * which is always outside MPI_Finalize. */
static int open_windows;

/* The definition this library wraps (see ../include/preload_symbol.h for where it is looked). */
static void *next_symbol(const char *name)
{
    static const char *const owners[] = { "libucp.so.0", "libmpich.so.12", "libmpi.so.40", "libmpi.so.12" };
    void *p = sf_preload_next(name, owners, sizeof owners / sizeof owners[0]);
    if (p == NULL && trace)
        fprintf(stderr, "libsfucx: %s: not found after the preload\n", name);
    return p;
}

__attribute__((constructor)) static void sfucx_init(void)
{
    const char *t = getenv("SFRUN_UCX_TRACE");
    trace = t != NULL && t[0] == '1';
    real_read = (read_fn)next_symbol("read");
}

static ssize_t call_read(int fd, void *buf, size_t n)
{
    if (real_read != NULL)
        return real_read(fd, buf, n);
    /* Only before our constructor ran (another preload's constructor reading a file). */
    return syscall(SYS_read, fd, buf, n);
}

/* ---- the window: opened by the first endpoint close inside MPI_Finalize ---- */

static void open_window(void)
{
    if (in_finalize > 0 && !window) {
        window = 1;
        __atomic_add_fetch(&open_windows, 1, __ATOMIC_RELAXED);
        made_progress = waited_reads = 0;
        if (clock_gettime(CLOCK_MONOTONIC, &window_start) != 0)
            memset(&window_start, 0, sizeof window_start);
        if (real_progress == NULL)
            real_progress = (worker_progress_fn)next_symbol("ucp_worker_progress");
    }
}

static void progress_all(void)
{
    if (real_progress == NULL)
        return;
    ucp_worker_h live[MAX_WORKERS];
    int n;
    if (pthread_mutex_lock(&workers_lock) != 0)
        return;
    n = nworkers;
    memcpy(live, workers, (size_t)n * sizeof live[0]);
    if (pthread_mutex_unlock(&workers_lock) != 0)
        return;
    progressing = 1;
    for (int i = 0; i < n; i++) {
        /* Drain what is ready, but bounded: the PMI socket is checked again soon. */
        for (int k = 0; k < 64 && real_progress(live[i]) != 0; k++)
            made_progress++;
    }
    progressing = 0;
}

/* Only descriptors on which a blocking read() could wait for another process. */
static int may_block(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || (flags & O_NONBLOCK))
        return 0;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return 0;
    return S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode);
}

static void close_window(void)
{
    if (window) {
        window = 0;
        __atomic_sub_fetch(&open_windows, 1, __ATOMIC_RELAXED);
    }
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    if (__builtin_expect(__atomic_load_n(&open_windows, __ATOMIC_RELAXED) == 0, 1) || !window || progressing || n == 0 || !may_block(fd))
        return call_read(fd, buf, n);
    waited_reads++;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
        int r = poll(&p, 1, 0);
        if (r != 0)
            break; /* readable, hung up, or an error: read() reports it as it would have */
        progress_all();
        r = poll(&p, 1, SLICE_MS);
        if (r > 0 || (r < 0 && errno != EINTR))
            break;
    }
    return call_read(fd, buf, n);
}

/* ---- MPI_Finalize: the only place the window may open ---- */

static int finalize_through(const char *name)
{
    finalize_fn next = (finalize_fn)next_symbol(name);
    if (next == NULL) {
        /* Only reachable if a program defines MPI_Finalize without any MPI: say so, do not crash. */
        fprintf(stderr, "libsfucx: %s called but no MPI library defines it\n", name);
        return 1;
    }
    in_finalize++;
    int rc = next();
    in_finalize--;
    if (in_finalize == 0)
        close_window();
    return rc;
}

EXPORT int MPI_Finalize(void)
{
    return finalize_through("MPI_Finalize");
}

EXPORT int PMPI_Finalize(void)
{
    return finalize_through("PMPI_Finalize");
}

/* ---- UCX: workers are remembered, endpoint closes open the window ---- */

EXPORT ucs_status_t ucp_worker_create(ucp_context_h context, const void *params, ucp_worker_h *worker)
{
    static worker_create_fn next;
    if (next == NULL && (next = (worker_create_fn)next_symbol("ucp_worker_create")) == NULL)
        abort(); /* only UCX's own callers reach here, so UCX is loaded: cannot happen */
    ucs_status_t st = next(context, params, worker);
    if (st == 0 && worker != NULL && pthread_mutex_lock(&workers_lock) == 0) {
        if (nworkers < MAX_WORKERS)
            workers[nworkers++] = *worker;
        pthread_mutex_unlock(&workers_lock);
    }
    return st;
}

EXPORT void ucp_worker_destroy(ucp_worker_h worker)
{
    static worker_destroy_fn next;
    if (next == NULL && (next = (worker_destroy_fn)next_symbol("ucp_worker_destroy")) == NULL)
        abort();
    if (pthread_mutex_lock(&workers_lock) == 0) {
        for (int i = 0; i < nworkers; i++) {
            if (workers[i] == worker) {
                workers[i] = workers[--nworkers];
                break;
            }
        }
        pthread_mutex_unlock(&workers_lock);
    }
    if (window) {
        if (trace) {
            struct timespec now;
            double ms = 0;
            if (clock_gettime(CLOCK_MONOTONIC, &now) == 0)
                ms = (double)(now.tv_sec - window_start.tv_sec) * 1e3 + (double)(now.tv_nsec - window_start.tv_nsec) / 1e6;
            fprintf(stderr, "libsfucx: pid %d: finalize window %.1f ms, %lu blocking reads waited, %lu progress calls made headway\n",
                    (int)getpid(), ms, waited_reads, made_progress);
        }
        close_window(); /* the worker is gone: nothing left to progress for this thread */
    }
    next(worker);
}

EXPORT ucs_status_ptr_t ucp_disconnect_nb(ucp_ep_h ep)
{
    static disconnect_fn next;
    if (next == NULL && (next = (disconnect_fn)next_symbol("ucp_disconnect_nb")) == NULL)
        abort();
    open_window();
    return next(ep);
}

EXPORT ucs_status_ptr_t ucp_ep_close_nb(ucp_ep_h ep, unsigned mode)
{
    static close_nb_fn next;
    if (next == NULL && (next = (close_nb_fn)next_symbol("ucp_ep_close_nb")) == NULL)
        abort();
    open_window();
    return next(ep, mode);
}

EXPORT ucs_status_ptr_t ucp_ep_close_nbx(ucp_ep_h ep, const void *param)
{
    static close_nbx_fn next;
    if (next == NULL && (next = (close_nbx_fn)next_symbol("ucp_ep_close_nbx")) == NULL)
        abort();
    open_window();
    return next(ep, param);
}
