/* A clone's identity. The template's network device state travels in the snapshot, so a MAC
 * given on the clone's QEMU command line is ignored: the guest sets its own MAC and address
 * here, from what the host sends. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define NET_DEVICE "eth0"

static int parse_mac(const char *text, unsigned char mac[6])
{
    unsigned int b[6];
    if (sscanf(text, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
        return -1;
    for (int i = 0; i < 6; i++)
        mac[i] = (unsigned char)b[i];
    return 0;
}

static int set_flags(int s, int up)
{
    struct ifreq ifr = {0};
    strncpy(ifr.ifr_name, NET_DEVICE, IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
        return -1;
    if (up)
        ifr.ifr_flags |= IFF_UP;
    else
        ifr.ifr_flags &= ~IFF_UP;
    return ioctl(s, SIOCSIFFLAGS, &ifr);
}

/* Waits (at most about 3 s) until eth0 reports a running link. */
static void wait_running(int s)
{
    for (int waited = 0; waited < 3000; waited += 5) {
        struct ifreq ifr = {0};
        strncpy(ifr.ifr_name, NET_DEVICE, IFNAMSIZ - 1);
        if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0 || (ifr.ifr_flags & IFF_RUNNING))
            return;
        struct timespec five_ms = {0, 5 * 1000 * 1000};
        nanosleep(&five_ms, NULL);
    }
    agent_log("%s has no running link after 3 s", NET_DEVICE);
}

/* The device was brought up when the template booted, so its carrier is up in every clone; a
 * down/up cycle here would make UCX find no running interface for up to a second (the kernel
 * reports carrier changes lazily). virtio-net takes a new MAC while up. */
static void configure_net(const char *ip_cidr, const char *mac_text, char *applied, size_t cap)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        agent_log("socket() failed: %s", strerror(errno));
        return;
    }
    unsigned char mac[6];
    if (mac_text[0] != '\0' && parse_mac(mac_text, mac) == 0) {
        struct ifreq ifr = {0};
        strncpy(ifr.ifr_name, NET_DEVICE, IFNAMSIZ - 1);
        ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
        memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
        if (ioctl(s, SIOCSIFHWADDR, &ifr) != 0)
            agent_log("ioctl(SIOCSIFHWADDR) failed: %s", strerror(errno));
    }
    if (ip_cidr[0] != '\0') {
        char ip[64];
        int prefix = 24;
        snprintf(ip, sizeof ip, "%s", ip_cidr);
        char *slash = strchr(ip, '/');
        if (slash != NULL) {
            *slash = '\0';
            prefix = atoi(slash + 1);
        }
        struct ifreq ifr = {0};
        strncpy(ifr.ifr_name, NET_DEVICE, IFNAMSIZ - 1);
        struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
        sin->sin_family = AF_INET;
        if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1)
            agent_log("bad address '%s'", ip);
        else if (ioctl(s, SIOCSIFADDR, &ifr) != 0)
            agent_log("ioctl(SIOCSIFADDR) failed: %s", strerror(errno));
        memset(&ifr.ifr_addr, 0, sizeof ifr.ifr_addr);
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = prefix <= 0 ? 0 : htonl(0xffffffffu << (32 - (prefix > 32 ? 32 : prefix)));
        if (ioctl(s, SIOCSIFNETMASK, &ifr) != 0)
            agent_log("ioctl(SIOCSIFNETMASK) failed: %s", strerror(errno));
    }
    /* Up (should it not be) and running before the ranks look for interfaces. */
    if (set_flags(s, 1) != 0)
        agent_log("ioctl(%s up) failed: %s", NET_DEVICE, strerror(errno));
    wait_running(s);
    struct ifreq ifr = {0};
    strncpy(ifr.ifr_name, NET_DEVICE, IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFHWADDR, &ifr) == 0) {
        const unsigned char *m = (const unsigned char *)ifr.ifr_hwaddr.sa_data;
        size_t used = strlen(applied);
        snprintf(applied + used, cap - used, "mac=%02x:%02x:%02x:%02x:%02x:%02x\n", m[0], m[1], m[2], m[3], m[4], m[5]);
    }
    close(s);
}

