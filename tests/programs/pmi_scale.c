/* A minimal PMI-1 client, no MPI library: what MPI_Init asks of a launcher's PMI, at any scale,
 * without the cost of MPI itself. Each rank talks over PMI_FD (as hydra's proxies and sfrun give
 * it): init, maxes, kvs name, one put of a business-card-sized value, a barrier, gets of the
 * cards of GETS ranks (default: every rank), a second barrier, finalize. Every value read back is
 * checked. Rank 0 prints one line; any error is one line on stderr and exit 1.
 * Usage: pmi_scale [GETS] */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fd = -1, rank = -1;
static char inbuf[8192];
static size_t inlen;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "pmi_scale rank %d: %s%s%s\n", rank, what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static void send_line(const char *line)
{
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t n = write(fd, line + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("write to PMI_FD", strerror(errno));
        }
        off += (size_t)n;
    }
}

/* Reads one reply line (without its newline) into out. */
static void read_line(char *out, size_t cap)
{
    for (;;) {
        char *nl = memchr(inbuf, '\n', inlen);
        if (nl) {
            size_t len = (size_t)(nl - inbuf);
            if (len >= cap)
                fail("reply too long", NULL);
            memcpy(out, inbuf, len);
            out[len] = '\0';
            memmove(inbuf, nl + 1, inlen - len - 1);
            inlen -= len + 1;
            return;
        }
        if (inlen == sizeof inbuf)
            fail("reply without newline", NULL);
        ssize_t n = read(fd, inbuf + inlen, sizeof inbuf - inlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail("PMI_FD closed", n < 0 ? strerror(errno) : NULL);
        inlen += (size_t)n;
    }
}

static void request(const char *line, const char *expect, char *reply, size_t cap)
{
    send_line(line);
    read_line(reply, cap);
    if (strncmp(reply, expect, strlen(expect)) != 0)
        fail("unexpected reply", reply);
}

static int env_int(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        fail("not set", name);
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 0)
        fail("not a number", name);
    return (int)n;
}

/* A business card as big as MPICH's (~150 bytes), different for every rank. */
static void card(int r, char *out, size_t cap)
{
    snprintf(out, cap, "description#h%d$port#%d$ifname#10.250.77.%d$card-padding-to-the-size-of-an-mpich-business-card-%08d",
             r, 40000 + r % 20000, r % 250, r);
}

int main(int argc, char **argv)
{
    fd = env_int("PMI_FD");
    rank = env_int("PMI_RANK");
    int size = env_int("PMI_SIZE");
    int gets = argc > 1 ? atoi(argv[1]) : size;
    if (gets < 0 || gets > size)
        gets = size;
    char reply[2048], line[2048], kvs[300], value[256];

    request("cmd=init pmi_version=1 pmi_subversion=1\n", "cmd=response_to_init", reply, sizeof reply);
    request("cmd=get_maxes\n", "cmd=maxes", reply, sizeof reply);
    request("cmd=get_my_kvsname\n", "cmd=my_kvsname kvsname=", reply, sizeof reply);
    const char *name = reply + strlen("cmd=my_kvsname kvsname=");
    size_t namelen = strcspn(name, " ");
    if (namelen >= sizeof kvs)
        fail("kvs name too long", name);
    memcpy(kvs, name, namelen);
    kvs[namelen] = '\0';

    card(rank, value, sizeof value);
    snprintf(line, sizeof line, "cmd=put kvsname=%s key=card-%d value=%s\n", kvs, rank, value);
    request(line, "cmd=put_result rc=0", reply, sizeof reply);
    request("cmd=barrier_in\n", "cmd=barrier_out", reply, sizeof reply);

    for (int i = 0; i < gets; i++) {
        int r = (rank + i) % size;
        snprintf(line, sizeof line, "cmd=get kvsname=%s key=card-%d\n", kvs, r);
        request(line, "cmd=get_result rc=0", reply, sizeof reply);
        card(r, value, sizeof value);
        const char *got = strstr(reply, "value=");
        if (!got || strcmp(got + 6, value) != 0)
            fail("wrong card", reply);
    }
    request("cmd=barrier_in\n", "cmd=barrier_out", reply, sizeof reply);
    request("cmd=finalize\n", "cmd=finalize_ack", reply, sizeof reply);
    if (rank == 0)
        printf("pmi_scale: %d ranks, %d gets each, every card right\n", size, gets);
    return 0;
}
