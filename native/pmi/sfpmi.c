/*
 * libsfpmi: the PMI-1 C API over sfrun's PMI-1 wire protocol (the same text lines MPICH's simple
 * PMI client sends). Open MPI 4.1 ranks load it through their `flux` pmix component, which
 * dlopens $FLUX_PMI_LIBRARY_PATH when FLUX_JOB_ID is set.
 *
 * The server is found through PMI_PORT=host:port + PMI_ID=rank (handshake `cmd=initack`), or an
 * inherited PMI_FD + PMI_RANK + PMI_SIZE. One request, one reply line, under one lock.
 *
 * Values: sfrun's server trims trailing blanks from `value=`, but Open MPI pads its base64 with
 * spaces. A value that ends in a blank or in '~' is therefore sent with one '~' appended, and one
 * trailing '~' is removed from every value read back; a round trip is exact.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "pmi.h"

#define LINE_MAX_BYTES 4096
#define VALUE_MARK '~'

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int initialized;
static int fd = -1;
static int my_rank, my_size = 1, my_appnum, universe_size = -1;
static int kvsname_max = 256, keylen_max = 64, vallen_max = 1024;
static char kvsname[257];
static char inbuf[LINE_MAX_BYTES + 1];
static size_t inlen;
static int *clique;
static int clique_size;

static void complain(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "libsfpmi (rank %d): %s\n", my_rank, msg);
}

/* send() with MSG_NOSIGNAL, so that a vanished sfrun is an error return and not a SIGPIPE that
 * would hide the real cause; write() for an inherited PMI_FD that is not a socket. */
static int write_all(const char *buf, size_t len)
{
    static int not_socket;
    while (len > 0) {
        ssize_t n = not_socket ? write(fd, buf, len) : send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOTSOCK && !not_socket) {
                not_socket = 1;
                continue;
            }
            complain("%s(PMI socket): %s", not_socket ? "write" : "send", strerror(errno));
            return PMI_FAIL;
        }
        buf += n;
        len -= (size_t)n;
    }
    return PMI_SUCCESS;
}

/* Reads one line (without its newline) into out. */
static int read_line(char *out, size_t cap)
{
    for (;;) {
        char *nl = memchr(inbuf, '\n', inlen);
        if (nl) {
            size_t len = (size_t)(nl - inbuf);
            if (len >= cap) {
                complain("PMI reply of %zu bytes exceeds %zu", len, cap - 1);
                return PMI_FAIL;
            }
            memcpy(out, inbuf, len);
            out[len] = '\0';
            inlen -= len + 1;
            memmove(inbuf, nl + 1, inlen);
            return PMI_SUCCESS;
        }
        if (inlen >= LINE_MAX_BYTES) {
            complain("PMI reply longer than %d bytes", LINE_MAX_BYTES);
            return PMI_FAIL;
        }
        ssize_t n = read(fd, inbuf + inlen, LINE_MAX_BYTES - inlen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            complain("read(PMI socket): %s", strerror(errno));
            return PMI_FAIL;
        }
        if (n == 0) {
            complain("read(PMI socket): sfrun closed the connection");
            return PMI_FAIL;
        }
        inlen += (size_t)n;
    }
}

/* Finds `key=` in a reply line and copies its value (to the next blank; `value` to the end). */
static int field(const char *line, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *p = line; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *eq = strchr(p, '=');
        if (!eq)
            break;
        const char *end = strcmp(key, "value") == 0 && (size_t)(eq - p) == klen && strncmp(p, key, klen) == 0
            ? p + strlen(p) : p + strcspn(p, " \t");
        if ((size_t)(eq - p) == klen && strncmp(p, key, klen) == 0 && eq < end) {
            size_t len = (size_t)(end - eq - 1);
            if (len >= cap)
                return PMI_ERR_NOMEM;
            memcpy(out, eq + 1, len);
            out[len] = '\0';
            return PMI_SUCCESS;
        }
        p = end;
    }
    return PMI_FAIL;
}

static int field_int(const char *line, const char *key, int *out)
{
    char buf[32], *end;
    if (field(line, key, buf, sizeof buf) != PMI_SUCCESS)
        return PMI_FAIL;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || *end || end == buf || v < INT_MIN || v > INT_MAX)
        return PMI_FAIL;
    *out = (int)v;
    return PMI_SUCCESS;
}

