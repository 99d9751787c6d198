/* lifecycle.c - start, stop, restart, pause, resume, rm and status of VMs.
 * Provisioning (up) is in provision.c. Every verb holds the VM's lock for
 * its whole run (monitor.h), so two qvm commands never work on one VM at
 * once and never interleave on its QMP socket (seed 003's exclusive monitor
 * access). */
#include "lifecycle.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/image.h"
#include "core/memory.h"
#include "core/monitor.h"
#include "core/net.h"
#include "core/pools.h"
#include "core/process.h"
#include "core/runtime_libvirt.h"
#include "core/snapshot.h"
#include "runtime/accel.h"
#include "runtime/qemu.h"
#include "runtime/qmp.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

/* ls does not wait long for a VM another command holds: it shows it as
 * running (busy) instead of asking QEMU for the exact state. */
#define LS_LOCK_WAIT_MS 500

static void remove_runtime_files(const struct qvm_vm *vm)
{
    unlink(vm->qmp_socket);
    unlink(vm->console_socket);
    unlink(vm->qga_socket);
    unlink(vm->vnc_socket);
    unlink(vm->pid_file);
}

int qvm_vm_start_qemu(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_journal *j,
                      struct qvm_error *err)
{
    if (qvm_vm_libvirt(vm))                     /* clone, bundle import: runtime_libvirt.h */
        return qvm_lv_start_in(ctx, vm, j, err);
    const char *accel;
    char note[256] = "";
    struct qvm_accel_probe probe = { .sysfs_root = getenv("QVM_SYSFS_ROOT") };
    int r = qvm_accel_resolve(vm->spec.accel ? vm->spec.accel : "auto", &probe, &accel, note,
                              sizeof note, err);
    if (r < 0)
        return r;
    if (note[0])
        qvm_warn(ctx->ui, "%s", note);
    r = qvm_mkdir_p(vm->run_dir, 0700, err);
    if (r < 0)
        return r;
    remove_runtime_files(vm);
    struct qvm_qemu_config cfg = {
        .spec = &vm->spec,
        .qemu_binary = ctx->qemu_binary,
        .accel = accel,
        .disk_path = vm->disk_path,
        .disk_format = vm->disk_format,
        .disk_is_block = vm->disk_is_block,
        .data_disks = vm->qemu_disks,
        .seed_path = vm->seed_path,
        .qmp_socket = vm->qmp_socket,
        .console_socket = vm->console_socket,
        .console_log = vm->console_log,
        .qga_socket = vm->qga_socket,
        .vnc_socket = vm->vnc_socket,
        .pid_file = vm->pid_file,
        .mac = vm->mac,
        .ssh_port = vm->ssh_port,
    };
    int taps[QVM_SPEC_MAX_NICS], pass[QVM_SPEC_MAX_NICS];
    size_t npass = 0, nics = qvm_spec_nic_count(&vm->spec);
    r = qvm_net_attach_vm(ctx, vm, taps, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < nics; i++) {
        if (taps[i] >= 0) {
            cfg.tap_fd[i] = 3 + (int)npass;     /* where qvm_run puts it in QEMU */
            pass[npass++] = taps[i];
        }
    }
    char **argv = qvm_qemu_argv(&cfg);
    if (j && (r = qvm_journal_undo_kill_qemu(j, vm->pid_file, err)) < 0) {
        qvm_net_close_fds(taps, nics);
        qvm_argv_free(argv);
        return r;
    }
    qvm_say(ctx->ui, "Starting QEMU (%s, %llu MiB, %u vCPU%s)", accel,
            (unsigned long long)vm->spec.memory_mib, vm->spec.vcpus, vm->spec.vcpus == 1 ? "" : "s");
    struct qvm_run_opts opts = { .timeout_ms = 60000, .pass_fds = pass, .npass_fds = npass };
    r = qvm_run((const char *const *)argv, &opts, NULL, err);
    qvm_net_close_fds(taps, nics);      /* QEMU holds them now */
    qvm_argv_free(argv);
    if (r < 0)
        return qvm_err_wrap(err, "QEMU could not start VM '%s'", vm->spec.name);
    qvm_timing_mark("qemu-daemonized");
    char status[64] = "";
    struct qvm_qmp *q;
    r = qvm_vm_qmp_open(vm, &q, err);
    if (r == 0) {
        r = qvm_vm_qmp_status(vm, q, status, sizeof status, err);
        qvm_qmp_close(q);
    }
    if (r < 0)
        return qvm_err_wrap(err, "QEMU started but its monitor did not answer");
    if (strcmp(status, "running") != 0)
        return qvm_err(err, EIO, "QEMU started but reports status '%s', not running", status);
    return 0;
}

