/* sfjob-guard CGROUP START_NS: ends what a job leaves, also when sfrun is SIGKILLed.
 *
 * sfrun starts it before any rank, outside the job's cgroup, with a pipe as stdin that only sfrun
 * holds. It first sweeps the cgroups of jobs whose sfrun died with no guard left to end them
 * (entries "<sfrun pid>-…" beside CGROUP, of this uid, whose pid is gone). Then it waits for EOF
 * on stdin — sfrun's teardown closes the pipe, or the kernel does when sfrun dies — and:
 *   1. kills every process in CGROUP at once with cgroup.kill, which a fork chain (each child
 *      forks its successor and exits) cannot outrun as it outruns a scan of /proc; where the
 *      kernel has no cgroup.kill (before 5.14), freezes the cgroup and kills what it lists until
 *      it is empty;
 *   2. waits until the cgroup is unpopulated and removes it;
 *   3. deletes the MPI libraries' shared-memory segments in /dev/shm that the job's ranks left:
 *      a rank killed inside MPI_Init has not yet unlinked them. A segment is the job's if it has
 *      an MPI library's name, belongs to this uid, was modified since START_NS (the job's start,
 *      ns since the epoch) and no live process maps it or holds it open — so a segment of another
 *      user, of an earlier day, or of a job still running is never touched.
 * CGROUP "-": the job has no cgroup (none writable here); only step 3 runs. Exits 0, or 1 after
 * saying on stderr what it could not do. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long the killed processes of one cgroup may take to exit. */
#define UNPOPULATED_WITHIN_MS 10000

/* Names MPICH (MPL's shared memory), UCX's posix transport and Open MPI's sm/vader BTLs give
 * their segments. */
static const char *const segment_prefixes[] = { "mpich_shar_tmp", "ucx_shm_posix_", "vader_segment.", "sm_segment." };

static int failed;

static void complain(const char *call, const char *arg)
{
    fprintf(stderr, "sfjob-guard: %s(%s) failed: %s\n", call, arg, strerror(errno));
    failed = 1;
}

static void sleep_ms(long ms)
{
    struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

/* Writes `value` to the control file `name` of cgroup `dir`; 0, or -1 with errno set. */
static int write_control(const char *dir, const char *name, const char *value)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, value, strlen(value));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(value) ? 0 : -1;
}

/* Reads the control file `name` of cgroup `dir` into buf; its length, or -1 with errno set. */
static ssize_t read_control(const char *dir, const char *name, char *buf, size_t size)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    int saved = errno;
    close(fd);
    errno = saved;
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

/* 1 while a cgroup (or one below it) has a live process, 0 when not, -1 if unreadable. */
static int populated(const char *dir)
{
    char events[512];
    if (read_control(dir, "cgroup.events", events, sizeof events) < 0)
        return -1;
    return strstr(events, "populated 1") != NULL;
}

/* Before cgroup.kill: frozen, the cgroup's processes cannot fork, so killing each one it lists
 * leaves none that a fork made between the read and the kill. */
static void kill_frozen(const char *dir)
{
    if (write_control(dir, "cgroup.freeze", "1") != 0) {
        complain("write cgroup.freeze", dir);
        return;
    }
    char events[512];
    for (int i = 0; i < 1000; i++) {
        if (read_control(dir, "cgroup.events", events, sizeof events) < 0 || strstr(events, "frozen 1"))
            break;
        sleep_ms(1);
    }
    static char procs[1 << 16];
    if (read_control(dir, "cgroup.procs", procs, sizeof procs) < 0)
        complain("read cgroup.procs", dir);
    else
        for (char *p = procs, *end; *p; p = end) {
            long pid = strtol(p, &end, 10);
            if (end == p)
                break;
            if (pid > 0 && kill((pid_t)pid, SIGKILL) != 0 && errno != ESRCH)
                complain("kill", p);
        }
    /* Thawed, the killed processes run to their exit. */
    if (write_control(dir, "cgroup.freeze", "0") != 0)
        complain("write cgroup.freeze", dir);
}

/* Kills everything in cgroup `dir`, waits until it is empty and removes it. */
static void end_cgroup(const char *dir)
{
    int has_kill = 1;
    for (int waited = 0;; waited++) {
        int p = populated(dir);
        if (p < 0) {
            if (errno != ENOENT) /* removed already: by a sweeping guard of another job */
                complain("read cgroup.events", dir);
            return;
        }
        if (!p)
            break;
        if (waited % 100 == 0) { /* again every 100 ms, for a process that joined late */
            if (has_kill && write_control(dir, "cgroup.kill", "1") != 0) {
                if (errno != ENOENT) {
                    complain("write cgroup.kill", dir);
                    return;
                }
                has_kill = 0;
            }
            if (!has_kill)
                kill_frozen(dir);
        }
        if (waited >= UNPOPULATED_WITHIN_MS) {
            fprintf(stderr, "sfjob-guard: processes of %s still alive after %d ms\n", dir, UNPOPULATED_WITHIN_MS);
            failed = 1;
            return;
        }
        sleep_ms(1);
    }
    /* The last exits may still be leaving the cgroup's accounting: EBUSY for a moment. */
    for (int i = 0; rmdir(dir) != 0; i++) {
        if (errno == ENOENT)
            return;
        if (errno != EBUSY || i >= 1000) {
            complain("rmdir", dir);
            return;
        }
        sleep_ms(1);
    }
}

/* Ends the cgroups beside `own` of jobs whose sfrun is gone: named "<pid>-…", owned by this uid
 * (so only those an sfrun of this user made), with no process `pid`. */
