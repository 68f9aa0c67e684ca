/* The rank's limit on open files: sfrun raises its own soft RLIMIT_NOFILE to the hard limit and
 * passes the limit it was started with in SFWARM_NOFILE; the process that becomes a rank (or its
 * warm master) puts that back before the program runs, and removes the variable. */
#ifndef SFWARM_NOFILE_H
#define SFWARM_NOFILE_H

/* Returns 0 on success or when there is nothing to restore, -1 (with a message) on failure. */
int sfwarm_restore_nofile(void);

#endif
