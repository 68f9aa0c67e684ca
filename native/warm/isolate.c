/* Isolation of a clone (--isolate): its own pid, uts, mount and network namespace, with a veth
 * whose other end is on the job's bridge, in the job's own network namespace that sfrun made.
 * Nothing here needs cleaning up: the clone's namespaces, and with them its veth pair, go when
 * its last process ends; the job's namespace and bridge when sfrun and the clones let go of it. */
#include "isolate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <linux/veth.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *call)
{
    fprintf(stderr, "sfwarm: --isolate: %s failed: %s\n", call, strerror(errno));
    _exit(127);
}

/* Netlink attributes, appended to a request in a fixed buffer. */
struct request {
    struct nlmsghdr hdr;
    struct ifinfomsg info;
    char attrs[1024];
};

static struct rtattr *put_attr(struct request *r, unsigned short type, const void *data, size_t len)
{
    struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->hdr.nlmsg_len));
    if (NLMSG_ALIGN(r->hdr.nlmsg_len) + RTA_SPACE(len) > sizeof *r) {
        errno = EMSGSIZE;
        die("netlink request");
    }
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(a), data, len);
    r->hdr.nlmsg_len = NLMSG_ALIGN(r->hdr.nlmsg_len) + RTA_SPACE(len);
    return a;
}

static void end_nest(struct request *r, struct rtattr *nest)
{
    nest->rta_len = (unsigned short)((char *)r + r->hdr.nlmsg_len - (char *)nest);
}

/* `ip link add NAME type veth peer name PEER netns PEER_NETNS`, in this network namespace. */
static void create_veth(const char *name, const char *peer, int peer_netns)
{
    struct request r;
    memset(&r, 0, sizeof r);
    r.hdr.nlmsg_len = NLMSG_LENGTH(sizeof r.info);
    r.hdr.nlmsg_type = RTM_NEWLINK;
    r.hdr.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
    r.info.ifi_family = AF_UNSPEC;
    put_attr(&r, IFLA_IFNAME, name, strlen(name) + 1);
    struct rtattr *linkinfo = put_attr(&r, IFLA_LINKINFO, NULL, 0);
    put_attr(&r, IFLA_INFO_KIND, "veth", 4);
    struct rtattr *data = put_attr(&r, IFLA_INFO_DATA, NULL, 0);
    struct rtattr *peerinfo = put_attr(&r, VETH_INFO_PEER, NULL, 0);
    struct ifinfomsg peer_info = { .ifi_family = AF_UNSPEC };
    memcpy((char *)&r + r.hdr.nlmsg_len, &peer_info, sizeof peer_info);
    r.hdr.nlmsg_len += NLMSG_ALIGN(sizeof peer_info);
    put_attr(&r, IFLA_IFNAME, peer, strlen(peer) + 1);
    uint32_t fd = (uint32_t)peer_netns;
    put_attr(&r, IFLA_NET_NS_FD, &fd, sizeof fd);
    end_nest(&r, peerinfo);
    end_nest(&r, data);
    end_nest(&r, linkinfo);

    int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (sock < 0)
        die("socket(AF_NETLINK)");
    if (send(sock, &r, r.hdr.nlmsg_len, 0) < 0)
        die("send(RTM_NEWLINK)");
    char reply[4096];
    ssize_t n = recv(sock, reply, sizeof reply, 0);
    if (n < 0)
        die("recv(RTM_NEWLINK)");
    struct nlmsghdr *h = (struct nlmsghdr *)reply;
    if (n < (ssize_t)sizeof *h || !NLMSG_OK(h, (unsigned)n) || h->nlmsg_type != NLMSG_ERROR) {
        errno = EPROTO;
        die("RTM_NEWLINK veth");
    }
    struct nlmsgerr *err = NLMSG_DATA(h);
    if (err->error != 0) {
        errno = -err->error;
        die("RTM_NEWLINK veth");
    }
    close(sock);
}

static void set_up(int sock, const char *name)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0)
        die("ioctl(SIOCGIFFLAGS)");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0)
        die("ioctl(SIOCSIFFLAGS)");
}

static void set_address(int sock, const char *name, struct in_addr address, int prefix)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr = address;
    if (ioctl(sock, SIOCSIFADDR, &ifr) != 0)
        die("ioctl(SIOCSIFADDR)");
    sin->sin_addr.s_addr = htonl(prefix == 0 ? 0 : 0xffffffffu << (32 - prefix));
    if (ioctl(sock, SIOCSIFNETMASK, &ifr) != 0)
        die("ioctl(SIOCSIFNETMASK)");
}

