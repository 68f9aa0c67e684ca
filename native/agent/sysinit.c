/* What the agent does as PID 1 before it serves: file systems, the kernel modules of the clone's
 * devices, the loopback interface, the control port; and the two kernel services it needs later
 * (entropy, power off). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

static void mount_one(const char *source, const char *target, const char *type, unsigned long flags, const char *data)
{
    if (mkdir(target, 0755) != 0 && errno != EEXIST)
        agent_log("mkdir(%s) failed: %s", target, strerror(errno));
    if (mount(source, target, type, flags, data) != 0 && errno != EBUSY)
        agent_log("mount(%s on %s) failed: %s", type, target, strerror(errno));
}

void sysinit_mounts(void)
{
    mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666");
    /* MPICH and UCX put shared-memory segments here. */
    mount_one("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
    if (mkdir("/tmp", 01777) != 0 && errno != EEXIST)
        agent_log("mkdir(/tmp) failed: %s", strerror(errno));
    if (chmod("/tmp", 01777) != 0)
        agent_log("chmod(/tmp) failed: %s", strerror(errno));
}

void sysinit_modules(const char *list_path)
{
    FILE *list = fopen(list_path, "r");
    if (list == NULL) {
        if (errno != ENOENT)
            agent_log("open(%s) failed: %s", list_path, strerror(errno));
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, list) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        int fd = open(line, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            agent_log("open(%s) failed: %s", line, strerror(errno));
            continue;
        }
        if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST)
            agent_log("finit_module(%s) failed: %s", line, strerror(errno));
        close(fd);
    }
    fclose(list);
}

void sysinit_loopback(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        agent_log("socket() failed: %s", strerror(errno));
        return;
    }
    struct ifreq ifr = {0};
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
        agent_log("ioctl(lo, SIOCGIFFLAGS) failed: %s", strerror(errno));
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
        agent_log("ioctl(lo, SIOCSIFFLAGS) failed: %s", strerror(errno));
    close(s);
}

/* Virtio ports appear asynchronously after the module loads; look them up by name. */
int sysinit_open_port(const char *name, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        DIR *d = opendir("/sys/class/virtio-ports");
        if (d != NULL) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.')
                    continue;
                char path[300], got[128] = {0};
                snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                    continue;
                ssize_t n = read(fd, got, sizeof got - 1);
                close(fd);
                if (n <= 0)
                    continue;
                got[strcspn(got, "\n")] = '\0';
                if (strcmp(got, name) != 0)
                    continue;
                snprintf(path, sizeof path, "/dev/%s", e->d_name);
                int port = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
                if (port < 0) {
                    agent_log("open(%s) failed: %s", path, strerror(errno));
                    continue;
                }
                closedir(d);
                return port;
            }
            closedir(d);
        }
        struct timespec ten_ms = {0, 10 * 1000 * 1000};
        nanosleep(&ten_ms, NULL);
    }
    errno = ENOENT;
    return -1;
}

void sysinit_add_entropy(const uint8_t *bytes, uint32_t length)
{
    if (length == 0 || length > 4096)
        return;
    struct {
        struct rand_pool_info info;
        uint8_t data[4096];
    } pool;
    pool.info.entropy_count = (int)(length * 8);
    pool.info.buf_size = (int)length;
    memcpy(pool.data, bytes, length);
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        agent_log("open(/dev/urandom) failed: %s", strerror(errno));
        return;
    }
    if (ioctl(fd, RNDADDENTROPY, &pool.info) != 0)
        agent_log("ioctl(RNDADDENTROPY) failed: %s", strerror(errno));
    /* Every clone starts from the template's CRNG state; mixing in bytes alone would not change
     * what getrandom() returns until the next scheduled reseed. */
    if (ioctl(fd, RNDRESEEDCRNG) != 0)
        agent_log("ioctl(RNDRESEEDCRNG) failed: %s", strerror(errno));
    close(fd);
}

void sysinit_power_off(void)
{
    sync();
    reboot(RB_POWER_OFF);
    agent_log("reboot(RB_POWER_OFF) failed: %s", strerror(errno));
    _exit(1);
}