static int lock_vm(struct qvm_ctx *ctx, const char *name, struct qvm_error *err)
{
    return qvm_vm_lock(ctx, name, -1, err);
}

/* Starts the stopped VM (lock held by the caller), journaled so a qvm
 * killed half-way leaves no QEMU behind. */
static int start_locked(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_error *err)
{
    if (qvm_vm_libvirt(vm))
        return qvm_lv_start(ctx, vm, err);      /* runtime_libvirt.h */
    struct qvm_journal *j = NULL;
    int r = qvm_journal_begin(ctx, "start", "vm", vm->spec.name, &j, err);
    if (r == 0)
        r = qvm_memory_start_qemu(ctx, vm, j, err);   /* memory admission, ZFS ARC */
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        if (r == 0)
            qvm_say(ctx->ui, "VM '%s' is running (pid %d)", vm->spec.name, (int)qvm_vm_pid(vm));
    } else if (j) {
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
        remove_runtime_files(vm);
    }
    return r;
}

int qvm_start(struct qvm_ctx *ctx, const char *name, struct qvm_error *err)
{
    struct qvm_vm vm;
    int lock = lock_vm(ctx, name, err);
    if (lock < 0)
        return lock;
    int r = qvm_vm_load(ctx, name, &vm, err);
    if (r < 0) {
        qvm_unlock(lock);
        return r;
    }
    pid_t pid = qvm_vm_pid(&vm);
    if (pid > 0)
        qvm_say(ctx->ui, "VM '%s' is already running (pid %d)", name, (int)pid);
    else
        r = start_locked(ctx, &vm, err);
    qvm_vm_release(&vm);
    qvm_unlock(lock);
    return r;
}

/* Stops the running QEMU of VM (lock held by the caller). */
static int stop_locked(struct qvm_ctx *ctx, struct qvm_vm *vm, bool force, int timeout_s,
                       struct qvm_error *err)
{
    if (qvm_vm_libvirt(vm))
        return qvm_lv_stop(ctx, vm, force, timeout_s, err);     /* runtime_libvirt.h */
    pid_t pid = qvm_vm_pid(vm);
    if (pid <= 0) {
        remove_runtime_files(vm);
        return 0;
    }
    struct qvm_qmp *q = NULL;
    struct qvm_error e = { 0 };
    if (qvm_vm_qmp_open(vm, &q, &e) < 0) {
        if (qvm_vm_pid(vm) <= 0) {     /* it died meanwhile: nothing left to stop */
            remove_runtime_files(vm);
            return 0;
        }
        qvm_warn(ctx->ui, "%s; killing QEMU (pid %d)", e.msg, (int)pid);
        q = NULL;           /* a wedged monitor: fall through to SIGKILL */
    }
    bool gone = false;
    if (q && !force) {
        /* A paused guest cannot see the power button. */
        char st[32] = "";
        if (qvm_vm_qmp_status(vm, q, st, sizeof st, &e) == 0 && strcmp(st, "paused") == 0) {
            qvm_say(ctx->ui, "VM '%s' is paused; resuming it so that it can power off",
                    vm->spec.name);
            qvm_qmp_execute(q, "cont", NULL, 5000, NULL, &e);
        }
        qvm_say(ctx->ui, "Asking VM '%s' to power off (ACPI, up to %d s)", vm->spec.name, timeout_s);
        if (qvm_qmp_execute(q, "system_powerdown", NULL, 5000, NULL, &e) == 0)
            gone = qvm_process_wait_gone(pid, timeout_s * 1000);
        if (!gone)
            qvm_say(ctx->ui, "VM '%s' did not power off in %d s; stopping it", vm->spec.name,
                    timeout_s);
    }
    if (!gone && q) {
        qvm_qmp_execute(q, "quit", NULL, 5000, NULL, &e);
        gone = qvm_process_wait_gone(pid, 10000);
    }
    if (q)
        qvm_qmp_close(q);
    if (!gone && !qvm_process_kill_wait(pid, 10000))
        return qvm_err(err, EBUSY, "QEMU process %d of VM '%s' does not exit, even after SIGKILL",
                       (int)pid, vm->spec.name);
    remove_runtime_files(vm);
    qvm_memory_settle(ctx);     /* the ZFS ARC may grow again */
    return 0;
}