/* Reads one reply and checks that it is `cmd=<expect>`. */
static int expect(const char *expect_cmd, char *line, size_t cap)
{
    char cmd[64];
    int rc = read_line(line, cap);
    if (rc != PMI_SUCCESS)
        return rc;
    if (field(line, "cmd", cmd, sizeof cmd) != PMI_SUCCESS || strcmp(cmd, expect_cmd) != 0) {
        complain("expected cmd=%s from sfrun, got \"%.80s\"", expect_cmd, line);
        return PMI_FAIL;
    }
    return PMI_SUCCESS;
}

/* Sends one request line and reads the reply named `reply` into line. Caller holds the lock. */
static int call(const char *request, const char *reply, char *line, size_t cap)
{
    if (fd < 0)
        return PMI_ERR_INIT;
    int rc = write_all(request, strlen(request));
    if (rc != PMI_SUCCESS || !reply)
        return rc;
    return expect(reply, line, cap);
}

static int rc_of(const char *line)
{
    int rc;
    return field_int(line, "rc", &rc) == PMI_SUCCESS && rc == 0 ? PMI_SUCCESS : PMI_FAIL;
}

static int connect_port(const char *port_env)
{
    char host[256];
    const char *colon = strrchr(port_env, ':');
    if (!colon || colon == port_env || (size_t)(colon - port_env) >= sizeof host) {
        complain("PMI_PORT=%s is not host:port", port_env);
        return -1;
    }
    const char *h = port_env;
    size_t hlen = (size_t)(colon - port_env);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
    int gai = getaddrinfo(host, colon + 1, &hints, &res);
    if (gai != 0) {
        complain("getaddrinfo(%s): %s", port_env, gai_strerror(gai));
        return -1;
    }
    int s = -1, err = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        s = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (s < 0) {
            err = errno;
            continue;
        }
        int c;
        while ((c = connect(s, a->ai_addr, a->ai_addrlen)) < 0 && errno == EINTR)
            ;
        if (c == 0)
            break;
        err = errno;
        if (close(s) < 0)
            complain("close(socket): %s", strerror(errno));
        s = -1;
    }
    freeaddrinfo(res);
    if (s < 0)
        complain("connect(%s): %s", port_env, strerror(err));
    return s;
}

static int env_int(const char *name, int *out)
{
    const char *s = getenv(name);
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > INT_MAX)
        return -1;
    *out = (int)v;
    return 0;
}

/* The PMI-1 handshake over PMI_PORT: initack, then size, rank and debug. */
static int handshake(int id)
{
    char line[LINE_MAX_BYTES], req[64];
    snprintf(req, sizeof req, "cmd=initack pmiid=%d\n", id);
    int rc = call(req, "initack", line, sizeof line);
    if (rc != PMI_SUCCESS)
        return rc;
    for (int i = 0; i < 3; i++) {
        if ((rc = expect("set", line, sizeof line)) != PMI_SUCCESS)
            return rc;
        field_int(line, "size", &my_size);
        field_int(line, "rank", &my_rank);
    }
    return PMI_SUCCESS;
}

static int start(void)
{
    char line[LINE_MAX_BYTES];
    const char *port = getenv("PMI_PORT");
    int id, rc;
    if (port && *port) {
        if (env_int("PMI_ID", &id) < 0) {
            complain("PMI_PORT is set but PMI_ID is missing or not a rank number");
            return PMI_ERR_INIT;
        }
        my_rank = id;
        if ((fd = connect_port(port)) < 0)
            return PMI_FAIL;
        if ((rc = handshake(id)) != PMI_SUCCESS)
            return rc;
    } else if (env_int("PMI_FD", &fd) == 0) {
        if (env_int("PMI_RANK", &my_rank) < 0 || env_int("PMI_SIZE", &my_size) < 0) {
            complain("PMI_FD is set but PMI_RANK or PMI_SIZE is missing");
            return PMI_ERR_INIT;
        }
    } else {
        fd = -1;
        complain("neither PMI_PORT nor PMI_FD is set: this program was not started by sfrun");
        return PMI_ERR_INIT;
    }

    if ((rc = call("cmd=init pmi_version=1 pmi_subversion=1\n", "response_to_init", line, sizeof line)) != PMI_SUCCESS)
        return rc;
    if (rc_of(line) != PMI_SUCCESS) {
        complain("sfrun refused PMI init: %.200s", line);
        return PMI_FAIL;
    }
    if ((rc = call("cmd=get_maxes\n", "maxes", line, sizeof line)) != PMI_SUCCESS)
        return rc;
    field_int(line, "kvsname_max", &kvsname_max);
    field_int(line, "keylen_max", &keylen_max);
    field_int(line, "vallen_max", &vallen_max);
    if (kvsname_max > (int)sizeof kvsname - 1)
        kvsname_max = (int)sizeof kvsname - 1;
    if (vallen_max > LINE_MAX_BYTES / 2)
        vallen_max = LINE_MAX_BYTES / 2;
    if (vallen_max < 8 || keylen_max < 8) {
        complain("sfrun's PMI limits are too small: \"%.80s\"", line);
        return PMI_FAIL;
    }
    if ((rc = call("cmd=get_my_kvsname\n", "my_kvsname", line, sizeof line)) != PMI_SUCCESS)
        return rc;
    if (field(line, "kvsname", kvsname, sizeof kvsname) != PMI_SUCCESS) {
        complain("no kvsname in \"%.80s\"", line);
        return PMI_FAIL;
    }
    if ((rc = call("cmd=get_appnum\n", "appnum", line, sizeof line)) != PMI_SUCCESS)
        return rc;
    field_int(line, "appnum", &my_appnum);
    return PMI_SUCCESS;
}

