#include "nofile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int sfwarm_restore_nofile(void)
{
    const char *value = getenv("SFWARM_NOFILE");
    if (!value)
        return 0;
    char *end;
    errno = 0;
    unsigned long long soft = strtoull(value, &end, 10);
    int ok = errno == 0 && *end == '\0' && end != value;
    if (unsetenv("SFWARM_NOFILE") != 0) {
        fprintf(stderr, "sfwarm: unsetenv(SFWARM_NOFILE) failed: %s\n", strerror(errno));
        return -1;
    }
    if (!ok) {
        fprintf(stderr, "sfwarm: SFWARM_NOFILE=%s is not a number\n", value);
        return -1;
    }
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        fprintf(stderr, "sfwarm: getrlimit(RLIMIT_NOFILE) failed: %s\n", strerror(errno));
        return -1;
    }
    if ((rlim_t)soft >= limit.rlim_cur)
        return 0;
    limit.rlim_cur = (rlim_t)soft;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
        fprintf(stderr, "sfwarm: setrlimit(RLIMIT_NOFILE, %llu) failed: %s\n", soft, strerror(errno));
        return -1;
    }
    return 0;
}
