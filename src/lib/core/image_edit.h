/* image_edit.h - "qvm image edit NAME": the administration step of seed
 * 001 ("In Administration"). A working VM is cloned from the image's newest
 * version; the administrator changes it, stops it and runs
 * "qvm image commit NAME --from VM", which makes the next version. */
#ifndef QVM_CORE_IMAGE_EDIT_H
#define QVM_CORE_IMAGE_EDIT_H

#include <stdbool.h>

#include "core/context.h"
#include "util/error.h"

struct qvm_image_edit_opts {
    const char *pool;          /* where the image is (NULL: any pool) */
    const char *vm;            /* the working VM's name (NULL: NAME-edit) */
    const char *version;       /* vN to start from (NULL: the newest usable) */
    unsigned memory_mib;       /* 0: 1024 */
    unsigned vcpus;            /* 0: 1 */
    const char *const *ssh_keys;   /* public key files; NULL-terminated, may be NULL */
    bool no_ssh_keys;          /* do not add ~/.ssh/id_*.pub */
    bool no_start;
};

/* Provisions the working VM (through qvm_up, so atomically) and says how
 * to commit it. Any version but a retired or removed one can be edited. */
int qvm_image_edit(struct qvm_ctx *ctx, const char *image, const struct qvm_image_edit_opts *opts,
                   struct qvm_error *err);

#endif