static void drop_connection(void)
{
    if (fd >= 0 && close(fd) < 0)
        complain("close(PMI socket): %s", strerror(errno));
    fd = -1;
    inlen = 0;
}

int PMI_Init(int *spawned)
{
    if (!spawned)
        return PMI_ERR_INVALID_ARG;
    pthread_mutex_lock(&lock);
    int rc = initialized ? PMI_SUCCESS : start();
    if (rc == PMI_SUCCESS)
        initialized = 1;
    else
        drop_connection();
    pthread_mutex_unlock(&lock);
    *spawned = 0;
    return rc;
}

int PMI_Initialized(int *out)
{
    if (!out)
        return PMI_ERR_INVALID_ARG;
    *out = initialized;
    return PMI_SUCCESS;
}

int PMI_Finalize(void)
{
    char line[LINE_MAX_BYTES];
    pthread_mutex_lock(&lock);
    int rc = initialized ? call("cmd=finalize\n", "finalize_ack", line, sizeof line) : PMI_SUCCESS;
    drop_connection();
    initialized = 0;
    free(clique);
    clique = NULL;
    clique_size = 0;
    pthread_mutex_unlock(&lock);
    return rc;
}

#define NEED_INIT(p) do { if (!initialized) return PMI_ERR_INIT; if (!(p)) return PMI_ERR_INVALID_ARG; } while (0)

int PMI_Get_size(int *size)
{
    NEED_INIT(size);
    *size = my_size;
    return PMI_SUCCESS;
}

int PMI_Get_rank(int *rank)
{
    NEED_INIT(rank);
    *rank = my_rank;
    return PMI_SUCCESS;
}

int PMI_Get_appnum(int *appnum)
{
    NEED_INIT(appnum);
    *appnum = my_appnum;
    return PMI_SUCCESS;
}

int PMI_Get_universe_size(int *size)
{
    char line[LINE_MAX_BYTES];
    NEED_INIT(size);
    pthread_mutex_lock(&lock);
    int rc = PMI_SUCCESS;
    if (universe_size < 0) {
        rc = call("cmd=get_universe_size\n", "universe_size", line, sizeof line);
        if (rc == PMI_SUCCESS && field_int(line, "size", &universe_size) != PMI_SUCCESS)
            rc = PMI_FAIL;
    }
    pthread_mutex_unlock(&lock);
    if (rc == PMI_SUCCESS)
        *size = universe_size;
    return rc;
}

int PMI_Barrier(void)
{
    char line[LINE_MAX_BYTES];
    if (!initialized)
        return PMI_ERR_INIT;
    pthread_mutex_lock(&lock);
    int rc = call("cmd=barrier_in\n", "barrier_out", line, sizeof line);
    pthread_mutex_unlock(&lock);
    return rc;
}

