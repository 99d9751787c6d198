/* net.c - qvm networks: definitions, create and remove, static leases
 * (net.h). The host side is net_host.c, dnsmasq's supervision net_dhcp.c. */
#include "net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/journal.h"
#include "core/net_dhcp.h"
#include "core/net_host.h"
#include "core/vm.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"

#define LEASES_MAX (1u << 20)
#define NET_JSON_MAX (64u << 10)

void qvm_net_format_ip(uint32_t ip, char *buf, size_t size)
{
    snprintf(buf, size, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}

void qvm_net_format_subnet(const struct qvm_network *n, char *buf, size_t size)
{
    char ip[16];
    qvm_net_format_ip(n->subnet, ip, sizeof ip);
    snprintf(buf, size, "%s/%u", ip, n->prefix);
}

int qvm_net_parse_subnet(const char *text, uint32_t *ret_net, unsigned *ret_prefix,
                         struct qvm_error *err)
{
    char buf[24];
    const char *slash = strchr(text, '/');
    if (!slash || (size_t)(slash - text) >= sizeof buf || strlen(slash + 1) == 0 ||
        strlen(slash + 1) > 2 || strspn(slash + 1, "0123456789") != strlen(slash + 1))
        return qvm_err(err, EINVAL, "invalid subnet '%s': expected A.B.C.D/P, such as 10.10.0.0/24",
                       text);
    memcpy(buf, text, (size_t)(slash - text));
    buf[slash - text] = '\0';
    struct in_addr a;
    unsigned p = (unsigned)atoi(slash + 1);
    if (inet_pton(AF_INET, buf, &a) != 1)
        return qvm_err(err, EINVAL, "invalid subnet '%s': '%s' is not an IPv4 address", text, buf);
    if (p < 16 || p > 29)
        return qvm_err(err, EINVAL, "invalid subnet '%s': the prefix must be 16 to 29", text);
    uint32_t ip = ntohl(a.s_addr), mask = 0xffffffffu << (32 - p);
    if (ip & ~mask) {
        char fixed[16];
        qvm_net_format_ip(ip & mask, fixed, sizeof fixed);
        return qvm_err(err, EINVAL, "invalid subnet '%s': host bits are set (did you mean %s/%u?)",
                       text, fixed, p);
    }
    *ret_net = ip;
    *ret_prefix = p;
    return 0;
}

int qvm_net_name_check(const char *name, struct qvm_error *err)
{
    size_t len = strlen(name);
    if (len == 0 || len > QVM_NET_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != len ||
        name[0] == '-')
        return qvm_err(err, EINVAL, "invalid network name '%s': 1 to %d lower-case letters, digits "
                       "or '-', not starting with '-' (the bridge is qvm-NAME, and Linux allows "
                       "15 bytes)", name, QVM_NET_NAME_MAX);
    return 0;
}

/* "qvm-NAME" in a static buffer (NAME checked: it fits). */
static const char *n_bridge_name(const char *name)
{
    static char buf[24];
    snprintf(buf, sizeof buf, "qvm-%s", name);
    return buf;
}

static char *net_dir(struct qvm_ctx *ctx, const char *name)
{
    return xasprintf("%s/networks/%s", ctx->paths.state_dir, name);
}

bool qvm_net_exists(struct qvm_ctx *ctx, const char *name)
{
    if (qvm_net_name_check(name, NULL) < 0)
        return false;
    char *dir = net_dir(ctx, name);
    char *json = xasprintf("%s/net.json", dir);
    bool ok = qvm_path_exists(json);
    free(json);
    free(dir);
    return ok;
}

int qvm_net_load(struct qvm_ctx *ctx, const char *name, struct qvm_network *ret,
                 struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    int r = qvm_net_name_check(name, err);
    if (r < 0)
        return r;
    char *dir = net_dir(ctx, name);
    char *path = xasprintf("%s/net.json", dir);
    char *text = NULL;
    size_t len;
    if (!qvm_path_exists(path)) {
        r = qvm_err(err, ENOENT, "no network named '%s' (qvm net ls lists them)", name);
    } else {
        r = qvm_read_file(path, NET_JSON_MAX, &text, &len, err);
    }
    json_object *o = r == 0 ? json_tokener_parse(text) : NULL, *v;
    free(text);
    const char *subnet = o && json_object_object_get_ex(o, "subnet", &v) ?
                         json_object_get_string(v) : NULL;
    if (r == 0 && (!subnet || qvm_net_parse_subnet(subnet, &ret->subnet, &ret->prefix, NULL) < 0))
        r = qvm_err(err, EINVAL, "%s is damaged (no valid subnet)", path);
    if (r == 0) {
        ret->name = xstrdup(name);
        ret->bridge = xasprintf("qvm-%s", name);
        ret->gateway = ret->subnet + 1;
        ret->dir = dir;
        dir = NULL;
    }
    json_object_put(o);
    free(path);
    free(dir);
    return r;
}

void qvm_net_release(struct qvm_network *n)
{
    if (!n)
        return;
    free(n->name);
    free(n->bridge);
    free(n->dir);
    memset(n, 0, sizeof *n);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int qvm_net_list_names(struct qvm_ctx *ctx, char ***ret, size_t *ret_n, struct qvm_error *err)
{
    *ret = NULL;
    *ret_n = 0;
    char *dir = xasprintf("%s/networks", ctx->paths.state_dir);
    DIR *d = opendir(dir);
    free(dir);
    if (!d)
        return errno == ENOENT ? 0 : qvm_err_errno(err, errno, "cannot list networks");
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !qvm_net_exists(ctx, e->d_name))
            continue;
        *ret = xrealloc(*ret, (*ret_n + 1) * sizeof(char *));
        (*ret)[(*ret_n)++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (*ret_n)
        qsort(*ret, *ret_n, sizeof(char *), cmp_str);
    return 0;
}

int qvm_net_users(struct qvm_ctx *ctx, const char *name, char ***ret, size_t *ret_n,
                  struct qvm_error *err)
{
    *ret = NULL;
    *ret_n = 0;
    char **vms;
    size_t nvms;
    int r = qvm_vm_list_names(ctx, &vms, &nvms, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < nvms; i++) {
        struct qvm_vm vm;
        if (qvm_vm_load(ctx, vms[i], &vm, NULL) == 0) {
            bool uses = false;
            for (size_t k = 0; k < qvm_spec_nic_count(&vm.spec); k++) {
                const struct qvm_net_spec *nic = qvm_spec_nic(&vm.spec, k);
                if (nic->type == QVM_NET_NETWORK && nic->source && strcmp(nic->source, name) == 0)
                    uses = true;
            }
            if (uses) {
                *ret = xrealloc(*ret, (*ret_n + 1) * sizeof(char *));
                (*ret)[(*ret_n)++] = xstrdup(vms[i]);
            }
            qvm_vm_release(&vm);
        }
        free(vms[i]);
    }
    free(vms);
    return 0;
}

/* ---- leases ------------------------------------------------------------------ */

struct lease {
    char vm[QVM_NAME_MAX + 1];
    char mac[18];
    uint32_t ip;
};

/* Reads N->dir/leases: "VM MAC IP" lines. Lines that do not parse are
 * dropped (the file is only ever written by qvm). */
static int leases_read(const struct qvm_network *n, struct lease **ret, size_t *ret_n,
                       struct qvm_error *err)
{
    *ret = NULL;
    *ret_n = 0;
    char *path = xasprintf("%s/leases", n->dir);
    char *text = NULL;
    size_t len;
    int r = 0;
    if (qvm_path_exists(path))
        r = qvm_read_file(path, LEASES_MAX, &text, &len, err);
    free(path);
    for (char *line = text; r == 0 && line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        struct lease l;
        char ip[16];
        struct in_addr a;
        if (sscanf(line, "%63s %17s %15s", l.vm, l.mac, ip) == 3 && qvm_name_valid(l.vm) &&
            qvm_mac_valid(l.mac) && inet_pton(AF_INET, ip, &a) == 1) {
            l.ip = ntohl(a.s_addr);
            *ret = xrealloc(*ret, (*ret_n + 1) * sizeof **ret);
            (*ret)[(*ret_n)++] = l;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return r;
}

/* Writes leases, dhcp-hosts and hosts, each atomically; dhcp-hosts and
 * hosts are made from leases, so a crash between them is mended by the
 * next write. Then tells dnsmasq to reread them. */
static int leases_write(const struct qvm_network *n, const struct lease *l, size_t nl,
                        struct qvm_error *err)
{
    struct strbuf lines = STRBUF_INIT, dhcp = STRBUF_INIT, hosts = STRBUF_INIT;
    strbuf_addstr(&hosts, "# qvm network: the VMs' names (read by dnsmasq and libnss_qvm)\n");
    for (size_t i = 0; i < nl; i++) {
        char ip[16];
        qvm_net_format_ip(l[i].ip, ip, sizeof ip);
        strbuf_addf(&lines, "%s %s %s\n", l[i].vm, l[i].mac, ip);
        strbuf_addf(&dhcp, "%s,%s,%s\n", l[i].mac, ip, l[i].vm);
        strbuf_addf(&hosts, "%s %s %s.qvm\n", ip, l[i].vm, l[i].vm);
    }
    const char *names[] = { "leases", "dhcp-hosts", "hosts" };
    struct strbuf *bufs[] = { &lines, &dhcp, &hosts };
    int r = 0;
    for (size_t i = 0; i < 3 && r == 0; i++) {
        char *path = xasprintf("%s/%s", n->dir, names[i]);
        r = qvm_write_file_atomic(path, bufs[i]->buf, bufs[i]->len, 0644, err);
        free(path);
    }
    strbuf_release(&lines);
    strbuf_release(&dhcp);
    strbuf_release(&hosts);
    if (r == 0)
        qvm_net_dhcp_reload(n);
    return r;
}

static int lock_net(struct qvm_ctx *ctx, const char *name, struct qvm_error *err)
{
    return qvm_lock_object(ctx->paths.lock_dir, "net", name, true, err);
}


/* The lease of VM with MAC on N; the caller holds N's lock. */
static int lease_locked(const struct qvm_network *n, const char *vm, const char *mac, char *ip,
                        struct qvm_error *err)
{
    struct lease *l;
    size_t nl;
    int r = leases_read(n, &l, &nl, err);
    size_t found = nl;
    for (size_t i = 0; r == 0 && i < nl; i++)
        if (strcmp(l[i].vm, vm) == 0)
            found = i;
    if (r == 0 && found < nl && strcmp(l[found].mac, mac) == 0) {
        qvm_net_format_ip(l[found].ip, ip, 16);
        free(l);
        return 0;
    }
    if (r == 0 && found == nl) {
        /* Hosts are gateway+1 .. broadcast-1; start where the name hashes
         * to, so a VM tends to get the same address on a rebuilt network. */
        uint32_t hosts = (1u << (32 - n->prefix)) - 3, pick = 0;
        uint32_t start = qvm_fnv1a(QVM_FNV1A_INIT, vm) % hosts;
        for (uint32_t k = 0; k < hosts && !pick; k++) {
            uint32_t cand = n->gateway + 1 + (start + k) % hosts;
            bool used = false;
            for (size_t i = 0; i < nl && !used; i++)
                used = l[i].ip == cand;
            if (!used)
                pick = cand;
        }
        if (!pick) {
            r = qvm_err(err, ENOSPC, "network '%s' has no free address left", n->name);
        } else {
            l = xrealloc(l, (nl + 1) * sizeof *l);
            memset(&l[nl], 0, sizeof l[nl]);
            snprintf(l[nl].vm, sizeof l[nl].vm, "%s", vm);
            l[nl].ip = pick;
            nl++;
        }
    }
    if (r == 0) {
        snprintf(l[found].mac, sizeof l[found].mac, "%s", mac);
        qvm_net_format_ip(l[found].ip, ip, 16);
        r = leases_write(n, l, nl, err);
    }
    free(l);
    return r;
}

int qvm_net_lease(struct qvm_ctx *ctx, const struct qvm_network *n, const char *vm,
                  const char *mac, char *ip, struct qvm_error *err)
{
    int lock = lock_net(ctx, n->name, err);
    if (lock < 0)
        return lock;
    int r = lease_locked(n, vm, mac, ip, err);
    qvm_unlock(lock);
    return r;
}

bool qvm_net_lease_of(const struct qvm_network *n, const char *vm, char *ip)
{
    struct lease *l;
    size_t nl;
    bool found = false;
    if (leases_read(n, &l, &nl, NULL) < 0)
        return false;
    for (size_t i = 0; i < nl; i++)
        if (strcmp(l[i].vm, vm) == 0) {
            qvm_net_format_ip(l[i].ip, ip, 16);
            found = true;
        }
    free(l);
    return found;
}

int qvm_net_leased_vms(const struct qvm_network *n, char ***ret, size_t *ret_n,
                       struct qvm_error *err)
{
    struct lease *l;
    size_t nl;
    *ret = NULL;
    *ret_n = 0;
    int r = leases_read(n, &l, &nl, err);
    if (r < 0)
        return r;
    *ret = xcalloc(nl ? nl : 1, sizeof **ret);
    for (size_t i = 0; i < nl; i++)
        (*ret)[(*ret_n)++] = xstrdup(l[i].vm);
    free(l);
    return 0;
}

/* Drops VM's leases on every network but those in KEEP (NKEEP names). Goes
 * through every network; returns the first error. */
static int forget_vm_except(struct qvm_ctx *ctx, const char *vm, const char *const *keep,
                            size_t nkeep, struct qvm_error *err)
{
    char **names;
    size_t nn;
    int r = qvm_net_list_names(ctx, &names, &nn, err);
    for (size_t i = 0; i < nn; i++) {
        bool kept = false;
        for (size_t k = 0; k < nkeep && !kept; k++)
            kept = strcmp(keep[k], names[i]) == 0;
        struct qvm_network n;
        struct qvm_error e = { 0 };
        int rr = kept ? 0 : qvm_net_load(ctx, names[i], &n, &e);
        if (!kept && rr == 0) {
            int lock = lock_net(ctx, n.name, &e);
            struct lease *l = NULL;
            size_t nl = 0, k = 0;
            rr = lock < 0 ? lock : leases_read(&n, &l, &nl, &e);
            for (size_t j = 0; rr == 0 && j < nl; j++)
                if (strcmp(l[j].vm, vm) != 0)
                    l[k++] = l[j];
            if (rr == 0 && k != nl)
                rr = leases_write(&n, l, k, &e);
            free(l);
            if (lock >= 0)
                qvm_unlock(lock);
            qvm_net_release(&n);
        }
        if (rr < 0 && r == 0)
            r = qvm_err(err, -rr, "%s", e.msg);
        free(names[i]);
    }
    free(names);
    return r;
}

int qvm_net_forget_vm(struct qvm_ctx *ctx, const char *vm, struct qvm_error *err)
{
    return forget_vm_except(ctx, vm, NULL, 0, err);
}

/* ---- create, up, down, remove -------------------------------------------------- */

void qvm_net_status(struct qvm_ctx *ctx, const struct qvm_network *n, struct qvm_net_status *st)
{
    memset(st, 0, sizeof *st);
    st->bridge = qvm_net_link_exists(n->bridge);
    st->nat = qvm_net_nat_exists(n->name);
    qvm_net_dhcp_pids(n, &st->supervisor, &st->dnsmasq);
    struct lease *l;
    if (leases_read(n, &l, &st->leases, NULL) == 0)
        free(l);
    (void)ctx;
}

/* FAULTS: the fault points of the failure tests (net create only; a
 * rollback's own net_up must not stop at them). */
static int up_steps(struct qvm_ctx *ctx, const struct qvm_network *n, bool faults,
                    struct qvm_error *err)
{
    int r = qvm_net_dhcp_check(n, err);
    if (r == 0)
        r = qvm_net_bridge_up(n, err);
    if (r == 0 && faults)
        r = qvm_fault_point("net-bridge-up", err);
    if (r == 0)
        r = qvm_net_forwarding_on(ctx, err);
    if (r == 0)
        r = qvm_net_nat_up(n, err);
    if (r == 0 && faults)
        r = qvm_fault_point("net-nat-up", err);
    if (r == 0)
        r = qvm_net_dhcp_start(ctx, n, err);
    if (r == 0 && faults)
        r = qvm_fault_point("net-dhcp-up", err);
    return r;
}

int qvm_net_up(struct qvm_ctx *ctx, const struct qvm_network *n, struct qvm_error *err)
{
    return up_steps(ctx, n, false, err);
}

int qvm_net_start(struct qvm_ctx *ctx, const char *name, struct qvm_error *err)
{
    int r = qvm_net_name_check(name, err);
    int lock = r < 0 ? r : lock_net(ctx, name, err);
    if (lock < 0)
        return lock;
    struct qvm_network n;
    r = qvm_net_load(ctx, name, &n, err);
    if (r == 0)
        r = qvm_net_up(ctx, &n, err);
    qvm_net_release(&n);
    qvm_unlock(lock);
    return r;
}

/* Whether another network than EXCEPT is still there (forwarding stays on). */
static bool others_left(struct qvm_ctx *ctx, const char *except)
{
    char **names;
    size_t nn;
    bool left = false;
    if (qvm_net_list_names(ctx, &names, &nn, NULL) < 0)
        return true;
    for (size_t i = 0; i < nn; i++) {
        if (strcmp(names[i], except) != 0)
            left = true;
        free(names[i]);
    }
    free(names);
    return left;
}

void qvm_net_down(struct qvm_ctx *ctx, const char *name, struct strbuf *failed)
{
    struct qvm_error e = { 0 };
    char *dir = net_dir(ctx, name);
    char *bridge = xasprintf("qvm-%s", name);
    qvm_net_dhcp_stop(dir);
    if (qvm_net_nat_down(name, &e) < 0 && failed)
        strbuf_addf(failed, "\n  the nftables table qvm-%s was not removed (%s)", name, e.msg);
    if (qvm_net_bridge_down(bridge, &e) < 0 && failed)
        strbuf_addf(failed, "\n  bridge %s was not removed (%s)", bridge, e.msg);
    if (!others_left(ctx, name))
        qvm_net_forwarding_restore(ctx, failed);
    free(bridge);
    free(dir);
}

/* The first 10.200.N.0/24 that neither the host nor another network uses.
 * Other networks are read once and checked first: they are cheap, and only a
 * candidate they leave free costs the look at the host's addresses and routes. */
static int pick_subnet(struct qvm_ctx *ctx, uint32_t *ret, struct qvm_error *err)
{
    char **names;
    size_t nn;
    int r = qvm_net_list_names(ctx, &names, &nn, err);
    if (r < 0)
        return r;
    struct { uint32_t net, mask; } *used = xcalloc(nn ? nn : 1, sizeof *used);
    size_t nused = 0;
    for (size_t i = 0; i < nn; i++) {
        struct qvm_network o;
        if (qvm_net_load(ctx, names[i], &o, NULL) == 0) {
            uint32_t mask = 0xffffffffu << (32 - (o.prefix < 24 ? o.prefix : 24));
            used[nused].mask = mask;
            used[nused++].net = o.subnet & mask;
            qvm_net_release(&o);
        }
        free(names[i]);
    }
    free(names);
    r = qvm_err(err, EADDRNOTAVAIL, "no free subnet in 10.200.0.0/16: give one with --subnet");
    for (uint32_t k = 0; k < 256; k++) {
        uint32_t cand = (10u << 24) | (200u << 16) | (k << 8);
        bool taken = false;
        for (size_t i = 0; i < nused && !taken; i++)
            taken = (cand & used[i].mask) == used[i].net;
        char what[128];
        if (!taken && !qvm_net_overlaps_host(cand, 24, what, sizeof what)) {
            *ret = cand;
            qvm_err_clear(err);
            r = 0;
            break;
        }
    }
    free(used);
    return r;
}

static int check_subnet_free(struct qvm_ctx *ctx, uint32_t subnet, unsigned prefix,
                             struct qvm_error *err)
{
    char what[160], text[40];
    struct qvm_network probe = { .subnet = subnet, .prefix = prefix };
    qvm_net_format_subnet(&probe, text, sizeof text);
    char **names;
    size_t nn;
    int r = qvm_net_list_names(ctx, &names, &nn, err);
    for (size_t i = 0; i < nn; i++) {
        struct qvm_network o;
        if (r == 0 && qvm_net_load(ctx, names[i], &o, NULL) == 0) {
            unsigned p = o.prefix < prefix ? o.prefix : prefix;
            uint32_t mask = 0xffffffffu << (32 - p);
            if ((o.subnet & mask) == (subnet & mask)) {
                char other[40];
                qvm_net_format_subnet(&o, other, sizeof other);
                r = qvm_err(err, EADDRINUSE, "subnet %s overlaps network '%s' (%s)", text, o.name,
                            other);
            }
            qvm_net_release(&o);
        }
        free(names[i]);
    }
    free(names);
    /* Other qvm networks first: their bridges are host addresses too, and
     * the network is the better name for the conflict. */
    if (r == 0 && qvm_net_overlaps_host(subnet, prefix, what, sizeof what))
        r = qvm_err(err, EADDRINUSE, "subnet %s overlaps the host's %s", text, what);
    return r;
}

int qvm_net_create(struct qvm_ctx *ctx, const char *name, const char *subnet_text,
                   struct qvm_error *err)
{
    int r = qvm_net_name_check(name, err);
    if (r < 0)
        return r;
    uint32_t subnet = 0;
    unsigned prefix = 24;
    if (subnet_text)
        r = qvm_net_parse_subnet(subnet_text, &subnet, &prefix, err);
    if (r < 0)
        return r;
    char *bridge = xasprintf("qvm-%s", name);
    bool bridge_taken = qvm_net_link_exists(bridge);
    free(bridge);
    if (qvm_net_exists(ctx, name))
        return qvm_err(err, EEXIST, "network '%s' exists", name);
    if (bridge_taken)
        return qvm_err(err, EEXIST, "an interface named qvm-%s exists already (not a qvm network: "
                       "remove it or choose another name)", name);

    /* One create, rm or start at a time on a network; checked again under
     * the lock. */
    int lock = lock_net(ctx, name, err);
    if (lock < 0)
        return lock;
    if (qvm_net_exists(ctx, name) || qvm_net_link_exists(n_bridge_name(name))) {
        qvm_unlock(lock);
        return qvm_err(err, EEXIST, "network '%s' exists", name);
    }
    struct qvm_journal *j = NULL;
    r = qvm_journal_begin(ctx, "net-create", "net", name, &j, err);
    if (r < 0) {
        qvm_unlock(lock);
        return r;
    }
    /* The subnet is checked under the lock's journal, after any earlier
     * half-done create was rolled back. */
    r = subnet_text ? check_subnet_free(ctx, subnet, prefix, err) : pick_subnet(ctx, &subnet, err);
    char *parent = xasprintf("%s/networks", ctx->paths.state_dir);
    char *dir = net_dir(ctx, name);
    struct qvm_network n = { .name = xstrdup(name), .bridge = xasprintf("qvm-%s", name),
                             .subnet = subnet, .prefix = prefix, .gateway = subnet + 1, .dir = dir };
    if (r == 0)
        r = qvm_mkdir_p(parent, 0755, err);
    if (r == 0)
        r = qvm_journal_undo_rm_rf(j, dir, err);
    if (r == 0)
        r = qvm_journal_undo_net_down(j, name, err);
    if (r == 0)
        r = qvm_mkdir_p(dir, 0755, err);
    if (r == 0)
        r = leases_write(&n, NULL, 0, err);
    if (r == 0) {
        /* The definition first: the supervisor started below reads it. */
        char text[40];
        qvm_net_format_subnet(&n, text, sizeof text);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "format", json_object_new_int(1));
        json_object_object_add(o, "name", json_object_new_string(name));
        json_object_object_add(o, "subnet", json_object_new_string(text));
        json_object_object_add(o, "bridge", json_object_new_string(n.bridge));
        const char *js = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
        char *path = xasprintf("%s/net.json", dir);
        r = qvm_write_file_atomic(path, js, strlen(js), 0644, err);
        free(path);
        json_object_put(o);
    }
    if (r == 0)
        r = qvm_fault_point("net-defined", err);
    if (r == 0)
        r = up_steps(ctx, &n, true, err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
    } else {
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    free(parent);
    qvm_net_release(&n);
    qvm_unlock(lock);
    return r;
}

int qvm_net_remove(struct qvm_ctx *ctx, const char *name, struct qvm_error *err)
{
    struct qvm_network n;
    int r = qvm_net_name_check(name, err);
    int lock = r < 0 ? r : lock_net(ctx, name, err);
    if (lock < 0)
        return lock;
    r = qvm_net_load(ctx, name, &n, err);
    if (r < 0) {
        qvm_unlock(lock);
        return r;
    }
    struct qvm_journal *j = NULL;
    r = qvm_journal_begin(ctx, "net-rm", "net", name, &j, err);
    char **users = NULL;
    size_t nu = 0;
    if (r == 0)
        r = qvm_net_users(ctx, name, &users, &nu, err);
    if (r == 0 && nu) {
        struct strbuf sb = STRBUF_INIT;
        for (size_t i = 0; i < nu; i++)
            strbuf_addf(&sb, "%s%s", i ? ", " : "", users[i]);
        r = qvm_err(err, EBUSY, "network '%s' is in use by VM%s %s (change their network or "
                    "remove them first)", name, nu == 1 ? "" : "s", sb.buf);
        strbuf_release(&sb);
    }
    for (size_t i = 0; i < nu; i++)
        free(users[i]);
    free(users);
    /* Out of sight first (the network no longer exists once net.json is
     * gone), then the host side; the trash is removed with the journal. */
    char *json = xasprintf("%s/net.json", n.dir), *json_trash = xasprintf("%s/net.json.rm", n.dir);
    /* Undone in reverse: the definition comes back first, then the host side. */
    if (r == 0)
        r = qvm_journal_undo_net_up(j, name, err);
    if (r == 0)
        r = qvm_journal_undo_rename(j, json, json_trash, err);
    if (r == 0 && rename(json, json_trash) < 0)
        r = qvm_err_errno(err, errno, "cannot remove %s", json);
    if (r == 0)
        r = qvm_fault_point("net-undefined", err);
    if (r == 0) {
        struct strbuf failed = STRBUF_INIT;
        qvm_net_down(ctx, name, &failed);
        if (failed.len)
            r = qvm_err(err, EIO, "network '%s' was not taken down:%s", name, failed.buf);
        strbuf_release(&failed);
    }
    if (r == 0)
        r = qvm_fault_point("net-down", err);
    if (r == 0)
        r = qvm_rm_rf(n.dir, err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
    } else if (j) {
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    free(json);
    free(json_trash);
    qvm_net_release(&n);
    qvm_unlock(lock);
    return r;
}

/* ---- VMs on networks ------------------------------------------------------------ */

void qvm_net_close_fds(int fds[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

int qvm_net_check_spec(struct qvm_ctx *ctx, const struct qvm_vm_spec *s, struct qvm_error *err)
{
    for (size_t i = 0; i < qvm_spec_nic_count(s); i++) {
        const struct qvm_net_spec *nic = qvm_spec_nic(s, i);
        for (size_t k = 0; k < i && nic->type == QVM_NET_NETWORK; k++) {
            const struct qvm_net_spec *o = qvm_spec_nic(s, k);
            if (o->type == QVM_NET_NETWORK && strcmp(o->source, nic->source) == 0 &&
                qvm_net_exists(ctx, nic->source))
                return qvm_err(err, EINVAL, "vm.network: NICs %zu and %zu are both on qvm network "
                               "'%s' (a VM has one address per network)", k, i, nic->source);
        }
        if (nic->type == QVM_NET_NETWORK && !qvm_net_exists(ctx, nic->source))
            return qvm_err(err, ENOENT, "vm.network%s: no qvm network '%s' (create it with qvm net "
                           "create %s --subnet A.B.C.0/24, or use runtime: libvirt for a libvirt "
                           "network)", i ? "[]" : "", nic->source, nic->source);
    }
    return 0;
}

/* NIC I of VM on qvm network N: up, leased, under N's lock (a start
 * racing another start or a net rm of N). */
static int prepare_nic(struct qvm_ctx *ctx, const struct qvm_vm *vm, size_t i,
                       const struct qvm_network *n, struct qvm_error *err)
{
    int lock = lock_net(ctx, n->name, err);
    if (lock < 0)
        return lock;
    char ip[16];
    int r = 0;
    if (!qvm_net_exists(ctx, n->name))
        r = qvm_err(err, ENOENT, "network '%s' was removed", n->name);
    if (r == 0)
        r = qvm_net_up(ctx, n, err);
    if (r == 0)
        r = lease_locked(n, vm->spec.name, qvm_vm_nic_mac_of(vm, i), ip, err);
    qvm_unlock(lock);
    if (r == 0)
        qvm_say(ctx->ui, "NIC %zu on network '%s' (%s, %s)", i, n->name, ip,
                qvm_vm_nic_mac_of(vm, i));
    return r;
}

/* Leases VM holds on networks none of its NICs names now (after an edit). */
static void forget_unused(struct qvm_ctx *ctx, const struct qvm_vm *vm)
{
    const char *keep[QVM_SPEC_MAX_NICS];
    size_t nkeep = 0;
    for (size_t i = 0; i < qvm_spec_nic_count(&vm->spec); i++) {
        const struct qvm_net_spec *nic = qvm_spec_nic(&vm->spec, i);
        if (nic->type == QVM_NET_NETWORK && nic->source)
            keep[nkeep++] = nic->source;
    }
    struct qvm_error e = { 0 };
    if (forget_vm_except(ctx, vm->spec.name, keep, nkeep, &e) < 0)
        qvm_warn(ctx->ui, "%s", e.msg);
}

int qvm_net_prepare_vm(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_error *err)
{
    int r = 0;
    for (size_t i = 0; i < qvm_spec_nic_count(&vm->spec) && r == 0; i++) {
        const struct qvm_net_spec *nic = qvm_spec_nic(&vm->spec, i);
        struct qvm_network n;
        if (nic->type != QVM_NET_NETWORK || !qvm_net_exists(ctx, nic->source))
            continue;           /* a libvirt network */
        r = qvm_net_load(ctx, nic->source, &n, err);
        if (r == 0)
            r = prepare_nic(ctx, vm, i, &n, err);
        qvm_net_release(&n);
    }
    if (r == 0)
        forget_unused(ctx, vm);
    return r;
}

int qvm_net_attach_vm(struct qvm_ctx *ctx, const struct qvm_vm *vm, int fds[], struct qvm_error *err)
{
    const struct qvm_vm_spec *s = &vm->spec;
    size_t count = qvm_spec_nic_count(s);
    for (size_t i = 0; i < count; i++)
        fds[i] = -1;
    int r = 0;
    for (size_t i = 0; i < count && r == 0; i++) {
        const struct qvm_net_spec *nic = qvm_spec_nic(s, i);
        if (nic->type != QVM_NET_NETWORK && nic->type != QVM_NET_BRIDGE)
            continue;
        char tap[16];
        qvm_net_tap_name(s->name, (unsigned)i, tap);
        if (nic->type == QVM_NET_BRIDGE) {
            r = qvm_net_tap_open(tap, nic->source, &fds[i], err);
            continue;
        }
        struct qvm_network n;
        r = qvm_net_load(ctx, nic->source, &n, err);
        if (r < 0)
            break;
        r = prepare_nic(ctx, vm, i, &n, err);
        if (r == 0)
            r = qvm_net_tap_open(tap, n.bridge, &fds[i], err);
        qvm_net_release(&n);
    }
    if (r < 0) {
        qvm_net_close_fds(fds, count);
        qvm_err_wrap(err, "cannot connect VM '%s' to its network", s->name);
    } else {
        forget_unused(ctx, vm);
    }
    return r;
}
