/* Warm profile: the shared libraries a program loads at run time (MPI_Init dlopens UCX transport
 * modules and hwloc plugins) are loaded once in the master, so clones find them mapped and
 * relocated. The first clone of a program with no profile yet records, when it exits, the
 * libraries it has mapped that the master had not; sfrun stores that list and passes it back to
 * later masters in SFWARM_PRELOAD. */
#include "profile.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LIBS 512

static char *master_libs[MAX_LIBS];
static size_t master_count;
static char profile_out[PATH_MAX];

static int is_library(const char *path)
{
    const char *base = strrchr(path, '/');
    return path[0] == '/' && base && strstr(base, ".so") != NULL;
}

/* Calls visit for each distinct shared library mapped into this process. */
static void each_mapped_library(void (*visit)(const char *path, void *arg), void *arg)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps) {
        fprintf(stderr, "sfwarm: fopen(/proc/self/maps) failed: %s\n", strerror(errno));
        return;
    }
    char line[PATH_MAX + 128], last[PATH_MAX] = "";
    while (fgets(line, sizeof line, maps)) {
        char *path = strchr(line, '/');
        if (!path)
            continue;
        path[strcspn(path, "\n")] = '\0';
        if (!is_library(path) || strcmp(path, last) == 0)
            continue;
        snprintf(last, sizeof last, "%s", path);
        visit(path, arg);
    }
    fclose(maps);
}

static void remember(const char *path, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < master_count; i++)
        if (strcmp(master_libs[i], path) == 0)
            return;
    if (master_count < MAX_LIBS) {
        char *copy = strdup(path);
        if (copy)
            master_libs[master_count++] = copy;
    }
}

void sfwarm_preload(const char *list)
{
    if (list && *list) {
        char *copy = strdup(list);
        if (!copy) {
            fprintf(stderr, "sfwarm: strdup failed: %s\n", strerror(errno));
            return;
        }
        int failed = 0;
        for (char *save = NULL, *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save))
            if (!dlopen(p, RTLD_LAZY | RTLD_LOCAL))
                failed++;
        if (failed)
            fprintf(stderr, "sfwarm: %d libraries of the warm profile could not be loaded\n", failed);
        free(copy);
    }
    each_mapped_library(remember, NULL);
}

static void write_new(const char *path, void *arg)
{
    for (size_t i = 0; i < master_count; i++)
        if (strcmp(master_libs[i], path) == 0)
            return;
    fprintf((FILE *)arg, "%s\n", path);
}

static void write_profile(void)
{
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.%d", profile_out, (int)getpid());
    /* 0600 whatever the umask: the cache is private to the user. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return; /* a profile is an optimisation: never fail the rank for it */
    FILE *out = fdopen(fd, "w");
    if (!out) {
        close(fd);
        unlink(tmp);
        return;
    }
    each_mapped_library(write_new, out);
    if (fclose(out) != 0 || rename(tmp, profile_out) != 0)
        unlink(tmp);
}

void sfwarm_record_profile_at_exit(void)
{
    const char *out = getenv("SFWARM_PROFILE_OUT");
    if (!out || !*out || strlen(out) >= sizeof profile_out)
        return;
    snprintf(profile_out, sizeof profile_out, "%s", out);
    unsetenv("SFWARM_PROFILE_OUT");
    if (atexit(write_profile) != 0)
        fprintf(stderr, "sfwarm: atexit failed\n");
}
