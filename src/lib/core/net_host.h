/* net_host.h - the host side of a qvm network, through the system's own
 * tools (ip from iproute2, nft from nftables) with argv only: the bridge
 * and its address, IPv4 forwarding, and one nftables table per network
 * (table ip qvm-NAME: masquerade out of the subnet, forward out of the
 * bridge and the replies back in, nothing else in). */
#ifndef QVM_CORE_NET_HOST_H
#define QVM_CORE_NET_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/net.h"

bool qvm_net_link_exists(const char *ifname);

int qvm_net_bridge_up(const struct qvm_network *n, struct qvm_error *err);
int qvm_net_bridge_down(const char *bridge, struct qvm_error *err);

/* Writes N's ruleset to N->dir/nat.nft and loads it (replacing the table
 * if it exists). */
int qvm_net_nat_up(const struct qvm_network *n, struct qvm_error *err);
int qvm_net_nat_down(const char *name, struct qvm_error *err);
bool qvm_net_nat_exists(const char *name);

/* IPv4 forwarding on; the administrator's value is kept in
 * STATE/networks/.ip_forward and put back by forwarding_restore once no
 * qvm network is left. */
int qvm_net_forwarding_on(struct qvm_ctx *ctx, struct qvm_error *err);
void qvm_net_forwarding_restore(struct qvm_ctx *ctx, struct strbuf *failed);

/* A tap device IFNAME, attached to BRIDGE and up, for one NIC of a VM:
 * the fd goes to QEMU (-netdev tap,fd=N). The tap is not persistent, so it
 * disappears when the last fd, QEMU's, is closed: a VM that stops leaves no
 * tap behind. *RET_FD is close-on-exec; the caller passes it on on purpose. */
int qvm_net_tap_open(const char *ifname, const char *bridge, int *ret_fd, struct qvm_error *err);

/* The tap name of NIC INDEX of VM: "qvm" + 8 hex digits of the VM name's
 * hash + "n" + INDEX (IFNAMSIZ holds it). BUF 16 bytes. */
void qvm_net_tap_name(const char *vm, unsigned index, char *buf);

/* Whether SUBNET/PREFIX overlaps an address or a route of the host; the
 * interface or route it overlaps goes to WHAT (64 bytes). */
bool qvm_net_overlaps_host(uint32_t subnet, unsigned prefix, char *what, size_t size);

#endif