int PMI_Abort(int exit_code, const char error_msg[])
{
    char req[LINE_MAX_BYTES], msg[1024];
    size_t j = 0;
    /* Open MPI passes "N/A" when it has no message: that is no message. */
    if (error_msg && strcmp(error_msg, "N/A") == 0)
        error_msg = NULL;
    /* The message goes to the end of the line: keep it one line of printable text. */
    for (const char *p = error_msg ? error_msg : ""; *p && j < sizeof msg - 1; p++)
        msg[j++] = (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p;
    msg[j] = '\0';
    if (fd >= 0) {
        /* No lock: another thread may be blocked in a barrier, and the abort must still go out. */
        snprintf(req, sizeof req, j ? "cmd=abort exitcode=%d message=%s\n" : "cmd=abort exitcode=%d\n", exit_code, msg);
        if (write_all(req, strlen(req)) == PMI_SUCCESS) {
            /* sfrun ends the whole job; wait for it so that this rank's exit is not taken for a crash. */
            char c;
            ssize_t n;
            while ((n = read(fd, &c, 1)) > 0 || (n < 0 && errno == EINTR))
                ;
        }
    } else if (j) {
        fprintf(stderr, "%s\n", msg);
    }
    _exit(exit_code);
}

int PMI_KVS_Get_my_name(char kvsname_out[], int length)
{
    NEED_INIT(kvsname_out);
    if (length <= (int)strlen(kvsname))
        return PMI_ERR_INVALID_LENGTH;
    strcpy(kvsname_out, kvsname);
    return PMI_SUCCESS;
}

int PMI_KVS_Get_name_length_max(int *length)
{
    NEED_INIT(length);
    *length = kvsname_max + 1;
    return PMI_SUCCESS;
}

int PMI_KVS_Get_key_length_max(int *length)
{
    NEED_INIT(length);
    *length = keylen_max;
    return PMI_SUCCESS;
}

/* A buffer size, NUL included (PMI-1 convention): one less than the server's limit, leaving room
 * for the mark that protects trailing blanks. */
int PMI_KVS_Get_value_length_max(int *length)
{
    NEED_INIT(length);
    *length = vallen_max - 1;
    return PMI_SUCCESS;
}

static int valid_token(const char *s, int max)
{
    size_t len = strlen(s);
    if (len == 0 || len > (size_t)max)
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '=' || *p == 0x7f)
            return 0;
    return 1;
}

int PMI_KVS_Put(const char kvs[], const char key[], const char value[])
{
    char req[LINE_MAX_BYTES], line[LINE_MAX_BYTES];
    if (!initialized)
        return PMI_ERR_INIT;
    if (!kvs || !key || !value)
        return PMI_ERR_INVALID_ARG;
    if (!valid_token(key, keylen_max))
        return PMI_ERR_INVALID_KEY;
    /* As in MPICH, the reported maximum is a buffer size: it holds the value and its NUL. */
    size_t vlen = strlen(value);
    if (vlen > (size_t)vallen_max - 2)
        return PMI_ERR_INVALID_VAL_LENGTH;
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return PMI_ERR_INVALID_VAL;
    char last = vlen ? value[vlen - 1] : '\0';
    int mark = last == ' ' || last == '\t' || last == VALUE_MARK;
    int n = snprintf(req, sizeof req, "cmd=put kvsname=%s key=%s value=%s%s\n", kvs, key, value, mark ? "~" : "");
    if (n < 0 || (size_t)n >= sizeof req)
        return PMI_ERR_INVALID_LENGTH;
    pthread_mutex_lock(&lock);
    int rc = call(req, "put_result", line, sizeof line);
    pthread_mutex_unlock(&lock);
    if (rc == PMI_SUCCESS && rc_of(line) != PMI_SUCCESS) {
        complain("sfrun refused put of %s: %.200s", key, line);
        rc = PMI_FAIL;
    }
    return rc;
}

int PMI_KVS_Commit(const char kvs[])
{
    if (!initialized)
        return PMI_ERR_INIT;
    return kvs ? PMI_SUCCESS : PMI_ERR_INVALID_ARG;
}

/* Gets a value as stored, the protecting mark still on; caller holds the lock. */
static int get_raw(const char *kvs, const char *key, char *value, size_t cap)
{
    char req[LINE_MAX_BYTES], line[LINE_MAX_BYTES];
    int n = snprintf(req, sizeof req, "cmd=get kvsname=%s key=%s\n", kvs, key);
    if (n < 0 || (size_t)n >= sizeof req)
        return PMI_ERR_INVALID_LENGTH;
    int rc = call(req, "get_result", line, sizeof line);
    if (rc != PMI_SUCCESS)
        return rc;
    if (rc_of(line) != PMI_SUCCESS)
        return PMI_FAIL; /* not found: callers probe for keys, so stay quiet */
    rc = field(line, "value", value, cap);
    if (rc == PMI_FAIL)
        value[0] = '\0';
    return rc == PMI_FAIL ? PMI_SUCCESS : rc;
}