/* hosts=name=ip,name=ip: every clone of the job, so ranks resolve each other by name. */
static void write_hosts(const char *hostname, const char *ip_cidr, const char *hosts)
{
    FILE *f = fopen("/etc/hosts", "w");
    if (f == NULL) {
        agent_log("open(/etc/hosts) failed: %s", strerror(errno));
        return;
    }
    fprintf(f, "127.0.0.1 localhost\n");
    char ip[64];
    snprintf(ip, sizeof ip, "%s", ip_cidr);
    ip[strcspn(ip, "/")] = '\0';
    if (hostname[0] != '\0')
        fprintf(f, "%s %s\n", ip[0] != '\0' ? ip : "127.0.1.1", hostname);
    /* The job's host list grows with its clones: a copy of its own size, not a fixed buffer. */
    char *list = strdup(hosts);
    if (list == NULL) {
        agent_log("no memory for the host list of /etc/hosts");
        if (fclose(f) != 0)
            agent_log("close(/etc/hosts) failed: %s", strerror(errno));
        return;
    }
    for (char *save = NULL, *item = strtok_r(list, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        if (strcmp(item, hostname) != 0)
            fprintf(f, "%s %s\n", eq + 1, item);
    }
    free(list);
    if (fclose(f) != 0)
        agent_log("close(/etc/hosts) failed: %s", strerror(errno));
}

/* Brings eth0 up at boot and waits for its link before the agent says hello: the template's
 * snapshot is taken right after that hello, and a snapshot taken while the driver still has link
 * work pending (a small image reaches hello fast, the more so on a loaded host) gives clones
 * whose device is not settled. */
void identity_net_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        agent_log("socket() failed: %s", strerror(errno));
        return;
    }
    if (set_flags(s, 1) != 0) {
        if (errno != ENODEV)
            agent_log("ioctl(%s up) failed: %s", NET_DEVICE, strerror(errno));
    } else {
        wait_running(s);
    }
    close(s);
}

void identity_apply(const uint8_t *payload, uint32_t length)
{
    char text[AGENT_MAX_PAYLOAD + 1];
    memcpy(text, payload, length);
    text[length] = '\0';
    char hostname[256] = "", ip[64] = "", mac[64] = "", clone[32] = "";
    static char hosts[AGENT_MAX_PAYLOAD + 1];
    hosts[0] = '\0';
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(line, "hostname") == 0)
            snprintf(hostname, sizeof hostname, "%s", v);
        else if (strcmp(line, "ip") == 0)
            snprintf(ip, sizeof ip, "%s", v);
        else if (strcmp(line, "mac") == 0)
            snprintf(mac, sizeof mac, "%s", v);
        else if (strcmp(line, "clone") == 0)
            snprintf(clone, sizeof clone, "%s", v);
        else if (strcmp(line, "hosts") == 0)
            snprintf(hosts, sizeof hosts, "%s", v);
    }
    char applied[1024] = "";
    if (hostname[0] != '\0' && sethostname(hostname, strlen(hostname)) != 0)
        agent_log("sethostname(%s) failed: %s", hostname, strerror(errno));
    char now[256] = "";
    if (gethostname(now, sizeof now - 1) != 0)
        agent_log("gethostname failed: %s", strerror(errno));
    snprintf(applied, sizeof applied, "clone=%s\nhostname=%s\n", clone, now);
    if (ip[0] != '\0' || mac[0] != '\0') {
        configure_net(ip, mac, applied, sizeof applied);
        size_t used = strlen(applied);
        snprintf(applied + used, sizeof applied - used, "ip=%s\n", ip);
    }
    write_hosts(now, ip, hosts);
    channel_send_text(AGENT_IDENTITY_ACK, 0, applied);
}
