/* net.h - qvm-managed networks: a Linux bridge with an address, NAT to the
 * host's other interfaces (one nftables table), and a dnsmasq that qvm
 * configures and supervises, giving each VM a static lease and a name.
 *
 * A network's state lives in STATE/networks/NAME/: net.json (its
 * definition), leases ("VM MAC IP" lines, the truth), and what is made from
 * them: dhcp-hosts (dnsmasq's --dhcp-hostsfile) and hosts ("IP VM VM.qvm",
 * dnsmasq's --addn-hosts, also read by the NSS module libnss_qvm, so the
 * host resolves VM names). The host side (bridge, nft table, forwarding,
 * the supervisor) is brought up by `net create` and again, idempotently,
 * before a VM on the network starts (after a host reboot, say). */
#ifndef QVM_CORE_NET_H
#define QVM_CORE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/context.h"
#include "spec/spec.h"
#include "util/strbuf.h"

#define QVM_NET_NAME_MAX 11      /* the bridge "qvm-NAME" fits IFNAMSIZ */

struct qvm_network {
    char *name;
    char *bridge;                /* "qvm-NAME" */
    uint32_t subnet;             /* network address, host byte order */
    unsigned prefix;             /* 16 to 29 */
    uint32_t gateway;            /* the bridge's address: the subnet's first */
    char *dir;                   /* STATE/networks/NAME */
};

/* "10.1.2.0/24" and the like. */
void qvm_net_format_subnet(const struct qvm_network *n, char *buf, size_t size);
void qvm_net_format_ip(uint32_t ip, char *buf, size_t size);

/* Parses "A.B.C.D/P" (P 16 to 29, host bits zero). */
int qvm_net_parse_subnet(const char *text, uint32_t *ret_net, unsigned *ret_prefix,
                         struct qvm_error *err);

/* Network names: [a-z0-9][a-z0-9-]*, at most QVM_NET_NAME_MAX bytes. */
int qvm_net_name_check(const char *name, struct qvm_error *err);

int qvm_net_load(struct qvm_ctx *ctx, const char *name, struct qvm_network *ret,
                 struct qvm_error *err);
bool qvm_net_exists(struct qvm_ctx *ctx, const char *name);
void qvm_net_release(struct qvm_network *n);

/* Names of all qvm networks, sorted. */
int qvm_net_list_names(struct qvm_ctx *ctx, char ***ret, size_t *ret_n, struct qvm_error *err);

/* Creates network NAME on SUBNET (NULL: the first free 10.200.N.0/24) and
 * brings it up; journaled, so a failure or kill leaves nothing. Refuses a
 * subnet that overlaps an address or route of the host or another network. */
int qvm_net_create(struct qvm_ctx *ctx, const char *name, const char *subnet,
                   struct qvm_error *err);

/* Tears network NAME down and forgets it. Refused, naming them, while VMs
 * use it (any NIC of theirs names it). */
int qvm_net_remove(struct qvm_ctx *ctx, const char *name, struct qvm_error *err);

/* The VMs whose NICs name network NAME, sorted (caller frees each and the
 * array). */
int qvm_net_users(struct qvm_ctx *ctx, const char *name, char ***ret, size_t *ret_n,
                  struct qvm_error *err);

/* Brings the host side up: bridge and address, forwarding, nft table,
 * supervisor and dnsmasq. Idempotent. */
int qvm_net_up(struct qvm_ctx *ctx, const struct qvm_network *n, struct qvm_error *err);

/* qvm_net_up of network NAME under its lock (net up, doctor --repair). */
int qvm_net_start(struct qvm_ctx *ctx, const char *name, struct qvm_error *err);

/* Takes the host side down (best effort; what could not be undone is
 * appended to FAILED). Idempotent. */
void qvm_net_down(struct qvm_ctx *ctx, const char *name, struct strbuf *failed);

/* The static lease of VM (its NIC with MAC) on N: kept if it exists (the
 * MAC updated), else the first free address from a hash of the VM's name.
 * IP (16 bytes) gets the address. dnsmasq is told to reread. */
int qvm_net_lease(struct qvm_ctx *ctx, const struct qvm_network *n, const char *vm,
                  const char *mac, char *ip, struct qvm_error *err);

/* The address leased to VM on N, if any (IP 16 bytes). */
bool qvm_net_lease_of(const struct qvm_network *n, const char *vm, char *ip);

/* The VMs holding a lease on N (caller frees each and the array). */
int qvm_net_leased_vms(const struct qvm_network *n, char ***ret, size_t *ret_n,
                       struct qvm_error *err);

/* Drops VM's leases on every network (qvm rm). */
int qvm_net_forget_vm(struct qvm_ctx *ctx, const char *vm, struct qvm_error *err);

struct qvm_net_status {
    bool bridge;                 /* the bridge exists */
    bool nat;                    /* the nft table exists */
    pid_t supervisor;            /* 0: not running */
    pid_t dnsmasq;
    size_t leases;
};
void qvm_net_status(struct qvm_ctx *ctx, const struct qvm_network *n, struct qvm_net_status *st);

struct qvm_vm;

/* Before VM starts on qvm's QEMU: for each NIC on a network or bridge,
 * brings a qvm network up and leases its address, and opens the NIC's tap
 * on the bridge. FDS[I] gets NIC I's tap fd, or -1. On failure every fd
 * opened is closed. */
int qvm_net_attach_vm(struct qvm_ctx *ctx, const struct qvm_vm *vm, int fds[], struct qvm_error *err);
void qvm_net_close_fds(int fds[], size_t n);

/* The same without taps (libvirt makes its own): each qvm network of VM's
 * NICs brought up, and the VM's lease on it made. */
int qvm_net_prepare_vm(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_error *err);

/* Checks that each NIC of type network names a qvm network (for qvm's
 * own QEMU, where there are no libvirt networks). */
int qvm_net_check_spec(struct qvm_ctx *ctx, const struct qvm_vm_spec *s, struct qvm_error *err);

/* `qvm net supervise NAME`: runs dnsmasq for N in the foreground and
 * restarts it when it dies, until SIGTERM or the network is removed.
 * SIGHUP is passed on (reread leases). Returns when done. */
int qvm_net_supervise(struct qvm_ctx *ctx, const char *name, struct qvm_error *err);

#endif
