/* sfagent: the guest agent. As PID 1 of a VM clone (the /init of the guest image) it brings the
 * guest up, opens the control channel and serves sfrun's frames: identity, entropy, rank starts,
 * stdin, signals, the PMI relay and quit. With --channel-fd=N it serves an inherited channel
 * without touching the system, and with --channel-unix=PATH it connects to a unix socket to get
 * one: so the host side can be tested without a VM. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"

static int as_init;

void agent_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    dprintf(2, "sfagent: %s\n", line);
}

static void on_frame(const struct frame *f)
{
    switch (f->type) {
    case AGENT_PING: {
        char hello[64];
        snprintf(hello, sizeof hello, "snowflock-agent %d\n", AGENT_PROTOCOL_VERSION);
        channel_send_text(AGENT_HELLO, 0, hello);
        break;
    }
    case AGENT_IDENTITY:
        if (as_init)
            identity_apply(f->payload, f->length);
        else
            channel_send(AGENT_IDENTITY_ACK, 0, f->payload, f->length); /* not ours to change */
        break;
    case AGENT_ENTROPY:
        if (as_init)
            sysinit_add_entropy(f->payload, f->length);
        break;
    case AGENT_START:
        ranks_start(f->channel, f->payload, f->length);
        break;
    case AGENT_STDIN:
        ranks_stdin(f->channel, f->payload, f->length);
        break;
    case AGENT_SIGNAL:
        if (f->length == 4)
            ranks_signal(f->channel, (int)(f->payload[0] | f->payload[1] << 8 | f->payload[2] << 16 | (uint32_t)f->payload[3] << 24));
        break;
    case AGENT_QUIT:
        ranks_kill_all(as_init);
        if (as_init)
            sysinit_power_off();
        exit(0);
    case AGENT_PMI_DATA:
        relay_data_from_host(f->channel, f->payload, f->length);
        break;
    default:
        agent_log("unknown frame type 0x%02x ignored", f->type);
    }
}

static int connect_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        agent_log("socket(AF_UNIX) failed: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        agent_log("connect(%s) failed: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void console_stdio(void)
{
    int fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0)
        return;
    for (int i = 0; i <= 2; i++)
        if (dup2(fd, i) < 0)
            return;
    if (fd > 2)
        close(fd);
}

int main(int argc, char **argv)
{
    int channel = -1;
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--channel-fd=", 13) == 0)
            channel = atoi(argv[i] + 13);
        else if (strcmp(argv[i], "--loopback-up") == 0)
            sysinit_loopback(); /* tests run the agent in a fresh network namespace */
        else if (strncmp(argv[i], "--channel-unix=", 15) == 0 && (channel = connect_unix(argv[i] + 15)) < 0)
            return 1;
    as_init = getpid() == 1;
    int reconnects = as_init;
    if (!as_init && channel < 0) {
        fprintf(stderr, "usage: sfagent [--loopback-up] --channel-fd=N | --channel-unix=PATH (as PID 1 it finds its channel itself)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &chld, NULL) != 0) {
        agent_log("sigprocmask failed: %s", strerror(errno));
        return 1;
    }
    int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        agent_log("signalfd failed: %s", strerror(errno));
        return 1;
    }
    if (as_init) {
        sysinit_mounts();
        console_stdio();
        sysinit_modules("/etc/snowflock/modules");
        sysinit_loopback();
        identity_net_up();
        if (xen_detected()) {
            /* A TCP channel does not come back: when sfrun is gone the clone powers off. */
            channel = xen_open_channel();
            reconnects = 0;
            if (channel < 0)
                sysinit_power_off();
        } else if ((channel = sysinit_open_port(AGENT_PORT_NAME, 30000)) < 0) {
            agent_log("no virtio port named %s: %s", AGENT_PORT_NAME, strerror(errno));
            sysinit_power_off();
        }
        agent_log("ready");
    }
    channel_init(channel, reconnects);

    static struct pollfd fds[AGENT_MAX_POLL];
    for (;;) {
        int n = 0;
        fds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        int channel_index = -1;
        if (!channel_disconnected()) {
            channel_index = n;
            fds[n++] = (struct pollfd){.fd = channel_fd(), .events = POLLIN};
        }
        int ranks_at = n;
        int nranks = ranks_poll_fds(fds + n, AGENT_MAX_POLL - n);
        n += nranks;
        int relay_at = n;
        int nrelay = relay_poll_fds(fds + n, AGENT_MAX_POLL - n);
        n += nrelay;
        /* While nobody holds the host side, a virtio port polls as hung up: look again soon. */
        int ready = poll(fds, (nfds_t)n, channel_disconnected() ? 20 : -1);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            agent_log("poll failed: %s", strerror(errno));
            return 1;
        }
        if (fds[0].revents != 0) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                ;
        }
        /* Output first, then exits: a rank's last words precede its EXIT frame. */
        ranks_on_poll(fds + ranks_at, nranks);
        ranks_reap();
        relay_on_poll(fds + relay_at, nrelay);
        if (channel_index < 0 || fds[channel_index].revents != 0) {
            if (channel_read(on_frame) < 0) {
                ranks_kill_all(as_init);
                if (as_init)
                    sysinit_power_off();
                return 0;
            }
        }
    }
}