/* "VM 'x' is not running", cleaning up after a QEMU that died on its own. */
static void say_not_running(struct qvm_ctx *ctx, struct qvm_vm *vm, const char *then)
{
    if (qvm_vm_qemu_exited(vm)) {
        remove_runtime_files(vm);
        qvm_say(ctx->ui, "VM '%s' is not running (its QEMU had exited; its stale runtime files "
                "are removed)%s", vm->spec.name, then);
    } else {
        qvm_say(ctx->ui, "VM '%s' is not running%s", vm->spec.name, then);
    }
}

int qvm_stop(struct qvm_ctx *ctx, const char *name, bool force, int timeout_s,
             struct qvm_error *err)
{
    struct qvm_vm vm;
    int lock = lock_vm(ctx, name, err);
    if (lock < 0)
        return lock;
    int r = qvm_vm_load(ctx, name, &vm, err);
    if (r < 0) {
        qvm_unlock(lock);
        return r;
    }
    if (qvm_vm_pid(&vm) <= 0) {
        say_not_running(ctx, &vm, "");
    } else {
        r = stop_locked(ctx, &vm, force, timeout_s, err);
        if (r == 0)
            qvm_say(ctx->ui, "VM '%s' stopped", name);
    }
    qvm_vm_release(&vm);
    qvm_unlock(lock);
    return r;
}

int qvm_restart(struct qvm_ctx *ctx, const char *name, bool force, int timeout_s,
                struct qvm_error *err)
{
    struct qvm_vm vm;
    int lock = lock_vm(ctx, name, err);
    if (lock < 0)
        return lock;
    int r = qvm_vm_load(ctx, name, &vm, err);
    if (r < 0) {
        qvm_unlock(lock);
        return r;
    }
    if (qvm_vm_pid(&vm) <= 0) {
        say_not_running(ctx, &vm, "; starting it");
    } else {
        r = stop_locked(ctx, &vm, force, timeout_s, err);
        if (r == 0)
            qvm_say(ctx->ui, "VM '%s' stopped", name);
    }
    qvm_vm_release(&vm);
    /* Read the definition again: what qvm edit changed applies now. */
    if (r == 0)
        r = qvm_vm_load(ctx, name, &vm, err);
    if (r == 0) {
        r = start_locked(ctx, &vm, err);
        qvm_vm_release(&vm);
    }
    qvm_unlock(lock);
    return r;
}

static int pause_resume(struct qvm_ctx *ctx, const char *name, bool pause, struct qvm_error *err)
{
    struct qvm_vm vm;
    int lock = lock_vm(ctx, name, err);
    if (lock < 0)
        return lock;
    int r = qvm_vm_load(ctx, name, &vm, err);
    if (r < 0) {
        qvm_unlock(lock);
        return r;
    }
    if (qvm_vm_libvirt(&vm)) {                  /* runtime_libvirt.h */
        r = qvm_lv_pause(ctx, &vm, pause, err);
        qvm_vm_release(&vm);
        qvm_unlock(lock);
        return r;
    }
    struct qvm_qmp *q = NULL;
    char st[32] = "";
    r = qvm_vm_qmp_open(&vm, &q, err);
    if (r == 0)
        r = qvm_vm_qmp_status(&vm, q, st, sizeof st, err);
    if (r == 0 && pause && strcmp(st, "paused") == 0) {
        qvm_say(ctx->ui, "VM '%s' is already paused", name);
    } else if (r == 0 && !pause && strcmp(st, "running") == 0) {
        qvm_say(ctx->ui, "VM '%s' is not paused: it is running", name);
    } else if (r == 0) {
        const char *want = pause ? "paused" : "running";
        r = qvm_vm_qmp_execute(&vm, q, pause ? "stop" : "cont", NULL, 10000, NULL, err);
        if (r == 0)
            r = qvm_vm_qmp_status(&vm, q, st, sizeof st, err);
        if (r == 0 && strcmp(st, want) != 0)
            r = qvm_err(err, EIO, "QEMU accepted '%s' but reports VM '%s' as %s, not %s",
                        pause ? "stop" : "cont", name, st, want);
        if (r == 0)
            qvm_say(ctx->ui, "VM '%s' is %s", name, want);
    }
    qvm_qmp_close(q);
    qvm_vm_release(&vm);
    qvm_unlock(lock);
    return r;
}

