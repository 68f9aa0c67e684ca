/* libsfwarm.so: a preloaded fork server. Loaded with LD_PRELOAD into the user's program, it wraps
 * __libc_start_main so that the program is loaded, relocated and initialised once (every
 * constructor has run) and then, instead of running main(), serves sfrun over the unix socket
 * named by SFWARM_SOCKET: each FORK request forks a clone that takes the rank's identity
 * (environment, working directory, stdio) and continues into the real main() with the original
 * argv. Without SFWARM_SOCKET the library does nothing. Protocol: protocol.h. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "isolate.h"
#include "nofile.h"
#include "profile.h"
#include "protocol.h"

typedef int (*main_fn)(int, char **, char **);
typedef int (*start_main_fn)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *);

extern char **environ;

static main_fn real_main;

/* What the clone restores: the state the master had before it started serving. */
static sigset_t original_mask;
static struct sigaction original_sigchld;

/* The master's clones, alive until reaped, each with the job (connection) that asked for it. */
static struct clone {
    pid_t pid;
    int job;
} *clones;
static size_t clone_count, clone_capacity;

/* A FORK request, parsed and validated. */
struct fork_request {
    uint32_t seq;
    int32_t rank;
    char *cwd;
    char **env; /* NULL-terminated */
    size_t env_bytes; /* sum of strlen + 1 over env */
    int fds[5]; /* stdin, stdout, stderr; with --isolate, the job's network namespace; then PMI_FD's */
    int pmi_fd; /* the last of fds when the environment holds PMI_FD, else -1 */
};

static void fail(const char *call)
{
    fprintf(stderr, "sfwarm[%d]: %s failed: %s\n", (int)getpid(), call, strerror(errno));
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Sends one frame with a payload of up to three u32; false if sfrun is gone. */
static int send_frame(int sock, uint32_t type, const uint32_t *words, size_t count)
{
    unsigned char buf[8 + 12];
    put_u32(buf, (uint32_t)(count * 4));
    put_u32(buf + 4, type);
    for (size_t i = 0; i < count; i++)
        put_u32(buf + 8 + 4 * i, words[i]);
    size_t len = 8 + count * 4, sent = 0;
    while (sent < len) {
        ssize_t n = send(sock, buf + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail("send");
            return 0;
        }
        sent += (size_t)n;
    }
    return 1;
}

static int count_threads(void)
{
    DIR *dir = opendir("/proc/self/task");
    if (!dir) {
        fail("opendir(/proc/self/task)");
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

/* The bounds of the environment strings the kernel placed at exec (what /proc/PID/environ shows):
 * fields 50 and 51 of /proc/self/stat. */
static int env_area(unsigned long *start, unsigned long *end)
{
    FILE *f = fopen("/proc/self/stat", "re");
    if (!f) {
        fail("fopen(/proc/self/stat)");
        return 0;
    }
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p += 2; /* field 3 */
    for (int field = 3; field < 50 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return p && sscanf(p, "%lu %lu", start, end) == 2 && *end > *start;
}

/* The environment area as the kernel placed it at exec, saved before the master overwrote it. */
/* Makes /proc/PID/environ show env (ps, and tools that find processes by their environment, read
 * it there, not from environ), when it fits in the area; the rest of the area is zeroed. */
static void show_environment(char **env, size_t bytes)
{
    unsigned long start, end;
    if (!env_area(&start, &end) || bytes > end - start)
        return;
    char *p = (char *)start;
    for (char **e = env; *e; e++) {
        size_t len = strlen(*e) + 1;
        memcpy(p, *e, len);
        p += len;
    }
    memset(p, 0, (size_t)((char *)end - p));
}

static int read_full(int fd, unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail("read");
            return 0;
        }
        if (n == 0)
            return 0;
        got += (size_t)n;
    }
    return 1;
}

/* Reads a frame header, collecting any fds sent with it (up to 5; more are closed). Returns 1 on
 * success, 0 on EOF or error. */
static int read_header(int sock, uint32_t *len, uint32_t *type, int fds[5], int *nfds)
{
    unsigned char hdr[8];
    size_t got = 0;
    *nfds = 0;
    while (got < sizeof hdr) {
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * 8)];
        } control;
        struct iovec iov = { .iov_base = hdr + got, .iov_len = sizeof hdr - got };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
        ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail("recvmsg");
            return 0;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *in = (int *)CMSG_DATA(c);
            for (size_t i = 0; i < count; i++) {
                if (*nfds < 5)
                    fds[(*nfds)++] = in[i];
                else
                    close(in[i]);
            }
        }
        if (n == 0)
            return 0;
        got += (size_t)n;
    }
    *len = get_u32(hdr);
    *type = get_u32(hdr + 4);
    return 1;
}

