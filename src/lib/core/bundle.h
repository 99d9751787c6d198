/* bundle.h - a VM as one self-describing stream (seed 003's bundle): `qvm
 * export` writes it, `qvm import` recreates the VM from it on any pool of
 * any host, and `qvm scan` checks the bundles a pool already holds.
 *
 * The stream (core/bundle_stream.h: magic, header line, zstd inside
 * SHA-256-checked frames) carries, decompressed:
 *
 *   u32 length + the manifest (JSON): format, name, uuid, snapshot, from,
 *       the vm.json fields, the qvm file's text (vm.yaml), where the disk
 *       came from (image, version), the files and disks that follow
 *   each file's bytes (seed.iso), in manifest order
 *   each disk as qvm's block delta (storage/blockdelta.h): raw blocks
 *       holding data (or, incremental, the blocks that differ from the
 *       snapshot named by "from"), holes skipped
 *
 * The disk data is raw and driver-neutral, so a bundle moves from a dir
 * pool to btrfs to zfs: export reads any disk as raw (a qcow2 through a
 * sparse temporary copy) and import writes it the way the target pool
 * keeps disks. */
#ifndef QVM_CORE_BUNDLE_H
#define QVM_CORE_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/context.h"

#define QVM_BUNDLE_MANIFEST_MAX (4u << 20)
#define QVM_BUNDLE_FILE_MAX (16u << 20)

struct qvm_export_opts {
    const char *snapshot;   /* export this snapshot instead of the live disk */
    const char *from;       /* incremental: only what differs from this snapshot */
    const char *output;     /* write this file (atomically) instead of OUT_FD */
};

/* Writes VM NAME (stopped, unless a snapshot is exported) to OUT_FD, or to
 * OPTS->output: written as OUTPUT.part and renamed once complete, so a
 * failed or killed export leaves no file (the journal removes it). */
int qvm_vm_export(struct qvm_ctx *ctx, const char *name, const struct qvm_export_opts *opts,
                  int out_fd, struct qvm_error *err);

struct qvm_import_opts {
    const char *name;       /* a new name: new uuid, MAC, instance-id, hostname and seed */
    const char *pool;       /* NULL: the default pool */
    bool no_start;
};

/* Recreates the VM read from IN_FD. Atomic: until the whole stream has
 * arrived and its checksum matched, no VM exists; any failure (or a
 * SIGKILL, through the journal) leaves nothing behind. */
int qvm_vm_import(struct qvm_ctx *ctx, const struct qvm_import_opts *opts, int in_fd,
                  struct qvm_error *err);

/* One bundle found by qvm_scan. */
struct qvm_scan_entry {
    char *pool;
    char *name;             /* the bundle's directory */
    char *uuid;             /* NULL if unreadable */
    const char *status;     /* "ok", "registered" (fixed now), "duplicate", "invalid" */
    char *detail;           /* what was fixed or why it was refused; NULL for "ok" */
};

/* Walks every pool's (or POOL's) vms/ and checks each bundle: its vm.json
 * readable and complete, its disk and seed where the pool keeps them, its
 * name and uuid unique on the host. Bundles that came from elsewhere (a
 * replicated dataset, a moved directory) are registered: the pool name and
 * the disk format in vm.json are set to what this host has. A name or uuid
 * found in two pools is reported and neither bundle is touched. */
int qvm_scan(struct qvm_ctx *ctx, const char *pool, struct qvm_scan_entry **ret, size_t *ret_n,
             struct qvm_error *err);
void qvm_scan_free(struct qvm_scan_entry *e, size_t n);

/* For a copy of a VM under NEW_NAME (import --name; clone could use it):
 * from the qvm file text YAML, the same file with vm.name set to NEW_NAME
 * (*RET_YAML), and its cloud-init documents with a new instance-id and
 * NEW_NAME as host name (meta-data local-hostname, and user-data hostname
 * and fqdn where set), written as a NoCloud seed to SEED_PATH.
 * *RET_INSTANCE_ID and *RET_HOSTNAME: what the seed says. Caller frees. */
int qvm_bundle_renamed_seed(const char *yaml, size_t len, const char *new_name,
                            const char *seed_path, char **ret_yaml, char **ret_instance_id,
                            char **ret_hostname, struct qvm_error *err);

#endif
