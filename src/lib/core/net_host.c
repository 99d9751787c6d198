/* net_host.c - bridge, NAT and forwarding of a qvm network (net_host.h). */
#include "net_host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

#define IP_FORWARD "/proc/sys/net/ipv4/ip_forward"

bool qvm_net_link_exists(const char *ifname)
{
    return if_nametoindex(ifname) != 0;
}

static int run(const char *const argv[], struct qvm_error *err)
{
    struct qvm_run_opts opts = { .timeout_ms = 30000 };
    return qvm_run(argv, &opts, NULL, err);
}

int qvm_net_bridge_up(const struct qvm_network *n, struct qvm_error *err)
{
    char addr[32], gw[16];
    qvm_net_format_ip(n->gateway, gw, sizeof gw);
    snprintf(addr, sizeof addr, "%s/%u", gw, n->prefix);
    int r = 0;
    if (!qvm_net_link_exists(n->bridge)) {
        /* No STP and no forwarding delay: ports carry traffic at once, so
         * a guest's first DHCP request is not lost. */
        const char *add[] = { "ip", "link", "add", "name", n->bridge, "type", "bridge",
                              "stp_state", "0", "forward_delay", "0", NULL };
        r = run(add, err);
    }
    const char *set_addr[] = { "ip", "addr", "replace", addr, "dev", n->bridge, NULL };
    const char *set_up[] = { "ip", "link", "set", "dev", n->bridge, "up", NULL };
    if (r == 0)
        r = run(set_addr, err);
    if (r == 0)
        r = run(set_up, err);
    if (r < 0)
        return qvm_err_wrap(err, "cannot bring up bridge %s", n->bridge);
    return 0;
}

int qvm_net_bridge_down(const char *bridge, struct qvm_error *err)
{
    if (!qvm_net_link_exists(bridge))
        return 0;
    const char *argv[] = { "ip", "link", "del", "dev", bridge, NULL };
    return run(argv, err);
}

static char *table_name(const char *name)
{
    return xasprintf("qvm-%s", name);
}

int qvm_net_nat_up(const struct qvm_network *n, struct qvm_error *err)
{
    char net[40];
    qvm_net_format_subnet(n, net, sizeof net);
    char *table = table_name(n->name);
    struct strbuf sb = STRBUF_INIT;
    /* Declaring the table first makes the delete safe when it is absent:
     * the file then always replaces the whole table, in one transaction. */
    strbuf_addf(&sb, "table ip %s\ndelete table ip %s\n", table, table);
    strbuf_addf(&sb, "table ip %s {\n", table);
    strbuf_addf(&sb, "  chain postrouting {\n"
                     "    type nat hook postrouting priority srcnat; policy accept;\n"
                     "    ip saddr %s ip daddr != %s masquerade\n  }\n", net, net);
    strbuf_addf(&sb, "  chain forward {\n"
                     "    type filter hook forward priority filter; policy accept;\n"
                     "    iifname \"%s\" ip saddr %s accept\n"
                     "    oifname \"%s\" ct state established,related accept\n"
                     "    iifname \"%s\" reject\n"
                     "    oifname \"%s\" reject\n  }\n}\n",
                n->bridge, net, n->bridge, n->bridge, n->bridge);
    char *path = xasprintf("%s/nat.nft", n->dir);
    int r = qvm_write_file_atomic(path, sb.buf, sb.len, 0644, err);
    strbuf_release(&sb);
    if (r == 0) {
        const char *argv[] = { "nft", "-f", path, NULL };
        r = run(argv, err);
        if (r < 0)
            qvm_err_wrap(err, "cannot load the NAT rules of network '%s' (%s)", n->name, path);
    }
    free(path);
    free(table);
    return r;
}

bool qvm_net_nat_exists(const char *name)
{
    char *table = table_name(name);
    const char *argv[] = { "nft", "list", "table", "ip", table, NULL };
    struct qvm_run_opts opts = { .timeout_ms = 30000 };
    bool ok = qvm_run(argv, &opts, NULL, NULL) == 0;
    free(table);
    return ok;
}

int qvm_net_nat_down(const char *name, struct qvm_error *err)
{
    if (!qvm_net_nat_exists(name))
        return 0;
    char *table = table_name(name);
    const char *argv[] = { "nft", "delete", "table", "ip", table, NULL };
    int r = run(argv, err);
    free(table);
    return r;
}

static char *forward_saved(struct qvm_ctx *ctx)
{
    return xasprintf("%s/networks/.ip_forward", ctx->paths.state_dir);
}

