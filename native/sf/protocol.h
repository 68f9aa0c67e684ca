/* The line protocol between libsf.so and the sfrun job's clone agent, over the unix stream socket
 * named by SF_AGENT (in a 0700 per-job directory). Mirrored by
 * Snowflock.Launcher/Internal/CloneAgent/CloneWire.cs.
 *
 * ASCII lines ending in '\n', at most SF_MAX_LINE bytes with the newline. One reply per request,
 * in order. The process that connects owns the tickets it is granted; when its connection
 * closes, the agent kills the clones of its tickets that are still recorded and releases them.
 *
 * library -> agent
 *   hello version=1                     first line of a connection
 *   ticket n=N                          ask for N clones
 *   cloned ticket=T pids=P1,P2,...      the clones of T were forked (they wait until the reply)
 *   done ticket=T                       T's clones are reaped (join or kill): release T
 * agent -> library
 *   ok [limit=L] [ticket=T]
 *   error ERRNAME text...               ERRNAME is an errno name (EINVAL, E2BIG, EAGAIN, EPERM, EPROTO)
 */
#ifndef SF_PROTOCOL_H
#define SF_PROTOCOL_H

#define SF_PROTOCOL_VERSION 1
#define SF_MAX_LINE 65536

#endif
