/* accel.h - which accelerator can run an ordinary guest on this host.
 *
 * /dev/kvm alone proves nothing: a paravirtual nested KVM (kvm_pvm) exposes
 * it but cannot run an unmodified BIOS or kernel. KVM counts only when
 * /dev/kvm opens read-write, answers KVM_GET_API_VERSION, and a hardware
 * module (kvm_intel or kvm_amd) is loaded rather than kvm_pvm alone. */
#ifndef QVM_RUNTIME_ACCEL_H
#define QVM_RUNTIME_ACCEL_H

#include <stddef.h>

#include "util/error.h"

struct qvm_accel_probe {
    const char *sysfs_root;   /* "" or NULL for the real system; tests give a tree */
    const char *dev_kvm;      /* NULL: /dev/kvm */
};

/* REQUESTED is "auto", "kvm" or "tcg". Fills *ret_accel with "kvm" or "tcg"
 * (static strings) and, when auto fell back to TCG, *ret_note with why (one
 * line, else ""). "kvm" requested where KVM cannot run is an error that says
 * why. */
int qvm_accel_resolve(const char *requested, const struct qvm_accel_probe *probe,
                      const char **ret_accel, char *ret_note, size_t note_len,
                      struct qvm_error *err);

#endif