int PMI_KVS_Get(const char kvs[], const char key[], char value[], int length)
{
    if (!initialized)
        return PMI_ERR_INIT;
    if (!kvs || !key || !value)
        return PMI_ERR_INVALID_ARG;
    if (length <= 0)
        return PMI_ERR_INVALID_LENGTH;
    if (!valid_token(key, keylen_max))
        return PMI_ERR_INVALID_KEY;
    char raw[LINE_MAX_BYTES];
    pthread_mutex_lock(&lock);
    int rc = get_raw(kvs, key, raw, sizeof raw);
    pthread_mutex_unlock(&lock);
    if (rc != PMI_SUCCESS)
        return rc;
    size_t len = strlen(raw);
    if (len && raw[len - 1] == VALUE_MARK)
        raw[--len] = '\0';
    if (len >= (size_t)length)
        return PMI_ERR_INVALID_LENGTH;
    memcpy(value, raw, len + 1);
    return PMI_SUCCESS;
}

/*
 * Clique: the ranks on this rank's node, from PMI_process_mapping
 * `(vector,(start_node,node_count,ranks_per_node),...)`; ranks fill the blocks in order.
 * Without a usable mapping, MPI_LOCALNRANKS/MPI_LOCALRANKID describe a contiguous run.
 */
static int node_of(const char *mapping, int rank, int *node)
{
    const char *p = mapping;
    if (strncmp(p, "(vector", 7) != 0)
        return -1;
    p += 7;
    int r = 0;
    while (*p == ',') {
        int start, count, per, used;
        if (sscanf(p, ",(%d,%d,%d)%n", &start, &count, &per, &used) != 3 || start < 0 || count <= 0 || per <= 0)
            return -1;
        p += used;
        if ((long)rank < (long)r + (long)count * per) {
            *node = start + (rank - r) / per;
            return 0;
        }
        r += count * per;
    }
    return -1;
}

static int compute_clique(void)
{
    char mapping[LINE_MAX_BYTES];
    int me;
    if (clique)
        return PMI_SUCCESS;
    int rc = get_raw(kvsname, "PMI_process_mapping", mapping, sizeof mapping);
    if (rc == PMI_SUCCESS && node_of(mapping, my_rank, &me) == 0) {
        int n = 0, node;
        for (int r = 0; r < my_size; r++)
            if (node_of(mapping, r, &node) == 0 && node == me)
                n++;
        if (!(clique = malloc(sizeof(int) * (size_t)n))) {
            complain("malloc(clique of %d): %s", n, strerror(errno));
            return PMI_ERR_NOMEM;
        }
        for (int r = 0; r < my_size; r++)
            if (node_of(mapping, r, &node) == 0 && node == me)
                clique[clique_size++] = r;
        return PMI_SUCCESS;
    }
    int lsize, lrank;
    if (env_int("MPI_LOCALNRANKS", &lsize) < 0 || env_int("MPI_LOCALRANKID", &lrank) < 0 || lrank >= lsize || lrank > my_rank)
        lsize = 1, lrank = 0;
    if (!(clique = malloc(sizeof(int) * (size_t)lsize))) {
        complain("malloc(clique of %d): %s", lsize, strerror(errno));
        return PMI_ERR_NOMEM;
    }
    for (int i = 0; i < lsize; i++)
        clique[i] = my_rank - lrank + i;
    clique_size = lsize;
    return PMI_SUCCESS;
}

int PMI_Get_clique_size(int *size)
{
    NEED_INIT(size);
    pthread_mutex_lock(&lock);
    int rc = compute_clique();
    pthread_mutex_unlock(&lock);
    if (rc == PMI_SUCCESS)
        *size = clique_size;
    return rc;
}

int PMI_Get_clique_ranks(int ranks[], int length)
{
    NEED_INIT(ranks);
    pthread_mutex_lock(&lock);
    int rc = compute_clique();
    if (rc == PMI_SUCCESS && length < clique_size)
        rc = PMI_ERR_INVALID_LENGTH;
    if (rc == PMI_SUCCESS)
        memcpy(ranks, clique, sizeof(int) * (size_t)clique_size);
    pthread_mutex_unlock(&lock);
    return rc;
}

int PMI_Get_id(char id_str[], int length)
{
    return PMI_KVS_Get_my_name(id_str, length);
}

int PMI_Get_kvs_domain_id(char id_str[], int length)
{
    return PMI_KVS_Get_my_name(id_str, length);
}

int PMI_Get_id_length_max(int *length)
{
    return PMI_KVS_Get_name_length_max(length);
}
