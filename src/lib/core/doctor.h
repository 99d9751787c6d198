/* doctor.h - finds (and with repair, fixes) what a crash or a hand-edit can
 * leave behind: journals whose rollback failed, detached bundles not yet
 * freed, partial image copies, temp files of interrupted writes, disks
 * without a VM, VMs without a disk, runtime files (pid files, sockets)
 * without a process, QEMU processes that no VM knows, qvm networks not
 * fully up, and leases of VMs that are gone. */
#ifndef QVM_CORE_DOCTOR_H
#define QVM_CORE_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "core/context.h"

struct qvm_finding {
    char *kind;      /* journal, partial, leftover-temp, orphan-bundle, orphan-image,
                        orphan-runtime, stale-runtime, orphan-qemu, unknown-qemu,
                        missing-disk (reported, never "fixed": qvm cannot make a disk up),
                        network-down (fixed by bringing it up), stale-lease */
    char *what;      /* a sentence naming the object */
    bool fixed;      /* repaired in this run */
};

int qvm_doctor(struct qvm_ctx *ctx, bool repair, struct qvm_finding **ret, size_t *ret_n,
               struct qvm_error *err);
void qvm_findings_free(struct qvm_finding *f, size_t n);

#endif
