/* lifecycle.h - provisioning and the life of a VM's QEMU process: up (the
 * whole atomic provisioning of seed 000), start, stop, rm, and status. */
#ifndef QVM_CORE_LIFECYCLE_H
#define QVM_CORE_LIFECYCLE_H

#include <stdbool.h>
#include <sys/types.h>

#include "core/context.h"
#include "core/journal.h"
#include "core/vm.h"

struct qvm_up_opts {
    bool dry_run;          /* validate everything, change nothing, say what would be done */
    bool no_start;         /* provision the bundle but do not start QEMU */
    const char *pool;      /* --pool; NULL: disk.pool or the default pool */
    const char *reuse;     /* --reuse FILE: adopt FILE as the disk instead of cloning */
    bool any_state;        /* qvm image edit: draft and deprecated versions too */
    const char *runtime;   /* --runtime qemu|libvirt|virt-install; NULL: the file's, the pool's */
};

/* Provisions the VM described by qvm file FILE. Errors from reading the file
 * are tagged with task "importing qvm file", the rest "provisioning virtual
 * machine" (see struct qvm_error's task). */
int qvm_up(struct qvm_ctx *ctx, const char *file, const struct qvm_up_opts *opts,
           struct qvm_error *err);

/* Starts QEMU for a provisioned, stopped VM. If J is given, the kill undo is
 * journaled there before QEMU starts. Returns once QMP reports "running". */
int qvm_vm_start_qemu(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_journal *j,
                      struct qvm_error *err);

int qvm_start(struct qvm_ctx *ctx, const char *name, struct qvm_error *err);

/* ACPI power-down through QMP, waiting up to TIMEOUT_S for the guest to
 * turn off, then quit, then SIGKILL. FORCE skips the power-down. A paused
 * VM is resumed first, so its guest can act on the power button. */
int qvm_stop(struct qvm_ctx *ctx, const char *name, bool force, int timeout_s,
             struct qvm_error *err);

/* qvm_stop then qvm_start under one hold of the VM lock, with the
 * definition read again in between, so edits made while it ran apply.
 * Starts a stopped VM. */
int qvm_restart(struct qvm_ctx *ctx, const char *name, bool force, int timeout_s,
                struct qvm_error *err);

/* Freezes the VM's vCPUs (QMP stop) / lets them run again (QMP cont).
 * Pausing a paused VM and resuming a running one are not errors. */
int qvm_pause(struct qvm_ctx *ctx, const char *name, struct qvm_error *err);
int qvm_resume(struct qvm_ctx *ctx, const char *name, struct qvm_error *err);

/* Stops the VM if needed and removes it with its disks. */
int qvm_rm(struct qvm_ctx *ctx, const char *name, struct qvm_error *err);

struct qvm_vm_status {
    char *name;
    char state[32];        /* "stopped", or QEMU's run state: "running", "paused", ... */
    bool exited;           /* stopped because QEMU died (a pid file was left) */
    bool busy;             /* running, but another qvm command held the monitor */
    pid_t pid;
    long uptime_s;
    struct qvm_vm vm;
};

/* The status of VM (loaded by the caller) into *RET, which takes VM over.
 * For a running VM the state comes from QMP query-status, under the VM
 * lock taken within LOCK_WAIT_MS; if that passes, the state is "running"
 * and busy is set. */
void qvm_status_of(struct qvm_ctx *ctx, struct qvm_vm *vm, int lock_wait_ms,
                   struct qvm_vm_status *ret);

int qvm_status_all(struct qvm_ctx *ctx, struct qvm_vm_status **ret, size_t *ret_n,
                   struct qvm_error *err);
void qvm_status_release(struct qvm_vm_status *st);
void qvm_status_free(struct qvm_vm_status *st, size_t n);

#endif