/* Parses a FORK payload into req (strings copied, NUL-terminated). Returns 0 if malformed. */
static int parse_fork(const unsigned char *p, uint32_t len, struct fork_request *req)
{
    const unsigned char *end = p + len;
    if (end - p < 12)
        return 0;
    req->seq = get_u32(p);
    req->rank = (int32_t)get_u32(p + 4);
    uint32_t cwd_len = get_u32(p + 8);
    p += 12;
    if (cwd_len == 0 || cwd_len > PATH_MAX || (size_t)(end - p) < cwd_len || memchr(p, 0, cwd_len))
        return 0;
    req->cwd = strndup((const char *)p, cwd_len);
    p += cwd_len;
    if (end - p < 4)
        return 0;
    uint32_t count = get_u32(p);
    p += 4;
    if (count > SFWARM_MAX_ENV || count > (uint32_t)(end - p) / 4)
        return 0;
    req->env = calloc((size_t)count + 1, sizeof(char *));
    if (!req->env || !req->cwd) {
        fail("malloc");
        return 0;
    }
    req->env_bytes = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (end - p < 4)
            return 0;
        uint32_t n = get_u32(p);
        p += 4;
        if ((size_t)(end - p) < n || memchr(p, 0, n) || !memchr(p, '=', n) || p[0] == '=')
            return 0;
        req->env[i] = strndup((const char *)p, n);
        if (!req->env[i]) {
            fail("strndup");
            return 0;
        }
        req->env_bytes += (size_t)n + 1;
        p += n;
    }
    return p == end;
}

static void free_request(struct fork_request *req)
{
    free(req->cwd);
    if (req->env)
        for (char **e = req->env; *e; e++)
            free(*e);
    free(req->env);
    for (int i = 0; i < 5; i++)
        if (req->fds[i] >= 0)
            close(req->fds[i]);
}

/* The socket sfrun listens on, and its per-job directory: removed when the master ends, so that
 * nothing is left behind even when sfrun was killed before its own teardown ran. A warm VM's
 * master (listen mode) leaves its socket to `sfrun warm rm`, which also removes its record. */
static const char *socket_path;

