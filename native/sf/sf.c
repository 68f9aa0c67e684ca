/* libsf.so: the SnowFlock clone API (sf.h) on fork(). Tickets come from the sfrun job's clone
 * agent when SF_AGENT names one (protocol.h), else from a per-process budget. A clone is a child
 * process that shares the parent's memory copy-on-write; it dies with its parent
 * (PR_SET_PDEATHSIG), and it does not run user code until the agent has recorded it, so a job's
 * teardown can always find it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"
#include "sf.h"

#define API __attribute__((visibility("default")))
#define DEFAULT_LIMIT 256

/* REAPING: joined or killed, clones being reaped, budget not yet given back. */
enum state { GRANTED, CLONED, REAPING, DONE };

struct ticket {
    int id;
    int n;
    enum state state;
    pid_t *pids; /* n of them once CLONED */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct ticket *tickets;
static size_t ticket_count, ticket_capacity;

/* The agent connection (owned by this process: a clone closes the one it inherited). */
static int agent_fd = -1;
static char reply_buf[1024];
static size_t reply_len;

/* Without an agent: ids and the per-process budget. */
static int local_next_id = 1, local_live;

/* In a clone: who it is, and the parent's ticket it came from. */
static int my_clone_id, my_parent_ticket;

static _Thread_local char last_error[512];

static const struct {
    int code;
    const char *name;
} errno_names[] = {
    { EINVAL, "EINVAL" }, { E2BIG, "E2BIG" }, { EAGAIN, "EAGAIN" }, { EPERM, "EPERM" },
    { EPROTO, "EPROTO" }, { ECHILD, "ECHILD" }, { EALREADY, "EALREADY" }, { EBUSY, "EBUSY" },
};

__attribute__((format(printf, 2, 3))) static int fail(int code, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(last_error, sizeof last_error, format, args);
    va_end(args);
    errno = code;
    return -1;
}

static int errno_of(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
        if (strlen(errno_names[i].name) == len && memcmp(errno_names[i].name, name, len) == 0)
            return errno_names[i].code;
    return EPROTO;
}

/* ---- the agent ---- */

static const char *agent_path(void)
{
    const char *path = getenv("SF_AGENT");
    return path && *path ? path : NULL;
}

static void agent_close(void)
{
    if (agent_fd >= 0)
        close(agent_fd);
    agent_fd = -1;
    reply_len = 0;
}

static int send_all(const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(agent_fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail(errno, "sfrun agent: send failed: %s", strerror(errno));
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads one reply line (without the newline) into line. */
static int read_reply(char *line, size_t capacity)
{
    for (;;) {
        char *nl = memchr(reply_buf, '\n', reply_len);
        if (nl) {
            size_t len = (size_t)(nl - reply_buf);
            if (len >= capacity)
                return fail(EPROTO, "sfrun agent: reply too long");
            memcpy(line, reply_buf, len);
            line[len] = '\0';
            reply_len -= len + 1;
            memmove(reply_buf, nl + 1, reply_len);
            return 0;
        }
        if (reply_len == sizeof reply_buf)
            return fail(EPROTO, "sfrun agent: reply too long");
        ssize_t n = recv(agent_fd, reply_buf + reply_len, sizeof reply_buf - reply_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail(errno, "sfrun agent: recv failed: %s", strerror(errno));
        if (n == 0)
            return fail(EPIPE, "sfrun agent closed the connection (the job is ending?)");
        reply_len += (size_t)n;
    }
}

/* Sends request (a line without newline) and reads the reply into reply; an "error" reply becomes
 * -1 with its errno and text. */
static int agent_call(const char *request, char *reply, size_t capacity)
{
    size_t len = strlen(request);
    if (send_all(request, len) != 0 || send_all("\n", 1) != 0 || read_reply(reply, capacity) != 0) {
        int saved = errno;
        agent_close();
        errno = saved;
        return -1;
    }
    if (strncmp(reply, "ok", 2) == 0 && (reply[2] == '\0' || reply[2] == ' '))
        return 0;
    if (strncmp(reply, "error ", 6) == 0) {
        const char *name = reply + 6, *text = strchr(name, ' ');
        size_t name_len = text ? (size_t)(text - name) : strlen(name);
        return fail(errno_of(name, name_len), "%s", text ? text + 1 : name);
    }
    agent_close();
    return fail(EPROTO, "sfrun agent: unexpected reply '%.100s'", reply);
}

/* The parent of pid, from /proc/PID/stat; -1 if it cannot be read. */
static pid_t parent_of(pid_t pid)
{
    char name[64], buf[512];
    snprintf(name, sizeof name, "/proc/%d/stat", (int)pid);
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* After the command name in parentheses (which may itself hold ") "): " S PPID ...". */
    char *end = strrchr(buf, ')');
    int ppid;
    if (!end || sscanf(end + 1, " %*c %d", &ppid) != 1)
        return -1;
    return (pid_t)ppid;
}

/* Whether the agent at path is served by the sfrun of this job: the kernel's record of who called
 * listen() (SO_PEERCRED) must be this user and one of this process's ancestors (sfrun started
 * the rank, or the warm master it forked from). A socket path is only a name: a process that could
 * make or swap a folder on the way would otherwise be asked for tickets and told what the rank
 * does. Root is not accepted as such: sfrun runs as the user its ranks run as. In a pid namespace
 * of its own (--isolate) sfrun is not visible (pid 0) and the uid alone decides. */
static int agent_is_ours(int fd, const char *path)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return fail(errno, "getsockopt(SO_PEERCRED) on the sfrun agent %s failed: %s", path, strerror(errno));
    if (cred.uid != geteuid())
        return fail(EPERM, "the sfrun agent at %s (SF_AGENT) is served by uid %u, not by this user (%u): refusing it",
                    path, (unsigned)cred.uid, (unsigned)geteuid());
    if (cred.pid == 0)
        return 0;
    pid_t p = getppid();
    for (int depth = 0; p > 1 && depth < 64; depth++, p = parent_of(p))
        if (p == cred.pid)
            return 0;
    return fail(EPERM, "the sfrun agent at %s (SF_AGENT) is served by pid %d, which did not start this process: refusing it",
                path, (int)cred.pid);
}

static int agent_connect(const char *path)
{
    if (agent_fd >= 0)
        return 0;
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof addr.sun_path)
        return fail(EINVAL, "SF_AGENT is too long for a unix socket path: %s", path);
    strcpy(addr.sun_path, path);
    agent_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (agent_fd < 0)
        return fail(errno, "socket(AF_UNIX) failed: %s", strerror(errno));
    if (connect(agent_fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int err = errno;
        agent_close();
        return fail(err, "cannot reach the sfrun agent at %s (SF_AGENT): %s", path, strerror(err));
    }
    if (agent_is_ours(agent_fd, path) != 0) {
        int err = errno;
        agent_close();
        errno = err;
        return -1;
    }
    char hello[32], reply[256];
    snprintf(hello, sizeof hello, "hello version=%d", SF_PROTOCOL_VERSION);
    if (agent_call(hello, reply, sizeof reply) != 0) {
        agent_close();
        return -1;
    }
    return 0;
}

/* ---- tickets ---- */

static struct ticket *find(int id)
{
    for (size_t i = 0; i < ticket_count; i++)
        if (tickets[i].id == id)
            return &tickets[i];
    return NULL;
}

/* The ticket a call may use, or NULL with the error set. */
static struct ticket *usable(const char *call, int id)
{
    if (my_clone_id > 0 && id == my_parent_ticket) {
        fail(EPERM, "%s(%d): ticket %d belongs to this clone's parent; only the parent can use it", call, id, id);
        return NULL;
    }
    struct ticket *t = find(id);
    if (!t)
        fail(EINVAL, "%s(%d): this process holds no ticket %d", call, id, id);
    else if (t->state == DONE || t->state == REAPING)
        fail(ECHILD, "%s(%d): ticket %d was already joined or killed", call, id, id);
    return t && (t->state == GRANTED || t->state == CLONED) ? t : NULL;
}

static int local_limit(int *limit)
{
    const char *text = getenv("SF_MAX_CLONES");
    if (!text || !*text) {
        *limit = DEFAULT_LIMIT;
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || v < 1 || v > INT_MAX)
        return fail(EINVAL, "SF_MAX_CLONES=%s is not a positive whole number", text);
    *limit = (int)v;
    return 0;
}

static int grant_locally(int n)
{
    int limit = DEFAULT_LIMIT;
    if (local_limit(&limit) != 0)
        return -1;
    if (n > limit)
        return fail(E2BIG, "sf_request_ticket(%d): more clones than the limit of %d (SF_MAX_CLONES)", n, limit);
    if (local_live + n > limit)
        return fail(EAGAIN, "sf_request_ticket(%d): %d of the %d clones allowed (SF_MAX_CLONES) are held by other tickets; join or kill them first",
                    n, local_live, limit);
    local_live += n;
    return local_next_id++;
}

/* Gives the ticket's share of the budget back. The agent may be gone at the end of a job: the
 * clones are reaped all the same, so that is no error. */
static void release(struct ticket *t)
{
    if (agent_path()) {
        char request[64], reply[256];
        snprintf(request, sizeof request, "done ticket=%d", t->id);
        if (agent_fd >= 0)
            agent_call(request, reply, sizeof reply);
    } else {
        local_live -= t->n;
    }
    t->state = DONE;
    free(t->pids);
    t->pids = NULL;
}

API int sf_request_ticket(int n)
{
    if (n < 1)
        return fail(EINVAL, "sf_request_ticket(%d): ask for at least one clone", n);
    pthread_mutex_lock(&lock);
    int id;
    const char *path = agent_path();
    if (path) {
        char request[64], reply[256];
        snprintf(request, sizeof request, "ticket n=%d", n);
        id = -1;
        if (agent_connect(path) == 0 && agent_call(request, reply, sizeof reply) == 0) {
            const char *p = strstr(reply, "ticket=");
            id = p ? atoi(p + 7) : 0;
            if (id <= 0) {
                agent_close();
                id = fail(EPROTO, "sfrun agent: no ticket in '%.100s'", reply);
            }
        }
    } else {
        id = grant_locally(n);
    }
    if (id > 0 && ticket_count == ticket_capacity) {
        size_t capacity = ticket_capacity ? ticket_capacity * 2 : 8;
        struct ticket *grown = realloc(tickets, capacity * sizeof *grown);
        if (!grown) {
            struct ticket lost = { .id = id, .n = n };
            release(&lost);
            id = fail(ENOMEM, "sf_request_ticket(%d): out of memory", n);
        } else {
            tickets = grown;
            ticket_capacity = capacity;
        }
    }
    if (id > 0)
        tickets[ticket_count++] = (struct ticket){ .id = id, .n = n, .state = GRANTED };
    pthread_mutex_unlock(&lock);
    return id;
}

static int count_threads(void)
{
    DIR *dir = opendir("/proc/self/task");
    if (!dir)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

static void kill_and_reap(const pid_t *pids, int count)
{
    for (int i = 0; i < count; i++)
        kill(pids[i], SIGKILL);
    for (int i = 0; i < count; i++)
        while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
            ;
}

/* Every clone starts from the same memory: libc's user-space generators would repeat the same
 * numbers in each. The kernel's getrandom() is per call and needs nothing. */
static void reseed(void)
{
    const char *keep = getenv("SF_KEEP_SEEDS");
    if (keep && strcmp(keep, "1") == 0)
        return;
    uint64_t seed;
    ssize_t got;
    while ((got = getrandom(&seed, sizeof seed, 0)) < 0 && errno == EINTR)
        ;
    if (got != (ssize_t)sizeof seed) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        seed = (uint64_t)now.tv_nsec * 0x9E3779B97F4A7C15u ^ (uint64_t)getpid() << 32;
    }
    srandom((unsigned)seed); /* rand() draws from the same state in glibc */
    unsigned short s48[3] = { (unsigned short)(seed >> 16), (unsigned short)(seed >> 32), (unsigned short)(seed >> 48) };
    seed48(s48);
}

/* In the new clone: take the identity, then wait until the parent says go (the agent has
 * recorded the clones) or dies. */
static int become_clone(int id, int ticket, int go[2], pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent)
        _exit(127);
    close(go[1]);
    agent_close(); /* the parent's connection: this clone opens its own if it asks for tickets */
    for (size_t i = 0; i < ticket_count; i++)
        free(tickets[i].pids);
    free(tickets);
    tickets = NULL;
    ticket_count = ticket_capacity = 0;
    local_live = 0;
    my_clone_id = id;
    my_parent_ticket = ticket;
    reseed();
    char c;
    while (read(go[0], &c, 1) < 0 && errno == EINTR)
        ;
    close(go[0]);
    if (getppid() != parent)
        _exit(127);
    pthread_mutex_unlock(&lock);
    return id;
}

API int sf_clone(int id)
{
    pthread_mutex_lock(&lock);
    int result = -1;
    struct ticket *t = usable("sf_clone", id);
    if (!t)
        goto out;
    if (t->state != GRANTED) {
        fail(EALREADY, "sf_clone(%d): ticket %d has already cloned; request a new ticket", id, id);
        goto out;
    }
    int threads = count_threads();
    const char *allow = getenv("SF_ALLOW_THREADS");
    if (threads != 1 && !(allow && strcmp(allow, "1") == 0)) {
        fail(EBUSY, "sf_clone(%d): the process has %d threads and a clone would keep only the calling one; "
             "clone before starting threads (or set SF_ALLOW_THREADS=1)", id, threads);
        goto out;
    }
    pid_t *pids = calloc((size_t)t->n, sizeof *pids);
    int go[2];
    if (!pids) {
        fail(ENOMEM, "sf_clone(%d): out of memory", id);
        goto out;
    }
    if (pipe2(go, O_CLOEXEC) != 0) {
        free(pids);
        fail(errno, "sf_clone(%d): pipe2 failed: %s", id, strerror(errno));
        goto out;
    }
    fflush(NULL); /* what the parent buffered must not be written once more by every clone */
    pid_t parent = getpid();
    for (int i = 0; i < t->n; i++) {
        pid_t pid = fork();
        if (pid == 0)
            return become_clone(i + 1, id, go, parent);
        if (pid < 0) {
            int err = errno;
            kill_and_reap(pids, i);
            close(go[0]);
            close(go[1]);
            free(pids);
            fail(EAGAIN, "sf_clone(%d): fork failed after %d of %d clones: %s", id, i, t->n, strerror(err));
            goto out;
        }
        pids[i] = pid;
    }
    close(go[0]);
    if (agent_path()) {
        size_t capacity = 40 + (size_t)t->n * 12;
        char *line = malloc(capacity), reply[256];
        int ok = line != NULL;
        if (ok) {
            size_t len = (size_t)snprintf(line, capacity, "cloned ticket=%d pids=", id);
            for (int i = 0; i < t->n; i++)
                len += (size_t)snprintf(line + len, capacity - len, i ? ",%d" : "%d", (int)pids[i]);
            ok = agent_call(line, reply, sizeof reply) == 0;
        } else {
            fail(ENOMEM, "sf_clone(%d): out of memory", id);
        }
        free(line);
        if (!ok) {
            /* The clones never ran user code: they are still waiting for the go. */
            kill_and_reap(pids, t->n);
            close(go[1]);
            free(pids);
            goto out;
        }
    }
    close(go[1]);
    t->pids = pids;
    t->state = CLONED;
    result = 0;
out:
    pthread_mutex_unlock(&lock);
    return result;
}

/* Takes the ticket's clones to reap (the ticket is REAPING from now on, so a second join or kill
 * fails at once); NULL with the error set if the ticket is not usable. */
static pid_t *take(const char *call, int id, int *count, int for_join)
{
    struct ticket *t = usable(call, id);
    if (!t)
        return NULL;
    if (t->state == GRANTED && for_join) {
        fail(EINVAL, "%s(%d): ticket %d has no clones yet: call sf_clone first, or sf_kill to release it", call, id, id);
        return NULL;
    }
    pid_t *pids = t->state == CLONED ? t->pids : calloc(1, sizeof(pid_t));
    if (!pids) {
        fail(ENOMEM, "%s(%d): out of memory", call, id);
        return NULL;
    }
    *count = t->state == CLONED ? t->n : 0;
    t->pids = NULL;
    t->state = REAPING;
    return pids;
}

/* After the clones are reaped: give the budget back. */
static void finish(int id)
{
    pthread_mutex_lock(&lock);
    struct ticket *t = find(id);
    if (t && t->state == REAPING)
        release(t);
    pthread_mutex_unlock(&lock);
}

API int sf_join(int id, int *statuses)
{
    pthread_mutex_lock(&lock);
    int count = 0;
    pid_t *pids = take("sf_join", id, &count, 1);
    pthread_mutex_unlock(&lock);
    if (!pids)
        return -1;
    int lost = 0;
    for (int i = 0; i < count; i++) {
        int status = 0;
        pid_t got;
        while ((got = waitpid(pids[i], &status, 0)) < 0 && errno == EINTR)
            ;
        if (got < 0)
            lost++;
        if (statuses)
            statuses[i] = status;
    }
    free(pids);
    finish(id);
    if (lost)
        return fail(ECHILD, "sf_join(%d): %d clones were reaped elsewhere (is SIGCHLD ignored?); their statuses read 0", id, lost);
    return 0;
}

API int sf_kill(int id)
{
    pthread_mutex_lock(&lock);
    int count = 0;
    pid_t *pids = take("sf_kill", id, &count, 0);
    pthread_mutex_unlock(&lock);
    if (!pids)
        return -1;
    kill_and_reap(pids, count);
    free(pids);
    finish(id);
    return 0;
}

API int sf_exit(int status)
{
    if (my_clone_id == 0)
        return fail(EPERM, "sf_exit: this process is not a clone (a parent ends with exit() or by returning from main)");
    fflush(NULL);
    _exit(status & 0xff);
}

API int sf_clone_id(void)
{
    return my_clone_id;
}

API const char *sf_error(void)
{
    return last_error;
}
