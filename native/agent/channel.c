/* The framed control channel (protocol.h). Reads accumulate in one buffer and are cut into
 * frames; writes are whole frames, retried until written, so frames from different parts of the
 * agent never interleave. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

static int channel = -1;
static int channel_reconnects;
static int disconnected;
static uint8_t inbuf[2 * (AGENT_HEADER_SIZE + AGENT_MAX_PAYLOAD)];
static size_t inlen;

void channel_init(int fd, int reconnects)
{
    channel = fd;
    channel_reconnects = reconnects;
}

int channel_fd(void) { return channel; }

int channel_disconnected(void) { return disconnected; }

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

int channel_read(void (*on_frame)(const struct frame *))
{
    ssize_t n = read(channel, inbuf + inlen, sizeof inbuf - inlen);
    if (n == 0) {
        /* A virtio port reads EOF while no host holds its socket (before the host connects, or
         * in the template between snapshot and quit): not an end, just nobody there yet. */
        disconnected = 1;
        return channel_reconnects ? 0 : -1;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        agent_log("read(control channel) failed: %s", strerror(errno));
        disconnected = 1;
        return channel_reconnects ? 0 : -1;
    }
    disconnected = 0;
    inlen += (size_t)n;
    size_t at = 0;
    while (inlen - at >= AGENT_HEADER_SIZE) {
        const uint8_t *h = inbuf + at;
        uint32_t length = le32(h + 4);
        if (length > AGENT_MAX_PAYLOAD) {
            /* The stream can no longer be trusted to be in step: drop what we have. */
            agent_log("control channel: frame of %u bytes exceeds the limit; resynchronising", length);
            inlen = 0;
            return 0;
        }
        if (inlen - at < AGENT_HEADER_SIZE + length)
            break;
        struct frame f = {
            .type = h[0],
            .channel = (uint16_t)(h[2] | h[3] << 8),
            .length = length,
            .payload = h + AGENT_HEADER_SIZE,
        };
        on_frame(&f);
        at += AGENT_HEADER_SIZE + length;
    }
    memmove(inbuf, inbuf + at, inlen - at);
    inlen -= at;
    return 0;
}

static void write_all(const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(channel, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pfd = {.fd = channel, .events = POLLOUT};
                if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
                    agent_log("poll(control channel) failed: %s", strerror(errno));
                continue;
            }
            /* Host gone: what it would have read is lost, as a terminal's output would be. */
            agent_log("write(control channel) failed: %s", strerror(errno));
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

void channel_send(uint8_t type, uint16_t ch, const void *payload, uint32_t length)
{
    static uint8_t out[AGENT_HEADER_SIZE + AGENT_MAX_PAYLOAD];
    if (length > AGENT_MAX_PAYLOAD)
        length = AGENT_MAX_PAYLOAD;
    out[0] = type;
    out[1] = 0;
    out[2] = (uint8_t)(ch & 0xff);
    out[3] = (uint8_t)(ch >> 8);
    out[4] = (uint8_t)(length & 0xff);
    out[5] = (uint8_t)(length >> 8 & 0xff);
    out[6] = (uint8_t)(length >> 16 & 0xff);
    out[7] = (uint8_t)(length >> 24);
    if (length > 0)
        memcpy(out + AGENT_HEADER_SIZE, payload, length);
    write_all(out, AGENT_HEADER_SIZE + length);
}

void channel_send_u32(uint8_t type, uint16_t ch, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    channel_send(type, ch, b, 4);
}

void channel_send_u32x2(uint8_t type, uint16_t ch, uint32_t a, uint32_t v)
{
    uint8_t b[8] = {(uint8_t)a, (uint8_t)(a >> 8), (uint8_t)(a >> 16), (uint8_t)(a >> 24),
                    (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    channel_send(type, ch, b, 8);
}

void channel_send_text(uint8_t type, uint16_t ch, const char *text)
{
    channel_send(type, ch, text, (uint32_t)strlen(text));
}
