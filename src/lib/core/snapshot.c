/* snapshot.c - qvm snapshot, snapshot ls, snapshot rm, revert (seed 004).
 *
 * Each verb holds the VM's lock for its whole run. Snapshot journals: the
 * guest frozen or the VM paused (undo: thaw or resume), the snapshot made
 * (undo: remove it). Revert journals one undo for its two driver steps -
 * the reverted disk prepared beside the current one, then swapped into its
 * place - which puts the disk back from wherever they got; only after the
 * commit does the driver free the disk set aside. Removing a snapshot is
 * one atomic step of the driver (a rename, a subvolume delete, a zfs
 * destroy or rename), so it needs no journal. */
#include "snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/monitor.h"
#include "core/pools.h"
#include "core/runtime_libvirt.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"

#define TASK_SNAPSHOT "taking snapshot"
#define TASK_LIST "listing snapshots"
#define TASK_REMOVE "removing snapshot"
#define TASK_REVERT "reverting virtual machine"

/* The agent answers guest-sync at once when it runs; a guest without one
 * costs this much before qvm pauses the VM instead. */
#define AGENT_CONNECT_MS 3000
/* fsfreeze syncs every file system first. */
#define FREEZE_MS 60000
#define QMP_MS 10000

/* ------------------------------------------------------------- helpers */

/* 1 if a journal no live process holds names VM NAME in its locks. */
static bool dead_journal_for(struct qvm_ctx *ctx, const char *name)
{
    char **paths = NULL;
    size_t n = 0;
    if (qvm_journal_list_stale(ctx, &paths, &n, NULL) < 0)
        return false;
    char *want = xasprintf("vm-%s", name);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        char *text = NULL;
        size_t len;
        if (!found && qvm_read_file(paths[i], 1u << 20, &text, &len, NULL) == 0) {
            char *nl = strchr(text, '\n');
            if (nl)
                *nl = '\0';
            json_object *h = json_tokener_parse(text);
            json_object *v;
            for (int k = 0; h && k < 2 && !found; k++)
                found = json_object_object_get_ex(h, k ? "lock2" : "lock", &v) &&
                        !strcmp(json_object_get_string(v), want);
            json_object_put(h);
        }
        free(text);
        free(paths[i]);
    }
    free(paths);
    free(want);
    return found;
}

int qvm_snapshot_prepare_vm(struct qvm_ctx *ctx, const struct qvm_vm *vm, bool tidy,
                            struct qvm_pool *pool, struct qvm_error *err)
{
    const char *name = vm->spec.name;
    int r = qvm_pool_get(ctx, vm->pool, pool, err);
    if (r < 0)
        return r;
    const struct qvm_storage_driver *d = pool->driver;
    if (!d->snapshot_create || !d->snapshot_list || !d->snapshot_destroy || !d->vm_disk_clone)
        r = qvm_err(err, ENOTSUP, "pool '%s' (%s) has no snapshots or clones", pool->name, d->name);
    /* The journals were rolled back before our lock was taken; one whose
     * writer died since would be rolled back by the next command. Until
     * then, what it left must not be taken for a finished operation's. */
    if (r == 0 && dead_journal_for(ctx, name))
        r = qvm_err(err, EAGAIN, "an interrupted operation on VM '%s' is not rolled back yet; "
                    "run the command again (qvm rolls it back first)", name);
    if (r == 0 && d->snapshot_revert_finish)
        r = d->snapshot_revert_finish(pool, name, vm->disk_name, err);
    if (r == 0 && tidy && d->snapshot_tidy)
        r = d->snapshot_tidy(pool, name, vm->disk_name, err);
    if (r < 0)
        qvm_pool_release(pool);
    return r;
}

/* Locks and loads VM NAME. Returns the lock fd. */
static int open_vm(struct qvm_ctx *ctx, const char *name, struct qvm_vm *vm, struct qvm_error *err)
{
    int lock = qvm_vm_lock(ctx, name, -1, err);
    if (lock < 0)
        return lock;
    int r = qvm_vm_load(ctx, name, vm, err);
    if (r < 0) {
        qvm_unlock(lock);
        return r;
    }
    return lock;
}

/* "s1, s2" or "none" */
static char *list_names(const struct qvm_snapshot_info *v, size_t n)
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < n; i++)
        strbuf_addf(&sb, "%s%s", i ? ", " : "", v[i].name);
    if (!n)
        strbuf_addstr(&sb, "none");
    return strbuf_detach(&sb, NULL);
}

/* 1 if VM has snapshot SNAP, 0 if not (then ERR, when MISSING_IS_ERROR,
 * says which it has). */
