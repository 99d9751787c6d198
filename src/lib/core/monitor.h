/* monitor.h - exclusive access to a running VM's QEMU monitor (QMP) and
 * guest agent (QGA) sockets (seed 003).
 *
 * Every conversation with either socket happens under the VM's lock
 * ("vm-NAME", util/lock.h), the same lock every verb that changes the VM
 * holds, so two qvm commands never interleave on one VM: the second waits
 * for the lock, up to the lock timeout, then fails naming the command that
 * holds it. A dead QEMU (its process gone, its socket refusing) is
 * reported at once, never waited on until a timeout. */
#ifndef QVM_CORE_MONITOR_H
#define QVM_CORE_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/context.h"
#include "core/vm.h"
#include "runtime/qmp.h"

/* Seconds a command waits for another one's hold on a VM; the environment
 * variable QVM_LOCK_TIMEOUT (seconds, 0 = do not wait) overrides it. */
#define QVM_LOCK_TIMEOUT_S 30

/* Takes the lock of VM NAME (checked with qvm_name_check), waiting up to
 * WAIT_MS (< 0: the lock timeout above). -EBUSY names the holder's command
 * line when /proc/locks tells it. Returns the lock fd; qvm_unlock it. */
int qvm_vm_lock(struct qvm_ctx *ctx, const char *name, int wait_ms, struct qvm_error *err);

/* The lock timeout in milliseconds (QVM_LOCK_TIMEOUT or the default). */
int qvm_vm_lock_timeout_ms(void);

/* The pid of VM's running QEMU, or -ESRCH with "VM 'x' is not running", or,
 * when its pid file says it should run, "QEMU of VM 'x' is not running
 * (exited)". */
int qvm_vm_running_pid(const struct qvm_vm *vm, pid_t *ret_pid, struct qvm_error *err);

/* True if VM has a pid file but no live QEMU: it died without qvm stop. */
bool qvm_vm_qemu_exited(const struct qvm_vm *vm);

/* Connects to VM's QMP socket (lock held by the caller). Fails at once if
 * QEMU is not running or its socket refuses connections. */
int qvm_vm_qmp_open(const struct qvm_vm *vm, struct qvm_qmp **ret, struct qvm_error *err);

/* Connects to VM's guest agent within TIMEOUT_MS (lock held by the caller);
 * -ESRCH at once if QEMU is gone, -ETIMEDOUT if the agent does not answer. */
int qvm_vm_qga_open(const struct qvm_vm *vm, int timeout_ms, struct qvm_qmp **ret,
                    struct qvm_error *err);

/* Runs COMMAND on VM's monitor Q (see qvm_qmp_execute). If it fails because
 * QEMU died meanwhile, the error says so. */
int qvm_vm_qmp_execute(const struct qvm_vm *vm, struct qvm_qmp *q, const char *command,
                       struct json_object *args, int timeout_ms, struct json_object **ret,
                       struct qvm_error *err);

/* QEMU's run state from query-status into BUF: "running", "paused",
 * "shutdown", "guest-panicked", ... */
int qvm_vm_qmp_status(const struct qvm_vm *vm, struct qvm_qmp *q, char *buf, size_t len,
                      struct qvm_error *err);

/* After conversation error R with VM's QEMU: if QEMU died meanwhile, makes
 * the error the dead-QEMU message. Returns R. */
int qvm_vm_qemu_gone(const struct qvm_vm *vm, int r, struct qvm_error *err);

#endif
