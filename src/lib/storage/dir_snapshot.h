/* dir_snapshot.h - snapshots and clones of dir-pool VM disks
 * (storage/dir_snapshot.c): the snapshot entries of the dir driver's table
 * in dir.c. Semantics are those of struct qvm_storage_driver. */
#ifndef QVM_STORAGE_DIR_SNAPSHOT_H
#define QVM_STORAGE_DIR_SNAPSHOT_H

#include <sys/types.h>

#include "storage.h"

int qvm_dir_snapshot_create(const struct qvm_pool *pool, const char *vm, const char *disk,
                            const char *snap, struct qvm_error *err);
int qvm_dir_snapshot_destroy(const struct qvm_pool *pool, const char *vm, const char *disk,
                             const char *snap, struct qvm_error *err);
int qvm_dir_snapshot_list(const struct qvm_pool *pool, const char *vm, const char *disk,
                          struct qvm_snapshot_info **ret, size_t *ret_n, struct qvm_error *err);
int qvm_dir_snapshot_locate(const struct qvm_pool *pool, const char *vm, const char *disk,
                            const char *snap, struct qvm_disk_info *ret, struct qvm_error *err);
int qvm_dir_snapshot_revert_prepare(const struct qvm_pool *pool, const char *vm, const char *disk,
                                    const char *snap, struct qvm_error *err);
int qvm_dir_snapshot_revert_swap(const struct qvm_pool *pool, const char *vm, const char *disk,
                                 struct qvm_error *err);
int qvm_dir_snapshot_revert_undo(const struct qvm_pool *pool, const char *vm, const char *disk,
                                 struct qvm_error *err);
int qvm_dir_snapshot_revert_finish(const struct qvm_pool *pool, const char *vm, const char *disk,
                                   struct qvm_error *err);
int qvm_dir_snapshot_tidy(const struct qvm_pool *pool, const char *vm, const char *disk,
                          struct qvm_error *err);
int qvm_dir_vm_disk_clone(const struct qvm_pool *pool, const char *src, const char *disk,
                          const char *snap, const char *dst, const char *dst_disk,
                          const struct qvm_prop *props, size_t nprops,
                          struct qvm_disk_info *ret, struct qvm_error *err);

/* Creates DST (which must not exist) with MODE as a copy of SRC: a reflink
 * (FICLONE) where the file system can, else a sparse copy (holes stay
 * holes). Synced; DST is removed again on failure. */
int qvm_dir_copy_disk_file(const char *src, const char *dst, mode_t mode, struct qvm_error *err);

#endif