static int has_snapshot(const struct qvm_pool *pool, const struct qvm_vm *vm, const char *snap,
                        bool missing_is_error, struct qvm_error *err)
{
    struct qvm_snapshot_info *v;
    size_t n;
    int r = pool->driver->snapshot_list(pool, vm->spec.name, vm->disk_name, &v, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n && r == 0; i++)
        r = !strcmp(v[i].name, snap);
    if (r == 0 && missing_is_error) {
        char *names = list_names(v, n);
        r = qvm_err(err, ENOENT, "VM '%s' has no snapshot '%s' (its snapshots: %s)",
                    vm->spec.name, snap, names);
        free(names);
    }
    qvm_snapshot_info_free(v, n);
    return r;
}

/* ------------------------------------------------------------- quiesce */

int qvm_quiesce_begin(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_journal *j,
                      struct qvm_quiesce *q, struct qvm_error *err)
{
    const char *name = vm->spec.name;
    memset(q, 0, sizeof *q);
    if (qvm_vm_pid(vm) <= 0)
        return 0;
    if (qvm_vm_libvirt(vm))                     /* through libvirt: runtime_libvirt.h */
        return qvm_lv_quiesce_begin(ctx, vm, j, q, err);
    /* The agent first: frozen file systems are consistent for the guest's
     * own applications too, and the VM keeps running. */
    struct qvm_error e = { 0 };
    if (qvm_vm_qga_open(vm, AGENT_CONNECT_MS, &q->conn, &e) == 0) {
        int r = qvm_journal_undo_guest_thaw(j, vm->qga_socket, vm->pid_file, err);
        if (r < 0) {
            qvm_qmp_close(q->conn);
            q->conn = NULL;
            return r;
        }
        json_object *ret = NULL;
        if (qvm_vm_qmp_execute(vm, q->conn, "guest-fsfreeze-freeze", NULL, FREEZE_MS, &ret,
                               &e) == 0) {
            q->how = QVM_QUIESCE_FROZEN;
            qvm_say(ctx->ui, "Froze the file systems of VM '%s' (%d, through the guest agent)",
                    name, ret ? json_object_get_int(ret) : 0);
            json_object_put(ret);
            return qvm_fault_point("guest-frozen", err);
        }
        qvm_say(ctx->ui, "The guest agent of VM '%s' could not freeze its file systems (%s); "
                "pausing the VM instead", name, e.msg);
        qvm_qmp_execute(q->conn, "guest-fsfreeze-thaw", NULL, FREEZE_MS, NULL, NULL);
        qvm_qmp_close(q->conn);
        q->conn = NULL;
    }
    int r = qvm_vm_qmp_open(vm, &q->conn, err);
    char status[64] = "";
    if (r == 0)
        r = qvm_vm_qmp_status(vm, q->conn, status, sizeof status, err);
    if (r == 0 && strcmp(status, "running") != 0) {
        /* Paused (by qvm pause) or stopped by the guest: nothing writes. */
        qvm_say(ctx->ui, "VM '%s' is %s: its disk is not being written", name, status);
    } else if (r == 0) {
        r = qvm_journal_undo_vm_resume(j, vm->qmp_socket, vm->pid_file, err);
        if (r == 0)
            r = qvm_vm_qmp_execute(vm, q->conn, "stop", NULL, QMP_MS, NULL, err);
        if (r == 0) {
            q->how = QVM_QUIESCE_PAUSED;
            qvm_say(ctx->ui, "Paused VM '%s' (no guest agent answered)", name);
        }
    }
    if (q->how != QVM_QUIESCE_PAUSED && q->conn) {
        qvm_qmp_close(q->conn);
        q->conn = NULL;
    }
    if (r < 0)
        return qvm_err_wrap(err, "cannot pause VM '%s' for a consistent copy of its disk", name);
    return q->how == QVM_QUIESCE_PAUSED ? qvm_fault_point("vm-paused", err) : 0;
}

int qvm_quiesce_end(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_quiesce *q,
                    struct qvm_error *err)
{
    if (qvm_vm_libvirt(vm))
        return qvm_lv_quiesce_end(ctx, vm, q, err);
    int r = 0;
    if (q->how == QVM_QUIESCE_FROZEN) {
        r = qvm_vm_qmp_execute(vm, q->conn, "guest-fsfreeze-thaw", NULL, FREEZE_MS, NULL, err);
        if (r < 0)
            qvm_err_wrap(err, "the file systems of VM '%s' could not be thawed", vm->spec.name);
        else
            qvm_say(ctx->ui, "Thawed the file systems of VM '%s'", vm->spec.name);
    } else if (q->how == QVM_QUIESCE_PAUSED) {
        r = qvm_vm_qmp_execute(vm, q->conn, "cont", NULL, QMP_MS, NULL, err);
        if (r < 0)
            qvm_err_wrap(err, "VM '%s' could not be resumed (qvm resume %s)", vm->spec.name,
                         vm->spec.name);
        else
            qvm_say(ctx->ui, "Resumed VM '%s'", vm->spec.name);
    }
    if (q->conn)
        qvm_qmp_close(q->conn);
    memset(q, 0, sizeof *q);
    return r;
}