static void remove_socket(void)
{
    if (!socket_path)
        return;
    if (unlink(socket_path) != 0 && errno != ENOENT)
        fail("unlink");
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(dir, sizeof dir, "%s", socket_path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (rmdir(dir) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
            fail("rmdir");
    }
}

/* The connections the master serves: one (to the sfrun that started it) for a per-job master;
 * up to MAX_JOBS jobs at once for a warm VM's master, each owning the clones it asked for. */
#define MAX_JOBS 64
static struct job {
    int fd; /* -1: free */
    int forked; /* has asked for a clone: counts as a job served */
} jobs[MAX_JOBS];
static int listen_fd = -1;
static int signal_fd = -1;
static uint32_t jobs_served;

static void kill_clones_and_exit(void)
{
    remove_socket();
    for (size_t i = 0; i < clone_count; i++)
        if (kill(clones[i].pid, SIGKILL) != 0 && errno != ESRCH)
            fail("kill");
    for (size_t i = 0; i < clone_count; i++)
        while (waitpid(clones[i].pid, NULL, 0) < 0 && errno == EINTR)
            ;
    _exit(0);
}

/* Ends job j: kills and reaps its clones, reports each end to it (sfrun has only shut down its
 * writing side, so it still reads: the last EXIT tells it every clone is gone), then closes it.
 * A per-job master has nothing left to serve and exits. */
static void end_job(int j)
{
    if (listen_fd < 0)
        kill_clones_and_exit();
    for (size_t i = 0; i < clone_count; i++)
        if (clones[i].job == j && kill(clones[i].pid, SIGKILL) != 0 && errno != ESRCH)
            fail("kill");
    for (size_t i = 0; i < clone_count;) {
        if (clones[i].job != j) {
            i++;
            continue;
        }
        int status = 0;
        pid_t pid = clones[i].pid;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        clones[i] = clones[--clone_count];
        uint32_t words[2] = { (uint32_t)pid, (uint32_t)status };
        send_frame(jobs[j].fd, SFWARM_EXIT, words, 2);
    }
    close(jobs[j].fd);
    jobs[j].fd = -1;
    jobs[j].forked = 0;
}

static void reap(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return;
        int owner = -1;
        for (size_t i = 0; i < clone_count; i++) {
            if (clones[i].pid == pid) {
                owner = clones[i].job;
                clones[i] = clones[--clone_count];
                break;
            }
        }
        if (owner < 0 || jobs[owner].fd < 0)
            continue;
        uint32_t words[2] = { (uint32_t)pid, (uint32_t)status };
        if (!send_frame(jobs[owner].fd, SFWARM_EXIT, words, 2))
            end_job(owner);
    }
}

/* The SFWARM_ISOLATE entry of a clone's environment, or NULL. */
static char **isolation_of(char **env)
{
    for (char **e = env; e && *e; e++)
        if (strncmp(*e, "SFWARM_ISOLATE=", 15) == 0)
            return e;
    return NULL;
}

/* The PMI_FD entry of a clone's environment, or NULL: its fd came last with the FORK frame. */
static char **pmi_fd_of(char **env)
{
    for (char **e = env; e && *e; e++)
        if (strncmp(*e, "PMI_FD=", 7) == 0)
            return e;
    return NULL;
}

/* In the clone: the PMI fd stays open across a later exec (as hydra's PMI_FD does), and PMI_FD
 * names the number it arrived at here, not sfrun's. */
static void adopt_pmi_fd(struct fork_request *req)
{
    char **entry = pmi_fd_of(req->env);
    if (!entry || req->pmi_fd < 0)
        return;
    if (fcntl(req->pmi_fd, F_SETFD, 0) != 0) {
        fail("fcntl(PMI_FD, F_SETFD)");
        _exit(127);
    }
    char value[32];
    int n = snprintf(value, sizeof value, "PMI_FD=%d", req->pmi_fd);
    char *copy = strdup(value);
    if (n < 0 || !copy) {
        fail("strdup(PMI_FD)");
        _exit(127);
    }
    req->env_bytes = req->env_bytes - strlen(*entry) + (size_t)n;
    free(*entry);
    *entry = copy;
}

