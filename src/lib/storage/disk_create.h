/* disk_create.h - empty VM disks, for `qvm import`: a disk that is not a
 * clone of any image (its data comes from a bundle), made in the driver's
 * own container so that everything else the driver does with a VM's disk
 * (snapshots, destroy) works on it unchanged. These are the btrfs and zfs
 * entries of the driver table's disk_create (see storage.h); a dir pool's
 * disk is a plain file core/ creates itself. */
#ifndef QVM_STORAGE_DISK_CREATE_H
#define QVM_STORAGE_DISK_CREATE_H

#include <stdint.h>

#include "storage.h"

/* A VM's data disk (an empty disk of a disk list, `qvm up`): where it is
 * (dir: POOL/vms/VM/DISK.raw, a sparse raw file whatever the pool's mode;
 * btrfs, zfs: where disk_locate says), and creating it, SIZE bytes, all
 * holes, in the bundle POOL/vms/VM, which must exist. -EEXIST if it does. */
int qvm_storage_data_disk_locate(const struct qvm_pool *pool, const char *vm, const char *disk,
                                 struct qvm_disk_info *ret, struct qvm_error *err);
int qvm_storage_data_disk_create(const struct qvm_pool *pool, const char *vm, const char *disk,
                                 uint64_t size, struct qvm_error *err);

/* Subvolume POOL/vms/VM/DISK holding a sparse disk.raw of SIZE bytes. */
int qvm_btrfs_disk_create(const struct qvm_pool *pool, const char *vm, const char *disk,
                          uint64_t size, struct qvm_error *err);

/* Dataset DATASET/vms/VM/DISK holding a sparse disk.raw of SIZE bytes.
 * zvol-mode pools are refused (zvols do not run on zfs-fuse, where this
 * could be tested). */
int qvm_zfs_disk_create(const struct qvm_pool *pool, const char *vm, const char *disk,
                        uint64_t size, struct qvm_error *err);

#endif
