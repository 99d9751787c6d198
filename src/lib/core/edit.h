/* edit.h - changing a provisioned VM: `qvm edit` (its stored qvm file, the
 * bundle's vm.yaml), `qvm resize` (growing its disk) and the autostart flag.
 *
 * Every change goes through one path: the new qvm file is validated by the
 * same parser as `qvm up`, changes that cannot apply to an existing VM
 * (name, pool, base image, disk name and properties, the cloud-init
 * documents, a smaller disk) are refused, a larger disk is grown first
 * (live through QMP block_resize when the VM runs), then vm.yaml and
 * vm.json are replaced under the journal. Memory, vCPUs, network and the
 * other machine settings apply at the VM's next start. */
#ifndef QVM_CORE_EDIT_H
#define QVM_CORE_EDIT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/context.h"
#include "util/error.h"

struct qvm_edit_req {
    const char *text;           /* the new qvm file; NULL: the stored one */
    size_t len;
    const char *filename;       /* names TEXT in messages (FILE:LINE:COL) */
    const char *const *sets;    /* "KEY=VALUE": applied to TEXT (or the stored file) */
    size_t nsets;
    const char *expect;         /* non-NULL: the stored file must still be these bytes
                                   (what the editor started from), else -EAGAIN */
    size_t expect_len;
};

struct qvm_edit_result {
    bool changed;               /* vm.yaml (and vm.json) were replaced */
    bool invalid;               /* refused for what the new file says: worth editing again */
};

/* The stored qvm file of VM NAME (*ret_text, caller frees). */
int qvm_edit_load(struct qvm_ctx *ctx, const char *name, char **ret_text, size_t *ret_len,
                  struct qvm_error *err);

/* Validates REQ against VM NAME and applies it (see above). */
int qvm_edit_apply(struct qvm_ctx *ctx, const char *name, const struct qvm_edit_req *req,
                   struct qvm_edit_result *ret, struct qvm_error *err);

/* qvm resize NAME DISK SIZE: SIZE as qvm_spec_parse_size takes it. Grows
 * the disk and records the size in vm.yaml's disk.size and in vm.json. */
int qvm_resize(struct qvm_ctx *ctx, const char *name, const char *disk, const char *size,
               struct qvm_error *err);

/* Sets the autostart flag of VM NAME (vm.yaml's autostart key and vm.json). */
int qvm_autostart_set(struct qvm_ctx *ctx, const char *name, bool on, struct qvm_error *err);

/* A private copy of TEXT to edit: $TMPDIR (or /tmp)/qvm-edit-NAME-XXXXXX.yaml,
 * mode 0600. *ret_path: caller frees (and unlinks). */
int qvm_edit_tempfile(const char *name, const char *text, size_t len, char **ret_path,
                      struct qvm_error *err);

/* Runs $VISUAL, else $EDITOR, else vi on PATH with the terminal: split on
 * blanks into argv (no shell), PATH appended. A non-zero exit is an error. */
int qvm_edit_run_editor(const char *path, struct qvm_error *err);

#endif
