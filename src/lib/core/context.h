/* context.h - what every core operation needs: where things live, how to
 * report progress, which QEMU to run. Creating a context also finishes any
 * operation an earlier, killed qvm left half-done (see journal.h), so every
 * command starts from a consistent host. */
#ifndef QVM_CORE_CONTEXT_H
#define QVM_CORE_CONTEXT_H

#include "util/error.h"
#include "util/paths.h"
#include "util/ui.h"

struct qvm_ctx {
    struct qvm_paths paths;
    struct qvm_ui *ui;              /* may be NULL: silent */
    const char *qemu_binary;        /* $QVM_QEMU or qemu-system-x86_64 */
    const char *default_pool;       /* NULL: the one qvm.conf names */
};

/* ROOT may be NULL ($QVM_ROOT or /). Creates the state directories and rolls
 * back interrupted operations. */
int qvm_ctx_init(struct qvm_ctx *ctx, const char *root, struct qvm_ui *ui, struct qvm_error *err);
void qvm_ctx_release(struct qvm_ctx *ctx);

/* Fault injection for the failure tests, at each persistent step of an
 * operation. With QVM_FAULT=STEP the operation fails right after STEP as if
 * that step's successor had failed; with QVM_FAULT=kill:STEP the process
 * SIGKILLs itself there. QVM_FAULT_TRACE=FILE appends every step reached, so
 * tests enumerate the steps instead of hard-coding them. */
int qvm_fault_point(const char *step, struct qvm_error *err);

/* QVM_TIMING=1 prints the time of each step since qvm_timing_start() on
 * stderr: a profile for bench/, never used by tests. */
void qvm_timing_start(void);
void qvm_timing_mark(const char *what);

#endif
