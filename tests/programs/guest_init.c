/* A stand-in /init for guest image boot tests (the real one is native/agent's sfagent): loads the
 * kernel modules the image lists, in its order, runs the program named after "--" on the kernel
 * command line, reports each step on the console, and powers the VM off. Static: nothing else
 * in the image may be usable when it starts. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void finish(void)
{
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    /* No power-off path on this machine: a reset, which QEMU's -no-reboot turns into an exit. */
    reboot(RB_AUTOBOOT);
    _exit(1);
}

int main(int argc, char **argv)
{
    printf("SFTEST init started\n");
    /* What an MPI rank expects of a machine (UCX reads /sys and /proc, shares memory in /dev/shm). */
    if (mount("proc", "/proc", "proc", 0, NULL) != 0 || mount("sysfs", "/sys", "sysfs", 0, NULL) != 0
        || mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) != 0 || mkdir("/dev/shm", 01777) != 0
        || mount("tmpfs", "/dev/shm", "tmpfs", 0, NULL) != 0)
        printf("SFTEST mount failed: %m\n");
    FILE *list = fopen("/etc/snowflock/modules", "r");
    if (!list) {
        printf("SFTEST no module list\n");
        finish();
    }
    char path[512];
    int loaded = 0, failed = 0;
    while (fgets(path, sizeof path, list)) {
        path[strcspn(path, "\n")] = 0;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) != 0) {
            printf("SFTEST module %s failed: %m\n", path);
            failed++;
        } else {
            loaded++;
        }
        if (fd >= 0)
            close(fd);
    }
    fclose(list);
    printf("SFTEST modules loaded=%d failed=%d\n", loaded, failed);
    if (argc > 1) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            execv(argv[1], argv + 1);
            printf("SFTEST exec %s failed: %m\n", argv[1]);
            _exit(127);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) < 0)
            printf("SFTEST fork/wait failed: %m\n");
        else
            printf("SFTEST program exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    printf("SFTEST done\n");
    finish();
    return 0;
}
