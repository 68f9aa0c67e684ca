/* Rank processes: started from START frames in their own session (as hydra starts ranks), their
 * stdout/stderr relayed as frames, stdin fed from frames without ever blocking the agent, their
 * end reported as EXIT once what they wrote has been relayed. The agent is PID 1, so it also
 * reaps every orphan in the guest. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

struct rank {
    int used;
    pid_t pid;
    int in, out, err;      /* agent's ends; -1 when closed */
    uint8_t *pending;      /* stdin bytes the rank has not read yet */
    size_t pending_len;
    int stdin_eof;         /* host sent EOF: close `in` once pending is written */
};

static struct rank ranks[AGENT_MAX_RANKS];

static void close_fd(int *fd)
{
    if (*fd >= 0 && close(*fd) != 0)
        agent_log("close(%d) failed: %s", *fd, strerror(errno));
    *fd = -1;
}

static void mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(buf, 0755);
        *p = '/';
    }
    mkdir(buf, 0755);
}

static void fail(uint16_t slot, const char *what, const char *exe, int err)
{
    char msg[512];
    snprintf(msg, sizeof msg, "cannot start %s: %s: %s", exe, what, strerror(err));
    channel_send_text(AGENT_ERROR, slot, msg);
}

void ranks_start(uint16_t slot, const uint8_t *payload, uint32_t length)
{
    if (slot >= AGENT_MAX_RANKS || ranks[slot].used) {
        channel_send_text(AGENT_ERROR, slot, "rank slot out of range or in use");
        return;
    }
    /* Split the NUL-terminated strings: exe, cwd, then A<arg> and E<NAME=VALUE>. */
    static char copy[AGENT_MAX_PAYLOAD + 1];
    memcpy(copy, payload, length);
    copy[length] = '\0';
    static char *argv[4096], *envp[4096];
    int argc = 0, envc = 0, field = 0;
    const char *exe = NULL, *cwd = "/";
    for (uint32_t at = 0; at < length; field++) {
        char *s = copy + at;
        at += (uint32_t)strlen(s) + 1;
        if (field == 0)
            exe = s;
        else if (field == 1)
            cwd = s;
        else if (s[0] == 'A' && argc < 4094)
            argv[1 + argc++] = s + 1;
        else if (s[0] == 'E' && envc < 4094)
            envp[envc++] = s + 1;
    }
    if (exe == NULL || exe[0] == '\0') {
        channel_send_text(AGENT_ERROR, slot, "START without an executable");
        return;
    }
    argv[0] = (char *)exe;
    argv[1 + argc] = NULL;
    static char pmi_port[256];
    for (int i = 0; i < envc; i++) {
        if (strncmp(envp[i], "PMI_PORT=", 9) != 0)
            continue;
        snprintf(pmi_port, sizeof pmi_port, "%s", envp[i]);
        if (relay_listen_for(pmi_port, sizeof pmi_port) != 0) {
            fail(slot, "PMI relay", exe, errno);
            return;
        }
        envp[i] = pmi_port;
    }
    envp[envc] = NULL;

    int in[2], out[2], err[2], status[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(status, O_CLOEXEC) != 0) {
        fail(slot, "pipe2", exe, errno);
        return;
    }
    mkdir_p(cwd);
    pid_t pid = fork();
    if (pid < 0) {
        fail(slot, "fork", exe, errno);
        return;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int e = 0;
        if (setsid() < 0 || dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
            e = errno;
        else if (chdir(cwd) != 0)
            e = errno;
        else {
            execve(exe, argv, envp);
            e = errno;
        }
        /* The parent reads why: the exec never happened. */
        if (write(status[1], &e, sizeof e) != (ssize_t)sizeof e)
            _exit(127);
        _exit(127);
    }
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&err[1]);
    close_fd(&status[1]);
    int child_errno = 0;
    ssize_t n;
    do
        n = read(status[0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    close_fd(&status[0]);
    if (n == (ssize_t)sizeof child_errno) {
        /* Reaped later by ranks_reap like any orphan; this slot never existed for the host. */
        fail(slot, "exec", exe, child_errno);
        close_fd(&in[1]);
        close_fd(&out[0]);
        close_fd(&err[0]);
        return;
    }
    if (fcntl(in[1], F_SETFL, O_NONBLOCK) != 0 || fcntl(out[0], F_SETFL, O_NONBLOCK) != 0 || fcntl(err[0], F_SETFL, O_NONBLOCK) != 0)
        agent_log("fcntl(O_NONBLOCK) failed: %s", strerror(errno));
    ranks[slot] = (struct rank){.used = 1, .pid = pid, .in = in[1], .out = out[0], .err = err[0]};
    channel_send_u32(AGENT_STARTED, slot, (uint32_t)pid);
}

static void flush_stdin(struct rank *r)
{
    while (r->in >= 0 && r->pending_len > 0) {
        ssize_t n = write(r->in, r->pending, r->pending_len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            /* The rank closed its stdin (EPIPE): what it did not want is dropped, as a pipe would. */
            r->pending_len = 0;
            close_fd(&r->in);
            break;
        }
        memmove(r->pending, r->pending + n, r->pending_len - (size_t)n);
        r->pending_len -= (size_t)n;
    }
    if (r->pending_len == 0 && r->stdin_eof)
        close_fd(&r->in);
}

void ranks_stdin(uint16_t slot, const uint8_t *data, uint32_t length)
{
    if (slot >= AGENT_MAX_RANKS || !ranks[slot].used)
        return;
    struct rank *r = &ranks[slot];
    if (length == 0) {
        r->stdin_eof = 1;
    } else if (r->in >= 0) {
        uint8_t *grown = realloc(r->pending, r->pending_len + length);
        if (grown == NULL) {
            agent_log("out of memory buffering stdin of slot %u", slot);
            return;
        }
        r->pending = grown;
        memcpy(r->pending + r->pending_len, data, length);
        r->pending_len += length;
    }
    flush_stdin(r);
}

void ranks_signal(uint16_t slot, int signo)
{
    if (slot >= AGENT_MAX_RANKS || !ranks[slot].used || ranks[slot].pid <= 0)
        return;
    if (kill(ranks[slot].pid, signo) != 0 && errno != ESRCH)
        agent_log("kill(%d, %d) failed: %s", (int)ranks[slot].pid, signo, strerror(errno));
}

void ranks_kill_all(int everything)
{
    /* As PID 1 of a guest, everything else in the guest goes. Outside a guest (tests) kill(-1)
     * would reach every process of the user on the host: only the ranks' own sessions go. */
    if (everything) {
        if (kill(-1, SIGKILL) != 0 && errno != ESRCH)
            agent_log("kill(-1, SIGKILL) failed: %s", strerror(errno));
        return;
    }
    for (int slot = 0; slot < AGENT_MAX_RANKS; slot++)
        if (ranks[slot].used && ranks[slot].pid > 0 && kill(-ranks[slot].pid, SIGKILL) != 0 && errno != ESRCH)
            agent_log("kill(-%d, SIGKILL) failed: %s", (int)ranks[slot].pid, strerror(errno));
}

/* Returns 1 while the stream is open. */
static int pump(int *fd, uint8_t type, uint16_t slot)
{
    static uint8_t buf[AGENT_MAX_PAYLOAD];
    for (;;) {
        ssize_t n = read(*fd, buf, sizeof buf);
        if (n > 0) {
            channel_send(type, slot, buf, (uint32_t)n);
            if ((size_t)n < sizeof buf)
                return 1;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 1;
        close_fd(fd);
        channel_send(type, slot, NULL, 0);
        return 0;
    }
}

void ranks_reap(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        for (int slot = 0; slot < AGENT_MAX_RANKS; slot++) {
            struct rank *r = &ranks[slot];
            if (!r->used || r->pid != pid)
                continue;
            /* Relay what it wrote before saying it ended; a grandchild that still holds the
             * pipes does not keep the rank's end from being reported. */
            if (r->out >= 0 && pump(&r->out, AGENT_STDOUT, (uint16_t)slot)) {
                close_fd(&r->out);
                channel_send(AGENT_STDOUT, (uint16_t)slot, NULL, 0);
            }
            if (r->err >= 0 && pump(&r->err, AGENT_STDERR, (uint16_t)slot)) {
                close_fd(&r->err);
                channel_send(AGENT_STDERR, (uint16_t)slot, NULL, 0);
            }
            close_fd(&r->in);
            free(r->pending);
            uint32_t code = WIFEXITED(status) ? (uint32_t)WEXITSTATUS(status) : 0;
            uint32_t sig = WIFSIGNALED(status) ? (uint32_t)WTERMSIG(status) : 0;
            channel_send_u32x2(AGENT_EXIT, (uint16_t)slot, code, sig);
            *r = (struct rank){0};
            r->in = r->out = r->err = -1;
            break;
        }
    }
}

/* fds[i].events carries the slot in the high bits of a side table kept by the caller order. */
static int slot_of[3 * AGENT_MAX_RANKS];
static int kind_of[3 * AGENT_MAX_RANKS];

int ranks_poll_fds(struct pollfd *fds, int max)
{
    int n = 0;
    for (int slot = 0; slot < AGENT_MAX_RANKS && n + 3 <= max; slot++) {
        struct rank *r = &ranks[slot];
        if (!r->used)
            continue;
        if (r->out >= 0) {
            fds[n] = (struct pollfd){.fd = r->out, .events = POLLIN};
            slot_of[n] = slot, kind_of[n++] = 1;
        }
        if (r->err >= 0) {
            fds[n] = (struct pollfd){.fd = r->err, .events = POLLIN};
            slot_of[n] = slot, kind_of[n++] = 2;
        }
        if (r->in >= 0 && r->pending_len > 0) {
            fds[n] = (struct pollfd){.fd = r->in, .events = POLLOUT};
            slot_of[n] = slot, kind_of[n++] = 0;
        }
    }
    return n;
}

void ranks_on_poll(const struct pollfd *fds, int count)
{
    for (int i = 0; i < count; i++) {
        if (fds[i].revents == 0)
            continue;
        struct rank *r = &ranks[slot_of[i]];
        if (!r->used)
            continue;
        if (kind_of[i] == 1 && r->out == fds[i].fd)
            pump(&r->out, AGENT_STDOUT, (uint16_t)slot_of[i]);
        else if (kind_of[i] == 2 && r->err == fds[i].fd)
            pump(&r->err, AGENT_STDERR, (uint16_t)slot_of[i]);
        else if (kind_of[i] == 0 && r->in == fds[i].fd)
            flush_stdin(r);
    }
}

__attribute__((constructor)) static void ranks_init(void)
{
    for (int i = 0; i < AGENT_MAX_RANKS; i++)
        ranks[i].in = ranks[i].out = ranks[i].err = -1;
}
