/* snapshot.h - snapshots of a VM's disk (seed 004): qvm snapshot, snapshot
 * ls, snapshot rm and revert; the check qvm rm makes for VMs cloned from a
 * VM's snapshots; and keeping a running guest still while its disk is
 * copied (qvm clone uses it too). The pool's driver keeps the snapshots
 * (storage.h); core keeps no list of its own. */
#ifndef QVM_CORE_SNAPSHOT_H
#define QVM_CORE_SNAPSHOT_H

#include <stddef.h>

#include "core/context.h"
#include "core/journal.h"
#include "core/vm.h"
#include "runtime/qmp.h"
#include "storage/storage.h"

/* Snapshot SNAP of VM NAME's disk. A running VM is kept still for it: its
 * file systems frozen through the guest agent if one answers, else the VM
 * paused through QMP; thawed or resumed again whatever happens. */
int qvm_snapshot_create(struct qvm_ctx *ctx, const char *name, const char *snap,
                        struct qvm_error *err);

/* The snapshots of VM NAME's disk, oldest first (qvm_snapshot_info_free). */
int qvm_snapshot_list(struct qvm_ctx *ctx, const char *name, struct qvm_snapshot_info **ret,
                      size_t *ret_n, struct qvm_error *err);

/* Removes snapshot SNAP; refused, naming them, while VMs were cloned from
 * it (zfs). */
int qvm_snapshot_remove(struct qvm_ctx *ctx, const char *name, const char *snap,
                        struct qvm_error *err);

/* Makes the disk of stopped VM NAME what snapshot SNAP holds. Every
 * snapshot, older or newer, is kept. */
int qvm_revert(struct qvm_ctx *ctx, const char *name, const char *snap, struct qvm_error *err);

/* For qvm rm: -EBUSY, naming them, while other VMs' disks depend on VM's
 * (zfs clones of its snapshots, which removing it would destroy). */
int qvm_snapshot_rm_check(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_error *err);

/* --- for core/clone.c ------------------------------------------------- */

/* Opens VM's pool into POOL and checks its driver has snapshots and
 * clones; then refuses (-EAGAIN) while a dead operation on VM is still to
 * be rolled back, and frees what finished ones left (revert_finish, and
 * snapshot_tidy if TIDY). The caller holds VM's lock. */
int qvm_snapshot_prepare_vm(struct qvm_ctx *ctx, const struct qvm_vm *vm, bool tidy,
                            struct qvm_pool *pool, struct qvm_error *err);

struct qvm_quiesce {
    enum { QVM_QUIESCE_NONE, QVM_QUIESCE_FROZEN, QVM_QUIESCE_PAUSED } how;
    struct qvm_qmp *conn;      /* the agent's or the monitor's, kept for the end */
};

/* Keeps running VM still (the undo journaled in J first): see
 * qvm_snapshot_create. Does nothing for a stopped or paused VM. The caller
 * holds VM's lock, under which both its sockets are talked to (monitor.h),
 * and calls qvm_quiesce_end whatever this returns. */
int qvm_quiesce_begin(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_journal *j,
                      struct qvm_quiesce *q, struct qvm_error *err);
int qvm_quiesce_end(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_quiesce *q,
                    struct qvm_error *err);

#endif