static void sweep_dead_jobs(const char *own)
{
    char parent[PATH_MAX];
    if (snprintf(parent, sizeof parent, "%s", own) >= (int)sizeof parent)
        return;
    char *slash = strrchr(parent, '/');
    if (!slash || slash == parent)
        return;
    *slash = '\0';
    DIR *d = opendir(parent);
    if (!d) {
        complain("opendir", parent);
        return;
    }
    for (struct dirent *e; (errno = 0, e = readdir(d));) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (e->d_type != DT_DIR || end == e->d_name || *end != '-' || pid <= 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_uid != getuid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", parent, e->d_name) < (int)sizeof path)
            end_cgroup(path);
    }
    if (errno != 0)
        complain("readdir", parent);
    closedir(d);
}

static int has_segment_name(const char *name)
{
    for (size_t i = 0; i < sizeof segment_prefixes / sizeof segment_prefixes[0]; i++)
        if (strncmp(name, segment_prefixes[i], strlen(segment_prefixes[i])) == 0)
            return 1;
    return 0;
}

/* Candidate segments: names, NUL-separated, and their count. */
struct names {
    char *text;
    size_t len, cap, count;
};

static void add_name(struct names *n, const char *name)
{
    size_t need = strlen(name) + 1;
    if (n->len + need > n->cap) {
        size_t cap = n->cap ? n->cap * 2 + need : 4096 + need;
        char *grown = realloc(n->text, cap);
        if (!grown) {
            complain("realloc", "segment names");
            return;
        }
        n->text = grown;
        n->cap = cap;
    }
    memcpy(n->text + n->len, name, need);
    n->len += need;
    n->count++;
}

/* Drops `name` from the candidates (it is in use). */
static void drop_name(struct names *n, const char *name)
{
    for (char *p = n->text; p < n->text + n->len; p += strlen(p) + 1)
        if (*p && strcmp(p, name) == 0)
            *p = '\0';
}

/* Drops every candidate that process `pid` maps or has open. */
static void drop_used_by(struct names *n, const char *pid)
{
    char path[PATH_MAX], line[PATH_MAX + 256];
    snprintf(path, sizeof path, "/proc/%s/maps", pid);
    FILE *maps = fopen(path, "re");
    if (maps) {
        while (fgets(line, sizeof line, maps)) {
            char *at = strstr(line, " /dev/shm/");
            if (!at)
                continue;
            at += strlen(" /dev/shm/");
            at[strcspn(at, " \n")] = '\0';
            drop_name(n, at);
        }
        fclose(maps);
    }
    snprintf(path, sizeof path, "/proc/%s/fd", pid);
    DIR *fds = opendir(path);
    if (!fds)
        return;
    for (struct dirent *e; (e = readdir(fds));) {
        char target[PATH_MAX];
        ssize_t len = readlinkat(dirfd(fds), e->d_name, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (strncmp(target, "/dev/shm/", 9) == 0)
            drop_name(n, target + 9);
    }
    closedir(fds);
}

static void remove_segments(long long start_ns)
{
    int shm = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (shm < 0) {
        if (errno != ENOENT)
            complain("open", "/dev/shm");
        return;
    }
    DIR *d = fdopendir(dup(shm));
    if (!d) {
        complain("fdopendir", "/dev/shm");
        close(shm);
        return;
    }
    /* tmpfs stamps files with the coarse clock, up to a tick behind the job's start: a second of
     * slack. An older segment that qualifies is still unused, so it is a leak too. */
    long long since = start_ns - 1000000000LL;
    struct names cand = { 0 };
    for (struct dirent *e; (e = readdir(d));) {
        if (!has_segment_name(e->d_name))
            continue;
        struct stat st;
        if (fstatat(shm, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid())
            continue;
        if ((long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec < since)
            continue;
        add_name(&cand, e->d_name);
    }
    closedir(d);
    if (cand.count > 0) {
        DIR *proc = opendir("/proc");
        if (!proc)
            complain("opendir", "/proc");
        else {
            for (struct dirent *e; (e = readdir(proc));)
                if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
                    drop_used_by(&cand, e->d_name);
            closedir(proc);
            for (char *p = cand.text; p < cand.text + cand.len; p += strlen(p) + 1) {
                struct stat st;
                /* Checked again right before: only a regular file of this uid goes. */
                if (!*p || fstatat(shm, p, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid())
                    continue;
                if (unlinkat(shm, p, 0) != 0 && errno != ENOENT)
                    complain("unlinkat /dev/shm", p);
            }
        }
    }
    free(cand.text);
    close(shm);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: sfjob-guard CGROUP|- START_NS\n");
        return 2;
    }
    const char *cgroup = strcmp(argv[1], "-") == 0 ? NULL : argv[1];
    char *end;
    long long start_ns = strtoll(argv[2], &end, 10);
    if (*end != '\0' || end == argv[2]) {
        fprintf(stderr, "sfjob-guard: bad start time '%s'\n", argv[2]);
        return 2;
    }
    /* Its own session: a terminal's Ctrl-C or hangup for sfrun's group must not end it before
     * the job is gone. */
    if (setsid() < 0)
        complain("setsid", "");
    /* Nothing to say on stdout; holding sfrun's stdout would delay EOF for sfrun's reader. */
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 1) < 0)
        complain("open/dup2", "/dev/null");
    if (null > 1)
        close(null);
    if (cgroup)
        sweep_dead_jobs(cgroup);
    char buf[256];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0 && errno != EINTR) {
            complain("read", "stdin");
            break;
        }
    }
    if (cgroup)
        end_cgroup(cgroup);
    remove_segments(start_ns);
    return failed;
}
