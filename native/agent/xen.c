/* The control channel on Xen. A Xen clone has no virtio port: dom0 writes the clone's identity
 * into xenstore under the domain's own data/snowflock/ (readable only by the domain and dom0),
 * and the agent reads it through /dev/xen/xenbus, brings up eth0 with it and connects over TCP
 * to the control address named there (sfrun's listener), proving who it is with the token dom0
 * wrote. The warm master domU has no identity: it waits in xen_open_channel, and that is where
 * its checkpoint is taken, so every clone resumes in the loop and finds its own keys. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define XENBUS_DEV "/dev/xen/xenbus"
#define XS_READ 2u
#define XS_WRITE 11u
#define XS_ERROR 16u
#define XS_PREFIX "data/snowflock/"

struct xs_header {
    uint32_t type, req_id, tx_id, len;
};

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

int xen_detected(void) { return access(XENBUS_DEV, F_OK) == 0; }

static int full_io(int fd, void *buf, size_t len, int writing)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads one key below data/snowflock/ (a path relative to this domain). Returns its length, or -1
 * when it does not exist (or xenstore failed; errno says which). A fresh open per read, because
 * a checkpoint/restore reconnects xenbus under us. */
static int xs_read(const char *key, char *value, size_t cap)
{
    char path[256];
    int plen = snprintf(path, sizeof path, XS_PREFIX "%s", key);
    int fd = open(XENBUS_DEV, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct xs_header h = {XS_READ, 1, 0, (uint32_t)plen + 1};
    int rc = -1;
    if (full_io(fd, &h, sizeof h, 1) != 0 || full_io(fd, path, (size_t)plen + 1, 1) != 0
        || full_io(fd, &h, sizeof h, 0) != 0)
        goto out;
    char reply[4096];
    if (h.len >= sizeof reply || full_io(fd, reply, h.len, 0) != 0) {
        errno = EMSGSIZE;
        goto out;
    }
    reply[h.len] = '\0';
    if (h.type == XS_ERROR) {
        errno = strcmp(reply, "ENOENT") == 0 ? ENOENT : EIO;
        goto out;
    }
    if (h.len >= cap) {
        errno = EMSGSIZE;
        goto out;
    }
    memcpy(value, reply, h.len);
    value[h.len] = '\0';
    rc = (int)h.len;
out:
    close(fd);
    return rc;
}

/* Writes one key below data/snowflock/ (a domain may write its own data/ subtree). */
static int xs_write(const char *key, const char *value)
{
    char msg[512];
    int plen = snprintf(msg, sizeof msg, XS_PREFIX "%s", key);
    int vlen = snprintf(msg + plen + 1, sizeof msg - (size_t)plen - 1, "%s", value);
    int fd = open(XENBUS_DEV, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct xs_header h = {XS_WRITE, 2, 0, (uint32_t)(plen + 1 + vlen)};
    char reply[64];
    int rc = full_io(fd, &h, sizeof h, 1) == 0 && full_io(fd, msg, h.len, 1) == 0 && full_io(fd, &h, sizeof h, 0) == 0
                     && h.len < sizeof reply && full_io(fd, reply, h.len, 0) == 0 && h.type == XS_WRITE
                 ? 0
                 : -1;
    close(fd);
    return rc;
}

static void default_route(const char *gateway)
{
    struct rtentry rt = {0};
    struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
    gw->sin_family = AF_INET;
    if (inet_pton(AF_INET, gateway, &gw->sin_addr) != 1) {
        agent_log("xen: bad gateway '%s'", gateway);
        return;
    }
    ((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
    ((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0 || (ioctl(s, SIOCADDRT, &rt) != 0 && errno != EEXIST))
        agent_log("xen: default route via %s failed: %s", gateway, strerror(errno));
    if (s >= 0)
        close(s);
}

/* Applies the identity dom0 wrote before any channel exists (on Xen, xenstore is the only way it
 * arrives). identity_apply answers with an IDENTITY_ACK, which has nobody to go to yet, so it goes
 * to /dev/null. */
static void early_identity(void)
{
    static char payload[8192];
    char v[4096];
    size_t used = 0;
    static const char *const keys[] = {"clone", "hostname", "ip", "mac", "hosts"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (xs_read(keys[i], v, sizeof v) >= 0 && used < sizeof payload)
            used += (size_t)snprintf(payload + used, sizeof payload - used, "%s=%s\n", keys[i], v);
    if (used >= sizeof payload)
        used = sizeof payload - 1;
    int sink = open("/dev/null", O_WRONLY | O_CLOEXEC);
    channel_init(sink, 0);
    identity_apply((const uint8_t *)payload, (uint32_t)used);
    channel_init(-1, 0);
    if (sink >= 0)
        close(sink);
    if (xs_read("gateway", v, sizeof v) > 0)
        default_route(v);
}

/* Whether eth0 runs with the MAC dom0 gave this clone. Flags alone do not tell: a restored
 * netfront keeps IFF_UP while it is detached, and a MAC set then fails with ENODEV. */
static int eth0_ready(void)
{
    char want[64];
    if (xs_read("mac", want, sizeof want) <= 0)
        return 1;
    struct ifreq ifr = {0};
    strncpy(ifr.ifr_name, "eth0", IFNAMSIZ - 1);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return 0;
    int ready = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags & IFF_RUNNING)
        && ioctl(s, SIOCGIFHWADDR, &ifr) == 0) {
        const unsigned char *m = (const unsigned char *)ifr.ifr_hwaddr.sa_data;
        char have[32];
        snprintf(have, sizeof have, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
        ready = strcasecmp(have, want) == 0;
    }
    close(s);
    return ready;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* dom0 wrote fresh random bytes, hex-encoded, as data/snowflock/entropy. */
static void reseed_from_xenstore(void)
{
    char hex[260];
    uint8_t bytes[128];
    int n = xs_read("entropy", hex, sizeof hex);
    if (n <= 0) {
        agent_log("xen: no entropy in xenstore; the clone keeps the master's random state");
        return;
    }
    uint32_t len = 0;
    for (int i = 0; i + 1 < n && len < sizeof bytes; i += 2) {
        int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
        if (hi < 0 || lo < 0) {
            agent_log("xen: data/snowflock/entropy is not hex");
            return;
        }
        bytes[len++] = (uint8_t)(hi << 4 | lo);
    }
    sysinit_add_entropy(bytes, len);
}

static int connect_control(const char *endpoint)
{
    char host[128];
    snprintf(host, sizeof host, "%s", endpoint);
    char *colon = strrchr(host, ':');
    if (colon == NULL) {
        agent_log("xen: control address '%s' has no port", endpoint);
        return -1;
    }
    *colon = '\0';
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        agent_log("xen: control address '%s' is not IPv4 a.b.c.d:port", endpoint);
        return -1;
    }
    /* The bridge learns the new MAC and sfrun's side may be slow under nested TCG: keep trying
     * for a minute before giving up on this clone. */
    for (int attempt = 0; attempt < 600; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            agent_log("xen: socket() failed: %s", strerror(errno));
            return -1;
        }
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            int one = 1;
            if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
                agent_log("xen: setsockopt(TCP_NODELAY) failed: %s", strerror(errno));
            return fd;
        }
        if (attempt % 50 == 0)
            agent_log("xen: connect(%s) failed: %s; retrying", endpoint, strerror(errno));
        close(fd);
        sleep_ms(100);
    }
    return -1;
}

int xen_open_channel(void)
{
    char control[128], token[128];
    /* The master waits here for ever; only a clone is given a control address. */
    agent_log("xen: waiting for a control address in xenstore");
    /* Tells dom0 the master is warm: this is the state to checkpoint. */
    if (xs_write("waiting", "1") != 0)
        agent_log("xen: writing data/snowflock/waiting failed: %s", strerror(errno));
    while (xs_read("control", control, sizeof control) < 0) {
        if (errno != ENOENT) {
            agent_log("xen: reading xenstore failed: %s", strerror(errno));
            sleep_ms(1000);
        }
        sleep_ms(50);
    }
    if (xs_read("token", token, sizeof token) < 0)
        token[0] = '\0';
    /* Before anything random is drawn (TCP sequence numbers included): a clone must not go on
     * with the master's CRNG state, which every other clone shares. */
    reseed_from_xenstore();
    /* Right after a restore netfront is still reconnecting to its new backend and eth0 is
     * detached (ioctls fail with ENODEV): apply the identity until the device takes it. */
    for (int i = 0; i < 300; i++) {
        early_identity();
        if (eth0_ready())
            break;
        sleep_ms(100);
    }
    int fd = connect_control(control);
    if (fd < 0)
        return -1;
    /* The first frame says who this is: the listener accepts anyone on the bridge, the token is
     * known only to this domain and dom0. */
    channel_init(fd, 0);
    char hello[256];
    snprintf(hello, sizeof hello, "snowflock-agent %d\ntoken=%s\n", AGENT_PROTOCOL_VERSION, token);
    channel_send_text(AGENT_HELLO, 0, hello);
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        agent_log("xen: fcntl(O_NONBLOCK) failed: %s", strerror(errno));
    return fd;
}
