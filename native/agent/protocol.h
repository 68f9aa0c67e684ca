/* The control channel between sfrun (host side) and the guest agent (native/agent) that runs as
 * PID 1 in every VM clone, for every VM engine (qemu: a virtio-serial port; xen: a TCP
 * connection to the address the agent reads from xenstore). The host side is
 * Snowflock.Engine/Guest/AgentFrame.cs; both must change together (AGENT_PROTOCOL_VERSION).
 *
 * The channel is a byte stream of frames. A frame is an 8-byte header, little-endian:
 *     u8 type | u8 reserved (0) | u16 channel | u32 length
 * followed by `length` bytes of payload (at most AGENT_MAX_PAYLOAD). `channel` names a rank slot
 * (frames about one rank) or a PMI relay stream; it is 0 where neither applies.
 *
 * Why a relay for PMI: ranks in a clone reach sfrun's PMI server without any network between
 * guest and host. The agent listens on the guest's 127.0.0.1 at the port named in the rank's
 * PMI_PORT, and each connection a rank makes becomes one stream that the host side joins to the
 * real server; the PMI bytes pass through unchanged.
 */
#ifndef SNOWFLOCK_AGENT_PROTOCOL_H
#define SNOWFLOCK_AGENT_PROTOCOL_H

#include <stdint.h>

#define AGENT_PROTOCOL_VERSION 1
#define AGENT_HEADER_SIZE 8
#define AGENT_MAX_PAYLOAD 65536u
/* The virtio-serial port name the qemu engine gives the control channel. */
#define AGENT_PORT_NAME "org.snowflock.ctl"

enum agent_frame_type {
    /* host -> guest */
    AGENT_PING = 0x01,     /* payload empty; the agent answers HELLO (template boot handshake) */
    AGENT_IDENTITY = 0x02, /* payload "key=value\n" lines: clone, hostname, ip (a.b.c.d/len),
                              mac, gateway, hosts (name=ip,...); answered by IDENTITY_ACK */
    AGENT_ENTROPY = 0x03,  /* payload: random bytes mixed into the guest kernel's pool, then the
                              CRNG is reseeded: clones must not share the template's RNG state */
    AGENT_START = 0x04,    /* channel = rank slot; payload: NUL-terminated strings, the first
                              the executable, the second the working directory, then each
                              argument as "A<arg>" and each environment entry as "E<NAME=VALUE>";
                              answered by STARTED or ERROR */
    AGENT_STDIN = 0x05,    /* channel = rank slot; data for the rank's stdin; length 0 = EOF */
    AGENT_SIGNAL = 0x06,   /* channel = rank slot; payload: u32 signal number */
    AGENT_QUIT = 0x07,     /* kill every rank and power the guest off */
    /* host -> host agent only (`sfrun agent` on another host of a multi-host job; this C agent
       never sees them): */
    AGENT_JOB = 0x08,       /* payload "key=value\n" lines: the host's share of the job; answered
                               by IDENTITY_ACK ("ready") or ERROR on channel 0 */
    AGENT_CHALLENGE = 0x09, /* payload: 32 random bytes; the agent's HELLO carries
                               HMAC-SHA256(job secret, these bytes), never the secret itself */

    /* both ways */
    AGENT_PMI_DATA = 0x10,  /* channel = relay stream; bytes; length 0 = that side closed. For a
                               host agent's rank started with a PMI socket, the stream is the
                               rank's slot + 1, joined on both sides at START (no PMI_OPEN). */

    /* guest -> host */
    AGENT_HELLO = 0x81,        /* payload "snowflock-agent <version>\n" */
    AGENT_IDENTITY_ACK = 0x82, /* payload: the identity as the guest applied it */
    AGENT_STARTED = 0x83,      /* channel = rank slot; payload: u32 pid in the guest */
    AGENT_STDOUT = 0x84,       /* channel = rank slot; data; length 0 = EOF */
    AGENT_STDERR = 0x85,       /* channel = rank slot; data; length 0 = EOF */
    AGENT_EXIT = 0x86,         /* channel = rank slot; payload: u32 exit code, u32 signal (0 = none) */
    AGENT_PMI_OPEN = 0x87,     /* channel = new relay stream; payload: u32 PMI port the rank dialled */
    AGENT_ERROR = 0x88,        /* channel = rank slot (or 0); payload: a one-line message */
};

#endif
