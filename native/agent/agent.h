/* Shared declarations of the guest agent's parts: one file per concern (channel framing, system
 * start-up, identity, ranks, PMI relay), one event loop in main.c. Single-threaded: every part
 * exposes the fds it wants polled and a handler for them. */
#ifndef SNOWFLOCK_AGENT_H
#define SNOWFLOCK_AGENT_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol.h"

#define AGENT_MAX_RANKS 256
#define AGENT_MAX_STREAMS 512
#define AGENT_MAX_POLL (8 + 3 * AGENT_MAX_RANKS + AGENT_MAX_STREAMS + 16)

/* Logs one line to the console (the VM's serial log), prefixed with the agent's name. */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* channel.c: the framed control channel to sfrun. */
struct frame {
    uint8_t type;
    uint16_t channel;
    uint32_t length;
    const uint8_t *payload;
};
void channel_init(int fd, int reconnects);
int channel_fd(void);
/* Reads what is available; calls on_frame for each whole frame. Returns -1 when the peer is
 * gone for good (TCP), 0 otherwise (a virtio port that nobody holds reads EOF: the caller waits
 * and tries again). */
int channel_read(void (*on_frame)(const struct frame *));
int channel_disconnected(void);
void channel_send(uint8_t type, uint16_t channel, const void *payload, uint32_t length);
void channel_send_u32(uint8_t type, uint16_t channel, uint32_t value);
void channel_send_u32x2(uint8_t type, uint16_t channel, uint32_t a, uint32_t b);
void channel_send_text(uint8_t type, uint16_t channel, const char *text);

/* sysinit.c: what PID 1 must do before anything else. */
void sysinit_mounts(void);
void sysinit_modules(const char *list_path);
void sysinit_loopback(void);
int sysinit_open_port(const char *name, int timeout_ms);
void sysinit_add_entropy(const uint8_t *bytes, uint32_t length);
void sysinit_power_off(void) __attribute__((noreturn));

/* identity.c: hostname, addresses and /etc/hosts from an IDENTITY frame. */
void identity_apply(const uint8_t *payload, uint32_t length);
/* Brings the network device up at boot, so clones inherit a running link. */
void identity_net_up(void);

/* ranks.c: rank processes and their standard streams. */
void ranks_start(uint16_t slot, const uint8_t *payload, uint32_t length);
void ranks_stdin(uint16_t slot, const uint8_t *data, uint32_t length);
void ranks_signal(uint16_t slot, int signo);
/* everything: as PID 1, every process of the guest; else only the ranks' sessions. */
void ranks_kill_all(int everything);
void ranks_reap(void);
int ranks_poll_fds(struct pollfd *fds, int max);
void ranks_on_poll(const struct pollfd *fds, int count);

/* relay.c: the PMI relay (guest loopback listener <-> frames). */
/* Rewrites "PMI_PORT=host:port" to the guest's loopback and makes sure a listener exists.
 * Returns 0, or -1 with errno set. */
int relay_listen_for(char *pmi_port_entry, size_t capacity);
void relay_data_from_host(uint16_t stream, const uint8_t *data, uint32_t length);
int relay_poll_fds(struct pollfd *fds, int max);
void relay_on_poll(const struct pollfd *fds, int count);

/* xen.c: the control channel of a Xen clone (identity from xenstore, TCP to sfrun). */
int xen_detected(void);
int xen_open_channel(void);

#endif