/* The signals sfrun forwards to ranks: an isolated clone relays them into its namespaces. */
static const int relayed[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
#define RELAYED_COUNT ((int)(sizeof relayed / sizeof relayed[0]))

/* sfrun's --bind-to: the rank's CPUs (a kernel cpulist) in SFRUN_CPUS. A clone runs no
 * constructor, so libsfinit cannot pin it as it pins a rank after exec; it is pinned here, before
 * main(), so the program never runs unbound. */
static void bind_rank(char **env)
{
    const char *list = NULL;
    for (char **e = env; e && *e; e++)
        if (strncmp(*e, "SFRUN_CPUS=", 11) == 0)
            list = *e + 11;
    if (!list)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (const char *p = list; *p;) {
        char *end;
        long from = strtol(p, &end, 10), to = from;
        if (end != p && *end == '-') {
            const char *q = end + 1;
            to = strtol(q, &end, 10);
            if (end == q)
                break;
        }
        if (end == p || from < 0 || to < from || to >= CPU_SETSIZE)
            break;
        for (long c = from; c <= to; c++)
            CPU_SET((int)c, &set);
        p = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0')
            break;
    }
    if (CPU_COUNT(&set) == 0 || sched_setaffinity(0, sizeof set, &set) != 0)
        fprintf(stderr, "sfwarm: sched_setaffinity(SFRUN_CPUS=%s) failed; the rank runs unbound\n", list);
}

/* In the clone: become the rank. Returns the environment for main(); exits on failure. */
static char **become_rank(struct fork_request *req, pid_t master)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        fail("prctl(PR_SET_PDEATHSIG)");
        _exit(127);
    }
    if (getppid() != master) /* the master died before the line above */
        _exit(127);
    /* Its own session, as hydra gives each rank: a terminal's Ctrl-C reaches only sfrun (which
     * forwards it), and with sched autogroup each rank gets its own CPU share on a busy machine. */
    if (setsid() < 0) {
        fail("setsid");
        _exit(127);
    }
    /* No fd of the server survives into the rank (they are close-on-exec, but there is no exec). */
    for (int j = 0; j < MAX_JOBS; j++)
        if (jobs[j].fd >= 0)
            close(jobs[j].fd);
    if (listen_fd >= 0)
        close(listen_fd);
    close(signal_fd);
    for (int i = 0; i < 3; i++) {
        if (dup2(req->fds[i], i) < 0) {
            fail("dup2");
            _exit(127);
        }
    }
    for (int i = 0; i < 3; i++)
        if (req->fds[i] > 2)
            close(req->fds[i]);
    adopt_pmi_fd(req);
    char **isolation = isolation_of(req->env);
    if (isolation) {
        /* The rank's environment does not show it; the pad of the master's area makes room. */
        const char *spec = *isolation + 15;
        for (char **e = isolation; *e; e++)
            e[0] = e[1];
        req->env_bytes -= strlen(spec) + 16;
        struct sigaction saved[RELAYED_COUNT];
        for (int i = 0; i < RELAYED_COUNT; i++)
            sigaction(relayed[i], NULL, &saved[i]);
        sfwarm_isolate(spec, req->fds[3], relayed, RELAYED_COUNT);
        for (int i = 0; i < RELAYED_COUNT; i++)
            sigaction(relayed[i], &saved[i], NULL);
    }
    if (chdir(req->cwd) != 0) {
        fprintf(stderr, "sfwarm: rank %d: chdir(%s) failed: %s\n", (int)req->rank, req->cwd, strerror(errno));
        _exit(127);
    }
    bind_rank(req->env);
    show_environment(req->env, req->env_bytes);
    environ = req->env;
    if (sigaction(SIGCHLD, &original_sigchld, NULL) != 0)
        fail("sigaction(SIGCHLD)");
    if (sigprocmask(SIG_SETMASK, &original_mask, NULL) != 0)
        fail("sigprocmask");
    return req->env;
}

/* Takes one frame from job j and forks the clone it asks for. Returns 1 in the clone (with *env
 * set), 0 in the master. A protocol error or EOF ends the job. */
static int serve_request(int j, pid_t master, char ***env)
{
    int sock = jobs[j].fd;
    uint32_t len, type;
    struct fork_request req = { .fds = { -1, -1, -1, -1, -1 }, .pmi_fd = -1 };
    int nfds;
    if (!read_header(sock, &len, &type, req.fds, &nfds)) {
        free_request(&req);
        end_job(j); /* EOF: sfrun is gone or done */
        return 0;
    }
    if (type != SFWARM_FORK || len > SFWARM_MAX_PAYLOAD) {
        fprintf(stderr, "sfwarm: protocol error: frame type %u, length %u\n", type, len);
        free_request(&req);
        end_job(j);
        return 0;
    }
    unsigned char *payload = malloc(len ? len : 1);
    if (!payload) {
        fail("malloc");
        kill_clones_and_exit();
    }
    if (!read_full(sock, payload, len)) {
        free(payload);
        free_request(&req);
        end_job(j);
        return 0;
    }
    int ok = parse_fork(payload, len, &req) && nfds == 3 + (isolation_of(req.env) != NULL) + (pmi_fd_of(req.env) != NULL);
    free(payload);
    if (ok && pmi_fd_of(req.env))
        req.pmi_fd = req.fds[nfds - 1];
    int32_t result;
    if (!ok) {
        fprintf(stderr, "sfwarm: protocol error: malformed fork request (%d fds)\n", nfds);
        result = -EPROTO;
    } else {
        if (clone_count == clone_capacity) {
            size_t cap = clone_capacity ? clone_capacity * 2 : 64;
            struct clone *grown = realloc(clones, cap * sizeof *clones);
            if (!grown) {
                fail("realloc");
                kill_clones_and_exit();
            }
            clones = grown;
            clone_capacity = cap;
        }
        if (!jobs[j].forked) {
            jobs[j].forked = 1;
            jobs_served++;
        }
        pid_t pid = fork();
        if (pid == 0) {
            *env = become_rank(&req, master);
            return 1;
        }
        if (pid < 0) {
            result = -errno;
            fail("fork");
        } else {
            clones[clone_count++] = (struct clone){ .pid = pid, .job = j };
            result = pid;
        }
    }
    uint32_t words[2] = { req.seq, (uint32_t)result };
    free_request(&req);
    if (!send_frame(sock, SFWARM_PID, words, 2))
        end_job(j);
    return 0;
}

