/* pools.h - the pools of this host, as /etc/qvm/qvm.conf declares them:
 *
 *   default-pool: tank
 *   pools:
 *     default: { driver: dir, path: /var/lib/qvm/pools/default }
 *     tank:    { driver: zfs, dataset: tank/qvm, mode: dataset }
 *     fast:    { driver: btrfs, path: /srv/qvm }
 *     virt:    { driver: dir, path: /srv/virt, runtime: libvirt }   (core/runtime_libvirt.h)
 *   host: { reserve: 2G, arc-share: 20%, vm-overhead: 192M, tcg-overhead: 1G }   (memory.h)
 *
 * Without a file (or without a pool named default) there is always the
 * implicit dir pool "default" under ROOT/var/lib/qvm/pools/default. */
#ifndef QVM_CORE_POOLS_H
#define QVM_CORE_POOLS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/context.h"
#include "storage/storage.h"

#define QVM_CONFIG_MAX (256u << 10)
#define QVM_MAX_POOLS 64

struct qvm_pool_config {
    char *name;
    char *driver;
    char *path;        /* dir, btrfs */
    char *dataset;     /* zfs */
    char *mode;        /* zfs: dataset (default) or zvol */
    char *runtime;     /* runtime of VMs provisioned here: qemu (default), libvirt, virt-install */
    char *runtime_uri; /* runtime-uri: the libvirt connection URI */
};

struct qvm_config {
    char *default_pool;
    /* host: {reserve, arc-share, vm-overhead, tcg-overhead}, as written (core/memory.h) */
    char *host_reserve;
    char *host_arc_share;
    char *host_vm_overhead;
    char *host_tcg_overhead;
    struct qvm_pool_config pools[QVM_MAX_POOLS];
    size_t npools;
};

/* Reads the configuration file (a missing file is an empty configuration)
 * and adds the implicit default pool. Errors name FILE:LINE:COL. */
int qvm_config_load(const struct qvm_paths *paths, struct qvm_config *ret, struct qvm_error *err);
void qvm_config_release(struct qvm_config *cfg);

/* Opens pool NAME (NULL: the default pool). */
int qvm_pool_get(struct qvm_ctx *ctx, const char *name, struct qvm_pool *ret,
                 struct qvm_error *err);

/* Opens every configured pool; pools that cannot be opened are reported
 * through the ui and skipped. */
int qvm_pools_all(struct qvm_ctx *ctx, struct qvm_pool **ret, size_t *ret_n,
                  struct qvm_error *err);
void qvm_pools_free(struct qvm_pool *pools, size_t n);

/* Declares a pool: checks its location with the driver, creates its layout,
 * and writes the configuration atomically. */
int qvm_pool_add(struct qvm_ctx *ctx, const struct qvm_pool_config *pc, bool make_default,
                 struct qvm_error *err);

/* Forgets a pool (its data stays). Refused while it holds images or VMs. */
int qvm_pool_remove(struct qvm_ctx *ctx, const char *name, struct qvm_error *err);

#endif