static int write_ip_forward(const char *val, size_t len, struct qvm_error *err)
{
    int fd = open(IP_FORWARD, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open %s", IP_FORWARD);
    int r = qvm_write_all(fd, val, len, IP_FORWARD, err);
    if (close(fd) < 0 && r == 0)
        r = qvm_err_errno(err, errno, "cannot write %s", IP_FORWARD);
    return r;
}

int qvm_net_forwarding_on(struct qvm_ctx *ctx, struct qvm_error *err)
{
    char *cur = NULL;
    size_t len;
    int r = qvm_read_file(IP_FORWARD, 16, &cur, &len, err);
    if (r < 0)
        return r;
    char *saved = forward_saved(ctx);
    if (!qvm_path_exists(saved))
        r = qvm_write_file_atomic(saved, cur, len, 0644, err);
    free(saved);
    bool on = cur[0] == '1';
    free(cur);
    if (r < 0 || on)
        return r;
    r = write_ip_forward("1\n", 2, err);
    return r < 0 ? qvm_err_wrap(err, "cannot turn on IPv4 forwarding") : 0;
}

void qvm_net_forwarding_restore(struct qvm_ctx *ctx, struct strbuf *failed)
{
    char *saved = forward_saved(ctx);
    char *val = NULL;
    size_t len;
    struct qvm_error e = { 0 };
    if (qvm_read_file(saved, 16, &val, &len, NULL) == 0) {
        if (write_ip_forward(val, len, &e) < 0) {
            if (failed)
                strbuf_addf(failed, "\n  %s was not set back to %.1s (%s)", IP_FORWARD, val, e.msg);
        } else {
            unlink(saved);
        }
        free(val);
    }
    free(saved);
}

static bool overlaps(uint32_t a, unsigned pa, uint32_t b, unsigned pb)
{
    unsigned p = pa < pb ? pa : pb;
    uint32_t mask = p == 0 ? 0 : 0xffffffffu << (32 - p);
    return (a & mask) == (b & mask);
}

/* "A.B.C.D/P" or "A.B.C.D" (a /32) at the start of S. */
static bool parse_prefix(const char *s, uint32_t *ret, unsigned *ret_p)
{
    char buf[40];
    size_t n = strcspn(s, " \t\n");
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    unsigned p = 32;
    char *slash = strchr(buf, '/');
    if (slash) {
        *slash = '\0';
        p = (unsigned)atoi(slash + 1);
    }
    struct in_addr a;
    if (inet_pton(AF_INET, buf, &a) != 1 || p > 32)
        return false;
    *ret = ntohl(a.s_addr);
    *ret_p = p;
    return true;
}

bool qvm_net_overlaps_host(uint32_t subnet, unsigned prefix, char *what, size_t size)
{
    /* Addresses: "N: IF    inet A/P ..."; routes: "A/P dev IF ...". */
    const char *addrs[] = { "ip", "-4", "-o", "addr", "show", NULL };
    const char *routes[] = { "ip", "-4", "route", "show", "table", "all", NULL };
    const char *const *cmds[] = { addrs, routes };
    bool hit = false;
    for (size_t c = 0; c < 2 && !hit; c++) {
        struct qvm_run_result res;
        struct qvm_run_opts opts = { .timeout_ms = 30000 };
        if (qvm_run(cmds[c], &opts, &res, NULL) < 0) {
            qvm_run_result_release(&res);
            continue;
        }
        for (char *line = res.out; line && *line && !hit;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            uint32_t a;
            unsigned p;
            if (c == 0) {
                char *in = strstr(line, " inet ");
                char ifname[32] = "";
                sscanf(line, "%*d: %31s", ifname);
                if (in && parse_prefix(in + 6, &a, &p) && overlaps(subnet, prefix, a, p) &&
                    strncmp(ifname, "lo", 3) != 0) {
                    hit = true;
                    snprintf(what, size, "address %.*s of %s", (int)strcspn(in + 6, " "), in + 6,
                             ifname);
                }
            } else {
                const char *s = line;
                if (strncmp(s, "local ", 6) == 0 || strncmp(s, "broadcast ", 10) == 0 ||
                    strncmp(s, "unreachable ", 12) == 0)
                    s = "";   /* the local table's own entries are the addresses above */
                if (*s && strncmp(s, "default", 7) != 0 && parse_prefix(s, &a, &p) && p > 0 &&
                    overlaps(subnet, prefix, a, p)) {
                    hit = true;
                    snprintf(what, size, "route %.*s", (int)strcspn(line, "\n"), line);
                }
            }
            line = nl ? nl + 1 : NULL;
        }
        qvm_run_result_release(&res);
    }
    return hit;
}

void qvm_net_tap_name(const char *vm, unsigned index, char *buf)
{
    snprintf(buf, 16, "qvm%08xn%u", qvm_fnv1a(QVM_FNV1A_INIT, vm), index % 100);
}

int qvm_net_tap_open(const char *ifname, const char *bridge, int *ret_fd, struct qvm_error *err)
{
    *ret_fd = -1;
    if (!qvm_net_link_exists(bridge))
        return qvm_err(err, ENODEV, "bridge %s does not exist", bridge);
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open /dev/net/tun (a tap device needs root or "
                             "CAP_NET_ADMIN)");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        return qvm_err_errno(err, e, "cannot create tap device %s%s", ifname,
                             e == EBUSY ? " (in use: is the VM running already?)" : "");
    }
    const char *master[] = { "ip", "link", "set", "dev", ifname, "master", bridge, "up", NULL };
    int r = run(master, err);
    if (r < 0) {
        close(fd);
        return qvm_err_wrap(err, "cannot attach tap %s to bridge %s", ifname, bridge);
    }
    *ret_fd = fd;
    return 0;
}
