/* autostart.h - VMs marked autostart (the vm document's autostart key, kept
 * in vm.json; set later with qvm autostart NAME on|off, core/edit.h): started
 * at host boot and powered off at host shutdown by the systemd unit
 * contrib/systemd/qvm-autostart.service (qvm autostart --boot/--shutdown).
 * One VM's failure never stops the others; each gets its own result. */
#ifndef QVM_CORE_AUTOSTART_H
#define QVM_CORE_AUTOSTART_H

#include <stdbool.h>
#include <stddef.h>

#include "core/context.h"
#include "util/error.h"

struct qvm_autostart_result {
    char *name;
    bool autostart;             /* the VM is marked autostart */
    bool running;               /* its QEMU runs (before the action) */
    bool acted;                 /* it was started (boot) or stopped (shutdown) */
    int r;                      /* 0, or the action's negative errno (ERR says why) */
    struct qvm_error err;
};

/* Every VM with its flag and state; no action. */
int qvm_autostart_list(struct qvm_ctx *ctx, struct qvm_autostart_result **ret, size_t *ret_n,
                       struct qvm_error *err);

/* Starts every VM marked autostart that is not running, one after the
 * other. Returns the number that failed (their results say why). */
int qvm_autostart_boot(struct qvm_ctx *ctx, struct qvm_autostart_result **ret, size_t *ret_n,
                       struct qvm_error *err);

/* Powers off every running VM marked autostart, all at once (ACPI, then
 * quit after TIMEOUT_S, as qvm stop), so the host's shutdown waits for the
 * slowest guest rather than the sum of them. Returns the number that
 * failed. */
int qvm_autostart_shutdown(struct qvm_ctx *ctx, int timeout_s,
                           struct qvm_autostart_result **ret, size_t *ret_n,
                           struct qvm_error *err);

void qvm_autostart_results_free(struct qvm_autostart_result *v, size_t n);

#endif