/* The clone's network: eth0 here with the address, its peer on the bridge in the job's namespace. */
static void plug_in(struct in_addr address, int prefix, const char *peer, const char *bridge, int job_netns)
{
    int own = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (own < 0)
        die("open(/proc/self/ns/net)");
    create_veth("eth0", peer, job_netns);
    if (setns(job_netns, CLONE_NEWNET) != 0)
        die("setns(job network)");
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        die("socket(AF_INET)");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", bridge);
    ifr.ifr_ifindex = (int)if_nametoindex(peer);
    if (ifr.ifr_ifindex == 0)
        die("if_nametoindex(peer)");
    if (ioctl(sock, SIOCBRADDIF, &ifr) != 0)
        die("ioctl(SIOCBRADDIF)");
    set_up(sock, peer);
    close(sock);
    if (setns(own, CLONE_NEWNET) != 0)
        die("setns(own network)");
    close(own);
    close(job_netns);
    sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        die("socket(AF_INET)");
    set_up(sock, "lo");
    set_address(sock, "eth0", address, prefix);
    set_up(sock, "eth0");
    close(sock);
}

/* Who a relayed signal goes to: in the outer clone, the init; in the init, the rank. */
static volatile pid_t relay_to;

static void relay(int sig)
{
    if (relay_to > 0)
        kill(relay_to, sig);
}

/* Ends this process with the raw wait status: the same exit code, or death by the same signal. */
static void end_like(int status)
{
    if (WIFEXITED(status))
        _exit(WEXITSTATUS(status));
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* the rank dumped core already, if it did */
    raise(sig);
    _exit(128 + sig);
}

void sfwarm_isolate(const char *spec, int job_netns, const int *relayed, int relayed_count)
{
    char address_text[64], hostname[65], peer[IFNAMSIZ], bridge[IFNAMSIZ], ipc[8] = "";
    int prefix;
    int fields = sscanf(spec, "%63[0-9.]/%d %64s %15s %15s %7s", address_text, &prefix, hostname, peer, bridge, ipc);
    if (fields < 5 || prefix < 1 || prefix > 30 || (fields == 6 && strcmp(ipc, "ipc") != 0)) {
        fprintf(stderr, "sfwarm: --isolate: malformed SFWARM_ISOLATE '%s'\n", spec);
        _exit(127);
    }
    struct in_addr address;
    if (inet_pton(AF_INET, address_text, &address) != 1) {
        fprintf(stderr, "sfwarm: --isolate: bad address '%s'\n", address_text);
        _exit(127);
    }
    int own_ipc = fields == 6;
    if (unshare(CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWNS | CLONE_NEWPID | (own_ipc ? CLONE_NEWIPC : 0)) != 0)
        die("unshare(CLONE_NEWNET|CLONE_NEWUTS|CLONE_NEWNS|CLONE_NEWPID)");
    plug_in(address, prefix, peer, bridge, job_netns);
    if (sethostname(hostname, strlen(hostname)) != 0)
        die("sethostname");
    /* Mounts made from here on stay in this clone. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        die("mount(/, MS_PRIVATE)");

    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = relay;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    for (int i = 0; i < relayed_count; i++)
        sigaction(relayed[i], &act, NULL);

    /* report: the rank's wait status, init -> outer. alive: its write end is only the outer
     * clone's, so the init sees it hang up if the outer clone is already gone. */
    int report[2], alive[2];
    if (pipe2(report, O_CLOEXEC) != 0 || pipe2(alive, O_CLOEXEC) != 0)
        die("pipe2");
    pid_t init = fork();
    if (init < 0)
        die("fork(init)");
    if (init > 0) {
        /* The clone sfrun knows: waits for the rank's status and ends the same way. */
        close(report[1]);
        close(alive[0]);
        relay_to = init;
        int status = 0;
        ssize_t n;
        while ((n = read(report[0], &status, sizeof status)) < 0 && errno == EINTR)
            ;
        while (waitpid(init, NULL, 0) < 0 && errno == EINTR)
            ;
        end_like(n == (ssize_t)sizeof status ? status : SIGKILL);
    }

    /* pid 1 of the clone's pid namespace. */
    close(report[0]);
    close(alive[1]);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        die("prctl(PR_SET_PDEATHSIG)");
    /* getppid() is 0 here (the parent is outside the namespace): ask the pipe instead. */
    struct pollfd outer_gone = { .fd = alive[0], .events = 0 };
    if (poll(&outer_gone, 1, 0) != 0)
        _exit(127);
    close(alive[0]);
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        die("mount(/proc)");
    if (own_ipc && mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0)
        die("mount(/dev/shm)");
    pid_t rank = fork();
    if (rank < 0)
        die("fork(rank)");
    if (rank == 0) {
        close(report[1]);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
            die("prctl(PR_SET_PDEATHSIG)");
        return; /* the rank: the caller restores signals and runs main() */
    }
    relay_to = rank;
    for (;;) {
        int status;
        pid_t pid = wait(&status);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0)
            _exit(127);
        if (pid == rank) {
            /* Its status to the outer clone; leaving ends every other process of the namespace. */
            if (write(report[1], &status, sizeof status) != (ssize_t)sizeof status)
                _exit(127);
            _exit(0);
        }
    }
}