/* A warm VM's master: a new connection is a job (or `sfrun warm list` asking how it is). Only
 * processes of the master's own user are served; each gets HELLO and STATS first. */
static void accept_job(pid_t master, int threads)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
            fail("accept4");
        return;
    }
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != getuid()) {
        close(fd);
        return;
    }
    int j = 0;
    while (j < MAX_JOBS && jobs[j].fd >= 0)
        j++;
    uint32_t hello[3] = { SFWARM_VERSION, (uint32_t)master, (uint32_t)threads };
    uint32_t stats[2] = { jobs_served, (uint32_t)clone_count };
    if (j == MAX_JOBS || !send_frame(fd, SFWARM_HELLO, hello, 3) || !send_frame(fd, SFWARM_STATS, stats, 2)) {
        close(fd);
        return;
    }
    if (threads != 1)
        _exit(0); /* never fork a multithreaded master: `sfrun warm create` reports it */
    jobs[j].fd = fd;
    jobs[j].forked = 0;
}

/* A warm VM's master outlives the shell that created it: its own session (no terminal, no
 * SIGHUP when the terminal goes), stdin from /dev/null, stdout and stderr to its log. */
static void detach(const char *log)
{
    if (setsid() < 0)
        fail("setsid");
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in < 0 || dup2(in, 0) < 0)
        fail("open(/dev/null)");
    if (in > 0)
        close(in);
    if (log && *log) {
        int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (out < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
            fail("open(SFWARM_LOG)");
        if (out > 2)
            close(out);
    }
}

/* Whether the socket we connected to is served by sfrun, the process that started this master:
 * same uid and our parent's pid, as the kernel recorded them when it called listen(). A socket
 * path is only a name; whoever could make or swap a folder on the way to it could otherwise be
 * served the FORK requests of sfrun's ranks (their environment, stdio, and a process to run as
 * this user). Root is not accepted as such: sfrun always runs as the user its masters run as. */
static int peer_is_parent(int sock, const char *path)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        fail("getsockopt(SO_PEERCRED)");
        return 0;
    }
    if (cred.uid != geteuid() || cred.pid != getppid()) {
        fprintf(stderr, "sfwarm: %s is served by pid %d (uid %u), not by the sfrun that started this master (pid %d, uid %u); refusing it\n",
                path, (int)cred.pid, (unsigned)cred.uid, (int)getppid(), (unsigned)geteuid());
        return 0;
    }
    return 1;
}

/* Serves sfrun: with listen == 0 over one connection to path until its EOF (a per-job master),
 * else every job that connects to the socket it creates at path (a warm VM's master), until it is
 * killed. Returns only in a clone, with the clone's environment. */
