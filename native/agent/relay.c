/* The PMI relay: ranks dial PMI_PORT on the guest's loopback, where the agent listens; each
 * connection becomes a stream of PMI_DATA frames that the host joins to sfrun's real PMI server.
 * The bytes are not interpreted here: the PMI protocol stays between MPI and sfrun. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"

#define MAX_LISTENERS 8

struct listener {
    int fd;
    uint16_t port;
};

static struct listener listeners[MAX_LISTENERS];
static int nlisteners;
static int streams[AGENT_MAX_STREAMS + 1]; /* stream id -> fd, 0 = unused (ids start at 1) */
static uint16_t next_stream = 1;

int relay_listen_for(char *entry, size_t capacity)
{
    const char *colon = strrchr(entry, ':');
    long port = colon != NULL ? strtol(colon + 1, NULL, 10) : 0;
    if (port <= 0 || port > 65535) {
        errno = EINVAL;
        return -1;
    }
    snprintf(entry, capacity, "PMI_PORT=127.0.0.1:%ld", port);
    for (int i = 0; i < nlisteners; i++)
        if (listeners[i].port == port)
            return 0;
    if (nlisteners == MAX_LISTENERS) {
        errno = EMFILE;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        agent_log("setsockopt(SO_REUSEADDR) failed: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    listeners[nlisteners++] = (struct listener){.fd = fd, .port = (uint16_t)port};
    return 0;
}

static void close_stream(uint16_t id, int tell_host)
{
    if (id == 0 || id > AGENT_MAX_STREAMS || streams[id] <= 0)
        return;
    if (close(streams[id]) != 0)
        agent_log("close(PMI stream %u) failed: %s", id, strerror(errno));
    streams[id] = 0;
    if (tell_host)
        channel_send(AGENT_PMI_DATA, id, NULL, 0);
}

void relay_data_from_host(uint16_t id, const uint8_t *data, uint32_t length)
{
    if (id == 0 || id > AGENT_MAX_STREAMS || streams[id] <= 0)
        return;
    if (length == 0) {
        close_stream(id, 0);
        return;
    }
    while (length > 0) {
        ssize_t n = write(streams[id], data, length);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                /* PMI replies are a few lines; a rank that does not read them is stuck anyway. */
                struct pollfd p = {.fd = streams[id], .events = POLLOUT};
                if (poll(&p, 1, 1000) <= 0) {
                    close_stream(id, 1);
                    return;
                }
                continue;
            }
            close_stream(id, 1);
            return;
        }
        data += n;
        length -= (uint32_t)n;
    }
}

static uint16_t allocate_stream(int fd)
{
    for (int tries = 0; tries < AGENT_MAX_STREAMS; tries++) {
        uint16_t id = next_stream;
        next_stream = (uint16_t)(next_stream % AGENT_MAX_STREAMS + 1);
        if (streams[id] == 0) {
            streams[id] = fd;
            return id;
        }
    }
    return 0;
}

static int kind_of[MAX_LISTENERS + AGENT_MAX_STREAMS];
static int index_of[MAX_LISTENERS + AGENT_MAX_STREAMS];

int relay_poll_fds(struct pollfd *fds, int max)
{
    int n = 0;
    for (int i = 0; i < nlisteners && n < max; i++) {
        fds[n] = (struct pollfd){.fd = listeners[i].fd, .events = POLLIN};
        kind_of[n] = 0, index_of[n++] = i;
    }
    for (int id = 1; id <= AGENT_MAX_STREAMS && n < max; id++) {
        if (streams[id] <= 0)
            continue;
        fds[n] = (struct pollfd){.fd = streams[id], .events = POLLIN};
        kind_of[n] = 1, index_of[n++] = id;
    }
    return n;
}

void relay_on_poll(const struct pollfd *fds, int count)
{
    static uint8_t buf[AGENT_MAX_PAYLOAD];
    for (int i = 0; i < count; i++) {
        if (fds[i].revents == 0)
            continue;
        if (kind_of[i] == 0) {
            struct listener *l = &listeners[index_of[i]];
            int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR)
                    agent_log("accept4(PMI port %u) failed: %s", l->port, strerror(errno));
                continue;
            }
            uint16_t id = allocate_stream(fd);
            if (id == 0) {
                agent_log("too many PMI connections");
                close(fd);
                continue;
            }
            channel_send_u32(AGENT_PMI_OPEN, id, l->port);
            continue;
        }
        uint16_t id = (uint16_t)index_of[i];
        if (streams[id] != fds[i].fd)
            continue;
        ssize_t n = read(fds[i].fd, buf, sizeof buf);
        if (n > 0)
            channel_send(AGENT_PMI_DATA, id, buf, (uint32_t)n);
        else if (n == 0 || (errno != EAGAIN && errno != EINTR))
            close_stream(id, 1);
    }
}
