/* The wire protocol between sfrun and a warm master (libsfwarm.so), over one unix stream socket.
 *
 * Every message is a frame: a header of two little-endian u32, the payload length and the type,
 * then the payload. A payload is at most SFWARM_MAX_PAYLOAD bytes; a longer one is a protocol
 * error and ends the connection. Integers are little-endian, strings are length-prefixed (u32)
 * and carry no NUL. Mirrored by Snowflock.Engine/Engines/Process/Internal/WarmProtocol.cs.
 *
 * master -> sfrun
 *   HELLO  u32 version, i32 pid, u32 threads      once, right after connecting
 *   PID    u32 seq, i32 pid (or -errno)            answer to FORK seq
 *   EXIT   i32 pid, i32 status                     a clone ended; raw waitpid() status
 *   STATS  u32 jobs served, u32 live clones        listen mode only, right after HELLO
 * sfrun -> master
 *   FORK   u32 seq, i32 rank, str cwd, u32 count, count x str "NAME=VALUE"
 *          with three fds (stdin, stdout, stderr) as SCM_RIGHTS on the frame's first byte;
 *          or four, the fourth an fd of the job's network namespace, when the environment holds
 *          SFWARM_ISOLATE="ADDRESS/PREFIX HOSTNAME PEER BRIDGE" (--isolate; taken out of the
 *          rank's environment); then one more, the rank's end of its PMI socket pair, when the
 *          environment holds PMI_FD (the clone keeps it open across exec and sets PMI_FD to the
 *          number it arrived at)
 *
 * EOF from sfrun: the master SIGKILLs every clone it made, reaps them, and exits.
 *
 * Listen mode (SFWARM_LISTEN=path, a warm VM's long-lived master): the master creates the socket
 * and serves every connection of its own user (SO_PEERCRED) as one job, several at once. EOF on a
 * job's connection: the master SIGKILLs that job's clones, reaps them, sends their EXIT frames
 * (sfrun shut down only its writing side), closes the connection, and goes on serving.
 */
#ifndef SFWARM_PROTOCOL_H
#define SFWARM_PROTOCOL_H

#define SFWARM_VERSION 1u
#define SFWARM_MAX_PAYLOAD (4u * 1024u * 1024u)
#define SFWARM_MAX_ENV 65536u

enum sfwarm_type {
    SFWARM_HELLO = 1,
    SFWARM_FORK = 2,
    SFWARM_PID = 3,
    SFWARM_EXIT = 4,
    SFWARM_STATS = 5,
};

#endif