static char **serve(const char *path, int listen_mode)
{
    pid_t master = getpid();
    fflush(NULL); /* nothing buffered by constructors may be written once per clone */

    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "sfwarm: socket path is too long: %s\n", path);
        _exit(126);
    }
    strcpy(addr.sun_path, path);
    static char path_copy[sizeof addr.sun_path];
    strcpy(path_copy, path);
    path = path_copy;
    for (int j = 0; j < MAX_JOBS; j++)
        jobs[j].fd = -1;

    /* The master is no rank: it shows only what it is in /proc/PID/environ (the rank environment
     * it was started with would make it look like one). Each clone puts back its own environment
     * in the same order, so strings a constructor kept pointers to are where they were. From here
     * on the master reads no variable. */
    static char marker[sizeof addr.sun_path + 16];
    snprintf(marker, sizeof marker, "SFWARM_MASTER=%s", path);
    char *shown[] = { marker, NULL };
    show_environment(shown, strlen(marker) + 1);
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        fail("socket");
        _exit(126);
    }
    int threads = count_threads();
    if (listen_mode) {
        if (bind(sock, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(sock, 64) != 0) {
            fail("bind");
            _exit(126);
        }
        listen_fd = sock;
    } else {
        socket_path = path;
        if (connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
            fail("connect");
            remove_socket();
            _exit(126);
        }
        if (!peer_is_parent(sock, path))
            _exit(126); /* sfrun sees no hello and starts the ranks cold */
        uint32_t hello[3] = { SFWARM_VERSION, (uint32_t)master, (uint32_t)threads };
        if (!send_frame(sock, SFWARM_HELLO, hello, 3) || threads != 1)
            _exit(0); /* sfrun starts the ranks cold: never fork a multithreaded master */
        jobs[0].fd = sock;
    }

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (sigaction(SIGCHLD, NULL, &original_sigchld) != 0 || sigprocmask(SIG_BLOCK, &chld, &original_mask) != 0) {
        fail("sigprocmask");
        _exit(126);
    }
    signal_fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd < 0) {
        fail("signalfd");
        _exit(126);
    }

    for (;;) {
        struct pollfd pfd[MAX_JOBS + 2];
        int owner[MAX_JOBS + 2];
        nfds_t n = 0;
        pfd[n++] = (struct pollfd){ .fd = signal_fd, .events = POLLIN };
        if (listen_fd >= 0)
            pfd[n++] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
        for (int j = 0; j < MAX_JOBS; j++) {
            if (jobs[j].fd >= 0) {
                owner[n] = j;
                pfd[n++] = (struct pollfd){ .fd = jobs[j].fd, .events = POLLIN };
            }
        }
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            fail("poll");
            kill_clones_and_exit();
        }
        if (pfd[0].revents) {
            struct signalfd_siginfo si;
            while (read(signal_fd, &si, sizeof si) == (ssize_t)sizeof si)
                ;
            reap();
        }
        nfds_t first = 1;
        if (listen_fd >= 0) {
            first = 2;
            if (pfd[1].revents)
                accept_job(master, threads);
        }
        for (nfds_t i = first; i < n; i++) {
            if (!pfd[i].revents || jobs[owner[i]].fd != pfd[i].fd)
                continue;
            char **env;
            if (serve_request(owner[i], master, &env))
                return env;
        }
    }
}

static int warm_main(int argc, char **argv, char **envp)
{
    const char *path = getenv("SFWARM_SOCKET");
    const char *listen_path = getenv("SFWARM_LISTEN");
    int listen_mode = listen_path && *listen_path;
    if (listen_mode)
        path = listen_path;
    if (!path || !*path)
        return real_main(argc, argv, envp);
    if (sfwarm_restore_nofile() != 0) /* before any clone: each inherits the master's limit */
        _exit(126);
    if (listen_mode)
        detach(getenv("SFWARM_LOG"));
    sfwarm_preload(getenv("SFWARM_PRELOAD"));
    char **env = serve(path, listen_mode);
    sfwarm_record_profile_at_exit();
    return real_main(argc, argv, env);
}

int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end)
{
    start_main_fn next = (start_main_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    if (!next) {
        fprintf(stderr, "sfwarm: dlsym(__libc_start_main) failed: %s\n", dlerror());
        _exit(126);
    }
    real_main = main;
    return next(warm_main, argc, argv, init, fini, rtld_fini, stack_end);
}
