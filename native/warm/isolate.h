#ifndef SFWARM_ISOLATE_H
#define SFWARM_ISOLATE_H

#include <signal.h>

/* In a clone that sfrun asked to isolate (--isolate): puts it in its own pid, uts, mount and
 * network namespaces (with its own /proc) and plugs it into the job's bridge, then returns in the
 * process that becomes the rank. With a sixth field "ipc" also its own ipc namespace and /dev/shm:
 * only then does UCX see another machine and use TCP between clones (it tells machines apart by
 * the kernel's boot id and the ipc namespace, so it otherwise shares memory between clones). spec is "ADDRESS/PREFIX HOSTNAME PEER BRIDGE [ipc]" (from SFWARM_ISOLATE); job_netns is an
 * fd of the job's network namespace, where the bridge is. The clone sfrun knows (its pid) stays
 * outside and ends as the rank ends, with the same wait status; the rank is pid 2 of the new pid
 * namespace under a small init (pid 1). Signals sfrun forwards to the clone reach the rank.
 * relayed/saved: the signals to relay and their dispositions to restore in the rank.
 * Exits (127) on failure, with a message on stderr. */
void sfwarm_isolate(const char *spec, int job_netns, const int *relayed, int relayed_count);

#endif
