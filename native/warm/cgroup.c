#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sfwarm_join_cgroup(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/cgroup.procs", dir) >= (int)sizeof path) {
        fprintf(stderr, "sfwarm: cgroup path too long: %s\n", dir);
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "sfwarm: open(%s) failed: %s\n", path, strerror(errno));
        return -1;
    }
    /* "0" is the writing process itself, whatever pid namespace it is in. */
    if (write(fd, "0", 1) != 1) {
        fprintf(stderr, "sfwarm: write(%s, 0) failed: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (close(fd) != 0) {
        fprintf(stderr, "sfwarm: close(%s) failed: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int sfwarm_join_job_cgroup(void)
{
    const char *dir = getenv("SFWARM_CGROUP");
    if (!dir)
        return 0;
    int result = *dir ? sfwarm_join_cgroup(dir) : 0;
    if (unsetenv("SFWARM_CGROUP") != 0) {
        fprintf(stderr, "sfwarm: unsetenv(SFWARM_CGROUP) failed: %s\n", strerror(errno));
        return -1;
    }
    return result;
}
