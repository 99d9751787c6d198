/* net_dhcp.h - the dnsmasq of a qvm network and its supervisor.
 *
 * `qvm net supervise NAME` (started detached by qvm_net_dhcp_start) runs
 * dnsmasq in the foreground on the network's bridge only, restarts it when
 * it dies, passes SIGHUP on (reread leases and names) and stops it on
 * SIGTERM. It holds a lock on NET_DIR/supervisor.pid while it lives, so a
 * stale pid file is never trusted; dnsmasq's pid is in NET_DIR/dnsmasq.pid.
 * Both log to NET_DIR/dnsmasq.log. */
#ifndef QVM_CORE_NET_DHCP_H
#define QVM_CORE_NET_DHCP_H

#include <sys/types.h>

#include "core/net.h"

/* Whether dnsmasq is installed and can reach N's files once it drops to
 * its user: checked before anything of the host is changed. */
int qvm_net_dhcp_check(const struct qvm_network *n, struct qvm_error *err);

/* Starts the supervisor unless it runs; waits until dnsmasq answers (its
 * pid file names a live process) or fails with the log's last line. */
int qvm_net_dhcp_start(struct qvm_ctx *ctx, const struct qvm_network *n, struct qvm_error *err);

/* Stops the supervisor of the network in NET_DIR and its dnsmasq. */
void qvm_net_dhcp_stop(const char *net_dir);

/* Tells dnsmasq to reread dhcp-hosts and hosts (no-op when not running). */
void qvm_net_dhcp_reload(const struct qvm_network *n);

/* The live supervisor's and dnsmasq's pids, 0 when not running. */
void qvm_net_dhcp_pids(const struct qvm_network *n, pid_t *ret_supervisor, pid_t *ret_dnsmasq);

/* dnsmasq's argv for N (NULL-terminated; free with qvm_argv_free). */
char **qvm_net_dnsmasq_argv(const struct qvm_network *n, const char *user);

#endif
