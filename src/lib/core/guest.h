/* guest.h - talking to the guest through the QEMU guest agent: run a
 * command, wait for cloud-init. Each conversation with the agent holds the
 * VM lock (core/monitor.h) from connecting to the last reply; while the
 * guest boots and its agent does not answer yet, the lock is let go between
 * attempts, so a long wait does not keep stop or info out. */
#ifndef QVM_CORE_GUEST_H
#define QVM_CORE_GUEST_H

#include <stddef.h>

#include "core/context.h"

struct qvm_exec_result {
    int exit_status;
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
};

/* Runs ARGV in the guest (argv[0]: a path or a name the guest's PATH finds).
 * INPUT (may be NULL) goes to its stdin. Waits until the agent answers, up
 * to TIMEOUT_S overall. A VM that is not running, whose QEMU died, or that
 * is paused fails at once. */
int qvm_guest_exec(struct qvm_ctx *ctx, const char *name, const char *const argv[],
                   const char *input, int timeout_s, struct qvm_exec_result *ret,
                   struct qvm_error *err);
void qvm_exec_result_release(struct qvm_exec_result *res);

/* Waits until the agent answers and cloud-init has finished. Returns 0 if
 * cloud-init succeeded; -EIO with cloud-init's status text if it reported
 * errors; -ETIMEDOUT after TIMEOUT_S. *ret_status receives the status text
 * (caller frees; may be NULL on early failure). */
int qvm_guest_wait(struct qvm_ctx *ctx, const char *name, int timeout_s, char **ret_status,
                   struct qvm_error *err);

#endif