/* ---------------------------------------------------------------- verbs */

/* Rolls J back (if not NULL), adding to ERR what could not be undone. */
static void rollback(struct qvm_ctx *ctx, struct qvm_journal *j, struct qvm_error *err)
{
    if (!j)
        return;
    qvm_say(ctx->ui, "Rolling back");
    struct qvm_error rb = { 0 };
    if (qvm_journal_rollback(j, &rb) < 0)
        qvm_err_wrap(err, "%s; also", rb.msg);
}

int qvm_snapshot_create(struct qvm_ctx *ctx, const char *name, const char *snap,
                        struct qvm_error *err)
{
    struct qvm_vm vm;
    struct qvm_pool pool = { 0 };
    struct qvm_journal *j = NULL;
    struct qvm_quiesce q = { 0 };
    int r = qvm_name_check("snapshot", snap, err);
    if (r < 0)
        return qvm_err_task(err, TASK_SNAPSHOT);
    int lock = open_vm(ctx, name, &vm, err);
    if (lock < 0)
        return qvm_err_task(err, TASK_SNAPSHOT);
    r = qvm_vm_single_disk(&vm, "snapshots", err);
    if (r == 0)
        r = qvm_snapshot_prepare_vm(ctx, &vm, false, &pool, err);
    bool opened = r == 0;
    if (r == 0 && (r = has_snapshot(&pool, &vm, snap, false, err)) > 0)
        r = qvm_err(err, EEXIST, "VM '%s' already has a snapshot '%s'", name, snap);
    if (r == 0)
        r = qvm_journal_begin(ctx, "snapshot", "vm", name, &j, err);
    if (r == 0)
        r = qvm_quiesce_begin(ctx, &vm, j, &q, err);
    if (r == 0)
        r = qvm_journal_undo_snapshot_destroy(j, pool.name, name, vm.disk_name, snap, err);
    if (r == 0)
        r = pool.driver->snapshot_create(&pool, name, vm.disk_name, snap, err);
    if (r == 0)
        r = qvm_fault_point("snapshot-created", err);
    const char *how = q.how == QVM_QUIESCE_FROZEN ? ", file systems frozen"
                    : q.how == QVM_QUIESCE_PAUSED ? ", VM paused" : "";
    struct qvm_error e = { 0 };
    if (qvm_quiesce_end(ctx, &vm, &q, r == 0 ? err : &e) < 0 && r == 0)
        r = -EIO;
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    rollback(ctx, j, err);
    if (r == 0)
        qvm_say(ctx->ui, "Snapshot '%s' of VM '%s' taken (%s pool '%s'%s)", snap, name,
                pool.driver->name, pool.name, how);
    if (opened)
        qvm_pool_release(&pool);
    qvm_vm_release(&vm);
    qvm_unlock(lock);
    return r < 0 ? qvm_err_task(err, TASK_SNAPSHOT) : 0;
}

int qvm_snapshot_list(struct qvm_ctx *ctx, const char *name, struct qvm_snapshot_info **ret,
                      size_t *ret_n, struct qvm_error *err)
{
    struct qvm_vm vm;
    struct qvm_pool pool;
    *ret = NULL;
    *ret_n = 0;
    /* Read-only and without the VM's lock: the drivers make and remove
     * snapshots in one visible step each, so a listing sees them whole. */
    int r = qvm_vm_load(ctx, name, &vm, err);
    if (r < 0)
        return qvm_err_task(err, TASK_LIST);
    r = qvm_pool_get(ctx, vm.pool, &pool, err);
    if (r == 0) {
        if (!pool.driver->snapshot_list)
            r = qvm_err(err, ENOTSUP, "pool '%s' (%s) has no snapshots", pool.name,
                        pool.driver->name);
        else
            r = pool.driver->snapshot_list(&pool, name, vm.disk_name, ret, ret_n, err);
        qvm_pool_release(&pool);
    }
    qvm_vm_release(&vm);
    return r < 0 ? qvm_err_task(err, TASK_LIST) : 0;
}

