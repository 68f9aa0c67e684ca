/* sf.h: the SnowFlock clone API for programs that clone themselves after loading their data.
 *
 *     int t = sf_request_ticket(8);        // permission for 8 clones, or -1
 *     int id = sf_clone(t);                // 0 in the parent, 1..8 in each clone
 *     if (id > 0) { work(id); sf_exit(0); }
 *     int status[8];
 *     sf_join(t, status);                  // waits for the 8 clones, fills their wait statuses
 *
 * Clones are fork()s: each shares the parent's memory copy-on-write, inherits its open files,
 * and continues from sf_clone with a fresh seed for libc's rand()/random()/drand48() families
 * (unless SF_KEEP_SEEDS=1). Under sfrun the tickets come from the job's agent (the socket named by
 * SF_AGENT), which bounds how many clones the job may have alive at once and kills every clone at
 * the end of the job; outside sfrun the library grants tickets itself (bound: SF_MAX_CLONES,
 * default 256 per process). See native/sf/README.md.
 *
 * Every call returns -1 on error with errno set and a one-line explanation in sf_error().
 * Link with -lsf. */
#ifndef SF_H
#define SF_H

#ifdef __cplusplus
extern "C" {
#endif

/* Asks for permission to make n clones. Returns a ticket id (> 0), or -1:
 *   EINVAL  n < 1;  E2BIG  n exceeds the job's (or process's) limit;
 *   EAGAIN  other tickets hold too much of the limit now (join or kill them first);
 *   ECONNREFUSED etc.  SF_AGENT is set but the agent cannot be reached. */
int sf_request_ticket(int n);

/* Makes the ticket's n clones. Returns 0 in the parent, the clone id 1..n in each clone, or -1
 * (EINVAL unknown ticket, EALREADY ticket already used, EBUSY the process has more than one thread,
 * EAGAIN fork failed: no clone is left running then). Each clone dies with its parent. */
int sf_clone(int ticket);

/* Waits for every clone of the ticket and releases it. If statuses is not NULL it receives the n
 * raw wait statuses in clone-id order (use WIFEXITED/WEXITSTATUS/WIFSIGNALED/WTERMSIG).
 * Returns 0, or -1 (ECHILD ticket already joined or killed, EINVAL unknown or not yet cloned,
 * EPERM called in a clone for its parent's ticket). */
int sf_join(int ticket, int *statuses);

/* Ends the calling clone with status (what sf_join reports): flushes stdio, then _exit, so the
 * parent's atexit handlers do not run in the clone. Returns -1 (EPERM) only when called outside
 * a clone. */
int sf_exit(int status);

/* Kills the ticket's clones (SIGKILL), reaps them and releases the ticket; also releases a ticket
 * that was never used. Returns 0, or -1 as sf_join. */
int sf_kill(int ticket);

/* 0 in a parent (or any process that is not a clone), else this clone's id. */
int sf_clone_id(void);

/* The last error of the calling thread, as one line ("" if none). */
const char *sf_error(void);

#ifdef __cplusplus
}
#endif

#endif
