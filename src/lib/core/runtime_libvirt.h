/* runtime_libvirt.h - VMs that run under libvirt instead of qvm's own QEMU.
 *
 * A VM's runtime is chosen when it is provisioned (--runtime on up, else
 * vm.runtime in the qvm file, else the pool's runtime key in qvm.conf, else
 * qemu) and recorded in vm.json with its connection URI (default
 * qemu:///system). Everything else stays qvm's: the bundle, the disk
 * (cloned, snapshotted and removed by qvm's storage layer, never libvirt's),
 * the seed, the journal. libvirt only runs the domain, which has the VM's
 * name and UUID, so virsh and virt-manager show it.
 *
 * - runtime libvirt: qvm writes the domain XML (runtime/domain_xml.h) and
 *   defines it through the C API.
 * - runtime virt-install (seed 000's own way): qvm runs virt-install with
 *   the file's options, --dry-run first, then for real (seed 6.5); the VM is
 *   a libvirt VM from then on.
 *
 * The lifecycle verbs (core/lifecycle.c, core/guest.c) call in here for a
 * libvirt VM; the VM lock is theirs to hold. */
#ifndef QVM_CORE_RUNTIME_LIBVIRT_H
#define QVM_CORE_RUNTIME_LIBVIRT_H

#include <stdbool.h>
#include <sys/types.h>

#include "core/context.h"
#include "core/guest.h"
#include "core/journal.h"
#include "core/snapshot.h"
#include "core/vm.h"
#include "util/strbuf.h"

/* True if VM runs under libvirt (runtime libvirt or virt-install). */
bool qvm_vm_libvirt(const struct qvm_vm *vm);

/* True if VM NAME exists and runs under libvirt. */
bool qvm_vm_name_libvirt(struct qvm_ctx *ctx, const char *name);

/* Settles the runtime of a VM about to be provisioned in pool POOL:
 * OPT_RUNTIME (--runtime) over spec->runtime over the pool's, else qemu;
 * the URI likewise (default qemu:///system). Fills spec->runtime and, for
 * libvirt, spec->runtime_uri. Refuses what that runtime cannot run (a
 * libvirt network or bridge on qemu). */
int qvm_runtime_choose(struct qvm_ctx *ctx, const char *pool, const char *opt_runtime,
                       struct qvm_vm_spec *spec, struct qvm_error *err);

/* up's checks before any change: libvirt answers at the URI and has no
 * domain of that name; virt-install is installed. */
int qvm_lv_validate(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_error *err);

/* up --dry-run: what would be defined (the domain XML, or the virt-install
 * command line). */
void qvm_lv_plan(struct qvm_ctx *ctx, const struct qvm_vm *vm, bool start);

/* up's last steps, journaled in J: define the domain (runtime libvirt) or
 * run virt-install (--dry-run, then for real), then start it unless START
 * is false. Fault points: domain-defined, domain-started (virt-install:
 * virt-install-checked, virt-install-ran). */
int qvm_lv_provision(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_journal *j, bool start,
                     struct qvm_error *err);

/* The pid of the QEMU libvirt runs for VM (found by its -uuid argument,
 * as process.h finds qvm's own by -pidfile), or 0. Local libvirt only. */
pid_t qvm_lv_qemu_pid(const struct qvm_vm *vm);

/* The verbs, VM lock held by the caller. start defines the domain first
 * if libvirt has none for the VM (a clone, an imported bundle): the bundle
 * is the truth. */
int qvm_lv_start(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_error *err);
/* qvm_vm_start_qemu's part for a libvirt VM: the same, its undo in the
 * caller's journal J (may be NULL). */
int qvm_lv_start_in(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_journal *j,
                    struct qvm_error *err);
int qvm_lv_stop(struct qvm_ctx *ctx, struct qvm_vm *vm, bool force, int timeout_s,
                struct qvm_error *err);
int qvm_lv_pause(struct qvm_ctx *ctx, struct qvm_vm *vm, bool pause, struct qvm_error *err);

/* rm, in rm's journal J before the definition is detached: powers the
 * domain off, saves its XML in the bundle (the undo redefines it from
 * there) and undefines it. Fault point: domain-undefined. */
int qvm_lv_rm(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_journal *j,
              struct qvm_error *err);

/* snapshot.c's quiesce for a running libvirt VM: freeze the guest's file
 * systems through libvirt (the agent), else pause the domain; the undo
 * (libvirt_thaw, libvirt_resume) journaled in J first. */
int qvm_lv_quiesce_begin(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_journal *j,
                         struct qvm_quiesce *q, struct qvm_error *err);
int qvm_lv_quiesce_end(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_quiesce *q,
                       struct qvm_error *err);

/* The VM's state from libvirt into BUF ("running", "paused", "stopped",
 * ...; "missing" if libvirt has no such domain, "unknown" if libvirt does
 * not answer, with a warning through CTX's ui unless CTX is NULL). */
void qvm_lv_state(struct qvm_ctx *ctx, const struct qvm_vm *vm, char *buf, size_t size);

/* exec through the guest agent, by way of libvirt (qvm_guest_exec's
 * contract: waits for the agent up to TIMEOUT_S, fails at once when the VM
 * is not running or paused). */
int qvm_lv_guest_exec(struct qvm_ctx *ctx, const char *name, const char *const argv[],
                      const char *input, int timeout_s, struct qvm_exec_result *ret,
                      struct qvm_error *err);

/* The serial console through libvirt, on the caller's terminal (stdin,
 * stdout; raw mode is the caller's), until ESCAPE (< 0: none) or the end of
 * stdin. */
int qvm_lv_console(struct qvm_ctx *ctx, const struct qvm_vm *vm, int escape,
                   struct qvm_error *err);

/* Undoes one journal record of kind libvirt_* (journal.c); what could not
 * be undone is appended to FAILED. */
void qvm_lv_undo(const char *kind, const char *uri, const char *uuid, const char *path,
                 struct strbuf *failed);

/* qvm adopt DOMAIN: an existing libvirt domain whose disk is a file in a
 * dir pool becomes a qvm VM (a bundle with vm.json; the disk moved into it
 * by a rename; the domain kept, redefined with the disk's new path and
 * qvm's metadata). Refused, naming them, for disks outside qvm's pools. */
struct qvm_adopt_opts {
    const char *uri;       /* NULL: qemu:///system */
    const char *pool;      /* NULL: the dir pool holding the disk */
    bool dry_run;
};
int qvm_adopt(struct qvm_ctx *ctx, const char *domain, const struct qvm_adopt_opts *opts,
              struct qvm_error *err);

#endif