int qvm_snapshot_remove(struct qvm_ctx *ctx, const char *name, const char *snap,
                        struct qvm_error *err)
{
    struct qvm_vm vm;
    struct qvm_pool pool;
    int r = qvm_name_check("snapshot", snap, err);
    if (r < 0)
        return qvm_err_task(err, TASK_REMOVE);
    int lock = open_vm(ctx, name, &vm, err);
    if (lock < 0)
        return qvm_err_task(err, TASK_REMOVE);
    r = qvm_snapshot_prepare_vm(ctx, &vm, false, &pool, err);
    if (r == 0) {
        r = has_snapshot(&pool, &vm, snap, true, err);
        if (r > 0)
            r = pool.driver->snapshot_destroy(&pool, name, vm.disk_name, snap, err);
        if (r == 0)
            qvm_say(ctx->ui, "Snapshot '%s' of VM '%s' removed", snap, name);
        qvm_pool_release(&pool);
    }
    qvm_vm_release(&vm);
    qvm_unlock(lock);
    return r < 0 ? qvm_err_task(err, TASK_REMOVE) : 0;
}

int qvm_revert(struct qvm_ctx *ctx, const char *name, const char *snap, struct qvm_error *err)
{
    struct qvm_vm vm;
    struct qvm_pool pool = { 0 };
    struct qvm_journal *j = NULL;
    int r = qvm_name_check("snapshot", snap, err);
    if (r < 0)
        return qvm_err_task(err, TASK_REVERT);
    int lock = open_vm(ctx, name, &vm, err);
    if (lock < 0)
        return qvm_err_task(err, TASK_REVERT);
    bool opened = false;
    if (qvm_vm_pid(&vm) > 0)
        r = qvm_err(err, EBUSY, "VM '%s' is running; stop it first (qvm stop %s): a revert "
                    "replaces the disk under the guest", name, name);
    if (r == 0)
        r = qvm_vm_single_disk(&vm, "reverts", err);
    if (r == 0)
        r = qvm_snapshot_prepare_vm(ctx, &vm, true, &pool, err);
    opened = r == 0;
    const struct qvm_storage_driver *d = opened ? pool.driver : NULL;
    if (r == 0 && (!d->snapshot_revert_prepare || !d->snapshot_revert_swap ||
                   !d->snapshot_revert_undo))
        r = qvm_err(err, ENOTSUP, "pool '%s' (%s) cannot revert disks", pool.name, d->name);
    if (r == 0 && (r = has_snapshot(&pool, &vm, snap, true, err)) > 0)
        r = 0;
    if (r == 0)
        r = qvm_journal_begin(ctx, "revert", "vm", name, &j, err);
    if (r == 0)
        r = qvm_journal_undo_revert(j, pool.name, name, vm.disk_name, err);
    if (r == 0)
        r = d->snapshot_revert_prepare(&pool, name, vm.disk_name, snap, err);
    if (r == 0)
        r = qvm_fault_point("revert-prepared", err);
    if (r == 0)
        r = d->snapshot_revert_swap(&pool, name, vm.disk_name, err);
    if (r == 0)
        r = qvm_fault_point("disk-swapped", err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    rollback(ctx, j, err);
    if (r == 0) {
        /* Committed: what was set aside goes now, or before the next
         * revert if this fails. */
        struct qvm_error e = { 0 };
        if (d->snapshot_revert_finish &&
            d->snapshot_revert_finish(&pool, name, vm.disk_name, &e) < 0)
            qvm_warn(ctx->ui, "VM '%s' is reverted, but the disk it had is not freed yet (%s); "
                     "the next snapshot command on it frees it", name, e.msg);
        qvm_say(ctx->ui, "VM '%s' reverted to snapshot '%s'; every snapshot is kept", name, snap);
    }
    if (opened)
        qvm_pool_release(&pool);
    qvm_vm_release(&vm);
    qvm_unlock(lock);
    return r < 0 ? qvm_err_task(err, TASK_REVERT) : 0;
}

int qvm_snapshot_rm_check(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_error *err)
{
    struct qvm_pool pool;
    int r = qvm_pool_get(ctx, vm->pool, &pool, err);
    if (r < 0 || !pool.driver->snapshot_dependents) {
        if (r == 0)
            qvm_pool_release(&pool);
        return r;
    }
    char **v = NULL;
    size_t n = 0;
    r = pool.driver->snapshot_dependents(&pool, vm->spec.name, vm->disk_name, &v, &n, err);
    if (r == 0 && n) {
        struct strbuf sb = STRBUF_INIT;
        for (size_t i = 0; i < n; i++)
            strbuf_addf(&sb, "%s%s", i ? ", " : "", v[i]);
        r = qvm_err(err, EBUSY, "VM '%s' cannot be removed: %zu VM disk%s %s cloned from it "
                    "and depend%s on it (%s); remove %s first", vm->spec.name, n,
                    n == 1 ? "" : "s", n == 1 ? "was" : "were", n == 1 ? "s" : "", sb.buf,
                    n == 1 ? "that VM" : "those VMs");
        strbuf_release(&sb);
    }
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    qvm_pool_release(&pool);
    return r;
}
