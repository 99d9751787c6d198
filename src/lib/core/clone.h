/* clone.h - qvm clone: a new VM whose disk is a copy-on-write clone of
 * another VM's disk (as it is, or one of its snapshots), made a new machine
 * for cloud-init: a new instance-id, MAC address and host name, in a new
 * NoCloud seed; the source's settings and user-data otherwise kept. */
#ifndef QVM_CORE_CLONE_H
#define QVM_CORE_CLONE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/context.h"

struct qvm_clone_opts {
    const char *snapshot;  /* clone this snapshot of SRC; NULL: SRC's disk as it is now */
    bool no_start;         /* provision DST but do not start it */
};

/* Clones VM SRC as the new VM DST, in SRC's pool. */
int qvm_clone(struct qvm_ctx *ctx, const char *src, const char *dst,
              const struct qvm_clone_opts *opts, struct qvm_error *err);

/* SRC_TEXT (LEN bytes), the qvm file of a VM, made the qvm file of its
 * clone DST: the vm document's name (DST), network mac (MAC) and a fixed
 * network ssh-port (auto); user-data's hostname (DST) and fqdn (DST and
 * the old domain); meta-data's instance-id (INSTANCE_ID) and
 * local-hostname (DST) are replaced where present - an absent instance-id
 * or local-hostname is made anew from DST when the file is parsed. All
 * else stays byte for byte. -EINVAL if one of those values is not a plain
 * or quoted scalar. *RET: NUL-terminated, caller frees. */
int qvm_clone_rewrite_file(const char *src_text, size_t len, const char *dst, const char *mac,
                           const char *instance_id, char **ret, struct qvm_error *err);

#endif
