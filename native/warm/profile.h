#ifndef SFWARM_PROFILE_H
#define SFWARM_PROFILE_H

#include <limits.h>

/* In the master, before it serves: dlopens every library of a ':'-separated list (errors are
 * counted, not fatal), then remembers what the master has mapped. */
void sfwarm_preload(const char *list);

/* In a clone: if SFWARM_PROFILE_OUT names a file, writes there at exit the libraries mapped then
 * that the master had not mapped. */
void sfwarm_record_profile_at_exit(void);

#endif
