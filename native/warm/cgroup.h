/* A job's processes live in a cgroup of their own, so that teardown can kill all of them at once
 * (cgroup.kill), even those a fork chain has moved out of every process group and parent. sfrun
 * names the cgroup in SFWARM_CGROUP; the process that becomes a rank or a warm master joins it
 * before it runs the program, so the program's first fork is already inside. */
#ifndef SFWARM_CGROUP_H
#define SFWARM_CGROUP_H

/* Moves the calling process into the cgroup directory `dir` (writes 0 to its cgroup.procs).
 * Returns 0, or -1 with a message naming the call. */
int sfwarm_join_cgroup(const char *dir);

/* Joins the cgroup named by SFWARM_CGROUP, if set, and removes the variable (the program's own
 * children are inside already). Returns 0 on success or when unset, -1 (with a message) on failure. */
int sfwarm_join_job_cgroup(void);

#endif