int qvm_pause(struct qvm_ctx *ctx, const char *name, struct qvm_error *err)
{
    return pause_resume(ctx, name, true, err);
}

int qvm_resume(struct qvm_ctx *ctx, const char *name, struct qvm_error *err)
{
    return pause_resume(ctx, name, false, err);
}

/* The bundles of a removed VM in the other pools that held its data disks.
 * Once the definition is detached they are orphans: what a crash leaves
 * here doctor --repair frees like any orphan bundle. */
static void free_other_pools(struct qvm_ctx *ctx, const struct qvm_vm *vm)
{
    const char **others;
    size_t n = qvm_vm_other_pools(vm, &others);
    for (size_t i = 0; i < n; i++) {
        struct qvm_pool pool = { 0 };
        struct qvm_error e = { 0 };
        if (qvm_pool_get(ctx, others[i], &pool, &e) < 0 ||
            pool.driver->vm_destroy(&pool, vm->spec.name, &e) < 0)
            qvm_warn(ctx->ui, "VM '%s' is removed but its data disks in pool '%s' are left (%s); "
                     "qvm doctor --repair frees them", vm->spec.name, others[i], e.msg);
        qvm_pool_release(&pool);
    }
    free(others);
}

int qvm_rm(struct qvm_ctx *ctx, const char *name, struct qvm_error *err)
{
    struct qvm_vm vm;
    int lock = lock_vm(ctx, name, err);
    if (lock < 0)
        return lock;
    int r = qvm_vm_load(ctx, name, &vm, err);
    if (r < 0) {
        qvm_unlock(lock);
        return r;
    }
    struct qvm_journal *j = NULL;
    char *detached = NULL;
    if ((r = qvm_snapshot_rm_check(ctx, &vm, err)) < 0)   /* zfs clones of its snapshots */
        goto out;
    if (qvm_vm_pid(&vm) > 0) {
        r = stop_locked(ctx, &vm, true, 0, err);
        if (r < 0)
            goto out;
    }
    /* Detaching the definition is the atomic step: once vm.json is renamed
     * the VM is gone for every other command, on every backend; what
     * follows only frees space, and doctor --repair finishes it if qvm dies
     * before it is done. */
    char *json = xasprintf("%s/vm.json", vm.bundle_dir);
    detached = xasprintf("%s/vm.json.removed", vm.bundle_dir);
    r = qvm_journal_begin(ctx, "rm", "vm", name, &j, err);
    if (r == 0 && qvm_vm_libvirt(&vm))
        r = qvm_lv_rm(ctx, &vm, j, err);        /* undefines, journaled */
    if (r == 0)
        r = qvm_journal_undo_rename(j, json, detached, err);
    if (r == 0 && rename(json, detached) < 0)
        r = qvm_err_errno(err, errno, "cannot remove VM '%s': rename of %s failed", name, json);
    free(json);
    if (r == 0)
        r = qvm_fault_point("definition-detached", err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    if (r == 0) {
        struct qvm_pool pool;
        struct qvm_error e = { 0 };
        if (qvm_pool_get(ctx, vm.pool, &pool, &e) == 0) {
            if (pool.driver->vm_destroy(&pool, name, &e) < 0)
                qvm_warn(ctx->ui, "VM '%s' is removed but its storage is left (%s); "
                         "qvm doctor --repair frees it", name, e.msg);
            qvm_pool_release(&pool);
        } else {
            qvm_warn(ctx->ui, "VM '%s' is removed but its storage is left (%s)", name, e.msg);
        }
        free_other_pools(ctx, &vm);
        qvm_rm_rf(vm.run_dir, NULL);
        if (qvm_net_forget_vm(ctx, name, &e) < 0)     /* its static leases and names */
            qvm_warn(ctx->ui, "VM '%s' is removed but its leases are left (%s)", name, e.msg);
        qvm_say(ctx->ui, "VM '%s' and its disks removed", name);
        if (vm.image)
            qvm_image_reap_retired(ctx, vm.pool, vm.image);
    }
out:
    if (j) {
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    free(detached);
    qvm_vm_release(&vm);
    qvm_unlock(lock);
    return r;
}

void qvm_status_of(struct qvm_ctx *ctx, struct qvm_vm *vm, int lock_wait_ms,
                   struct qvm_vm_status *ret)
{
    memset(ret, 0, sizeof *ret);
    ret->vm = *vm;
    memset(vm, 0, sizeof *vm);
    vm = &ret->vm;
    ret->name = xstrdup(vm->spec.name);
    ret->uptime_s = -1;
    ret->pid = qvm_vm_pid(vm);
    snprintf(ret->state, sizeof ret->state, "stopped");
    if (qvm_vm_libvirt(vm)) {                   /* libvirt's word, no monitor to ask */
        qvm_lv_state(ctx, vm, ret->state, sizeof ret->state);
        ret->pid = ret->pid > 0 ? ret->pid : 0;
        ret->uptime_s = ret->pid ? qvm_process_uptime(ret->pid) : -1;
        return;
    }
    if (ret->pid <= 0) {
        ret->pid = 0;
        ret->exited = qvm_vm_qemu_exited(vm);
        return;
    }
    ret->uptime_s = qvm_process_uptime(ret->pid);
    snprintf(ret->state, sizeof ret->state, "running");
    int lock = qvm_vm_lock(ctx, vm->spec.name, lock_wait_ms, NULL);
    if (lock < 0) {
        ret->busy = true;
        return;
    }
    struct qvm_qmp *q;
    struct qvm_error e = { 0 };
    char st[32];
    if (qvm_vm_qmp_open(vm, &q, &e) == 0) {
        if (qvm_vm_qmp_status(vm, q, st, sizeof st, &e) == 0)
            snprintf(ret->state, sizeof ret->state, "%s", st);
        qvm_qmp_close(q);
    }
    if (e.code && qvm_vm_pid(vm) <= 0) {     /* died while we asked */
        snprintf(ret->state, sizeof ret->state, "stopped");
        ret->pid = 0;
        ret->uptime_s = -1;
        ret->exited = qvm_vm_qemu_exited(vm);
    } else if (e.code) {
        qvm_warn(ctx->ui, "%s", e.msg);
        snprintf(ret->state, sizeof ret->state, "unknown");
    }
    qvm_unlock(lock);
}

int qvm_status_all(struct qvm_ctx *ctx, struct qvm_vm_status **ret, size_t *ret_n,
                   struct qvm_error *err)
{
    char **names;
    size_t n;
    *ret = NULL;
    *ret_n = 0;
    int r = qvm_vm_list_names(ctx, &names, &n, err);
    if (r < 0)
        return r;
    struct qvm_vm_status *st = xcalloc(n ? n : 1, sizeof *st);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct qvm_error e = { 0 };
        struct qvm_vm vm;
        if (qvm_vm_load(ctx, names[i], &vm, &e) < 0)
            qvm_warn(ctx->ui, "%s", e.msg);
        else
            qvm_status_of(ctx, &vm, LS_LOCK_WAIT_MS, &st[k++]);
        free(names[i]);
    }
    free(names);
    *ret = st;
    *ret_n = k;
    return 0;
}

void qvm_status_release(struct qvm_vm_status *st)
{
    free(st->name);
    st->name = NULL;
    qvm_vm_release(&st->vm);
}

void qvm_status_free(struct qvm_vm_status *st, size_t n)
{
    for (size_t i = 0; i < n; i++)
        qvm_status_release(&st[i]);
    free(st);
}
