/* storage.h - one vocabulary over every storage backend.
 *
 * A pool holds images (each a series of immutable versions v1, v2, ...)
 * and VM bundles (a directory holding the VM's definition, seed and disks).
 * Each backend is a table of functions (struct qvm_storage_driver); adding a
 * backend is one new file and one entry in the table in storage.c. Nothing
 * here knows about QEMU processes: a disk is a path, a format and whether it
 * is a block device.
 *
 * The contract every driver keeps, so that core/ is written once:
 * - pool->path/images/NAME and pool->path/vms/VM are directories (plain
 *   directories, btrfs subvolumes or mounted zfs datasets) that core/ writes
 *   its metadata files into (image.json; vm.json, vm.yaml, seed.iso,
 *   console.log). Entries there whose names are not valid qvm names (such
 *   as ".versions") are the driver's own and are ignored by listings.
 * - Versions, once written, never change; VM disks are copy-on-write
 *   clones of them.
 * - Every operation either completes or leaves nothing behind; "missing" is
 *   success for the destroy operations, so journals can replay them.
 * - External tools run through util/subprocess.h with argv arrays, and
 *   their parsable output modes (`zfs get -Hp`: zfs-fuse's `zfs list` has
 *   no -p). */
#ifndef QVM_STORAGE_H
#define QVM_STORAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "spec/spec.h"
#include "util/error.h"
#include "util/ui.h"

struct qvm_pool;

/* What QEMU needs to open a disk. Strings are owned by the struct. */
struct qvm_disk_info {
    char *path;
    char *format;          /* "raw" or "qcow2" */
    bool is_block;
    uint64_t virtual_size;
};

void qvm_disk_info_release(struct qvm_disk_info *info);

/* One snapshot of a VM disk (snapshot_list). NAME is owned. */
struct qvm_snapshot_info {
    char *name;
    long long created;     /* Unix time */
    uint64_t size;         /* the disk's virtual size in it; 0: not known */
};

static inline void qvm_snapshot_info_free(struct qvm_snapshot_info *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
}

struct qvm_storage_driver {
    const char *name;

    /* Checks that the pool's location is usable by this driver and resolves
     * what the struct needs (zfs: the dataset's mountpoint into path).
     * Changes nothing on the host. */
    int (*pool_open)(struct qvm_pool *pool, struct qvm_error *err);

    /* Creates the pool's layout if missing (idempotent). */
    int (*pool_init)(const struct qvm_pool *pool, struct qvm_error *err);

    /* Directory holding an image's metadata (image.json) and, for file
     * backends, its version files. Caller frees. */
    char *(*image_dir)(const struct qvm_pool *pool, const char *image);

    /* Directory of a VM bundle. Caller frees. */
    char *(*vm_dir)(const struct qvm_pool *pool, const char *vm);

    /* Creates the (empty) image container. -EEXIST if it exists. */
    int (*image_create)(const struct qvm_pool *pool, const char *image, struct qvm_error *err);

    /* Writes version VERSION of IMAGE from SRC (raw or qcow2, SRC_FORMAT),
     * sparse, and makes it immutable. Partial output is removed on failure. */
    int (*version_import)(const struct qvm_pool *pool, const char *image, const char *version,
                          const char *src, const char *src_format, struct qvm_ui *ui,
                          struct qvm_error *err);

    /* Where a version's data is, for clone and for qemu-img info. */
    int (*version_info)(const struct qvm_pool *pool, const char *image, const char *version,
                        struct qvm_disk_info *ret, struct qvm_error *err);

    /* Removes the image and all its versions. Missing is success. */
    int (*image_destroy)(const struct qvm_pool *pool, const char *image, struct qvm_error *err);

    /* Makes version VERSION of IMAGE from disk DISK of VM (which is not
     * running): the administration step of seed 001 ("qvm image commit").
     * Atomic: the version exists whole or not at all. NULL: unsupported. */
    int (*version_from_disk)(const struct qvm_pool *pool, const char *image, const char *version,
                             const char *vm, const char *disk, struct qvm_ui *ui,
                             struct qvm_error *err);

    /* Streams (the replication wave builds on these). version_send writes
     * VERSION of IMAGE to OUT_FD, whole or (FROM non-NULL) as the changes
     * since version FROM, in the driver's own format (STREAM_FORMAT).
     * version_receive reads such a payload from IN_FD and creates VERSION
     * (FROM: the base the payload was made against, which must exist). A
     * failed or cut-short receive leaves no version behind. NULL: the driver
     * has no streams. */
    const char *stream_format;
    int (*version_send)(const struct qvm_pool *pool, const char *image, const char *version,
                        const char *from, int out_fd, struct qvm_error *err);
    int (*version_receive)(const struct qvm_pool *pool, const char *image, const char *version,
                           const char *from, int in_fd, struct qvm_error *err);

    /* Removes one version's data. Core has checked that no VM uses it;
     * the driver refuses (naming them) if its own dependents remain (zfs
     * clones). Missing is success. NULL: the driver keeps versions only as
     * a whole image (then core refuses single-version removal). */
    int (*version_destroy)(const struct qvm_pool *pool, const char *image, const char *version,
                           struct qvm_error *err);

    /* Creates the VM bundle. -EEXIST if it exists. */
    int (*vm_create)(const struct qvm_pool *pool, const char *vm, struct qvm_error *err);

    /* Where disk DISK of VM is, or will be once cloned: its absolute path
     * (inside the bundle, or a block device for zvols), format and whether
     * it is a block device. Creates nothing. */
    int (*disk_locate)(const struct qvm_pool *pool, const char *vm, const char *disk,
                       struct qvm_disk_info *ret, struct qvm_error *err);

    /* Copy-on-write clone of IMAGE@VERSION as disk DISK of VM, grown to SIZE
     * bytes (0: the version's size), with NPROPS backend properties (the
     * qvm file's disk.zvol keys) applied to the clone. */
    int (*disk_clone)(const struct qvm_pool *pool, const char *image, const char *version,
                      const char *vm, const char *disk, uint64_t size,
                      const struct qvm_prop *props, size_t nprops,
                      struct qvm_disk_info *ret, struct qvm_error *err);

    /* Where an existing disk file of FORMAT ("raw" or "qcow2") is renamed
     * to become disk DISK of VM (qvm up --reuse: adopted, never copied).
     * Caller frees. NULL: the driver's disks are not plain files it can
     * adopt. */
    char *(*adopt_path)(const struct qvm_pool *pool, const char *vm, const char *disk,
                        const char *format);

    /* Creates disk DISK of VM empty (all holes), SIZE bytes, where
     * disk_locate says, in the driver's own container for a disk (btrfs: a
     * subvolume; zfs: a dataset), for `qvm import` (storage/disk_create.c).
     * -EEXIST if it exists. NULL: the disk is a plain file in the bundle,
     * which core/ creates itself (dir). */
    int (*disk_create)(const struct qvm_pool *pool, const char *vm, const char *disk,
                       uint64_t size, struct qvm_error *err);

    /* Grows disk DISK of VM to SIZE bytes (qvm resize; storage/resize.c),
     * never shrinking it (-EINVAL naming both sizes). A disk that is a file
     * is grown only while no QEMU has it open: core/ grows a running VM's
     * file through QMP block_resize instead; a block device (zvol) is grown
     * here even while in use, and QEMU is told afterwards. *ret_size: the
     * size it has now (a zvol rounds up to its block size). NULL: the
     * driver cannot grow disks. */
    int (*disk_resize)(const struct qvm_pool *pool, const char *vm, const char *disk,
                       uint64_t size, uint64_t *ret_size, struct qvm_error *err);

    /* True if disk_clone takes properties (zfs); elsewhere disk.zvol keys
     * other than base and name are refused before anything is changed. */
    bool clone_properties;

    /* Removes the VM bundle with its disks. Missing is success. */
    int (*vm_destroy)(const struct qvm_pool *pool, const char *vm, struct qvm_error *err);

    /* --- Snapshots and clones of VM disks (seed 004) -----------------------
     * A snapshot SNAP (a qvm name) of disk DISK of VM is the disk as it was
     * at one instant, kept with the bundle (vm_destroy frees it). Core holds
     * the VM's lock and keeps a running guest still (frozen or paused) while
     * a disk is snapshotted or cloned. Any snapshot can be reverted to, and
     * every other one, older or newer, is kept. NULL (all of them): the
     * driver has no snapshots and core refuses the verbs. */

    /* Makes snapshot SNAP of DISK: atomic, -EEXIST if SNAP exists. */
    int (*snapshot_create)(const struct qvm_pool *pool, const char *vm, const char *disk,
                           const char *snap, struct qvm_error *err);

    /* Removes snapshot SNAP. Refused (-EBUSY, naming them) while other VMs'
     * disks are clones of it; data another snapshot of DISK still shares is
     * kept out of sight until nothing needs it. Missing is success. */
    int (*snapshot_destroy)(const struct qvm_pool *pool, const char *vm, const char *disk,
                            const char *snap, struct qvm_error *err);

    /* The snapshots of DISK, oldest first (caller frees with
     * qvm_snapshot_info_free). The driver's view is the truth: core keeps
     * no list of its own, so the two cannot disagree after a crash. */
    int (*snapshot_list)(const struct qvm_pool *pool, const char *vm, const char *disk,
                         struct qvm_snapshot_info **ret, size_t *ret_n, struct qvm_error *err);

    /* Where snapshot SNAP of disk DISK of VM can be read as a disk image (path and format); creates
     * nothing. */
    int (*snapshot_locate)(const struct qvm_pool *pool, const char *vm, const char *disk,
                           const char *snap, struct qvm_disk_info *ret, struct qvm_error *err);

    /* Reverting DISK (of a VM that is not running) to SNAP, in steps core
     * journals: revert_prepare makes the disk as SNAP holds it beside the
     * current one; revert_swap puts it in the disk's place and sets the
     * current disk aside; revert_undo undoes both from whatever point they
     * reached (nothing done is success); revert_finish frees what a
     * committed revert set aside, and any revert's leftovers once no revert
     * is in progress (idempotent; core calls it before a revert, too). */
    int (*snapshot_revert_prepare)(const struct qvm_pool *pool, const char *vm, const char *disk,
                                   const char *snap, struct qvm_error *err);
    int (*snapshot_revert_swap)(const struct qvm_pool *pool, const char *vm, const char *disk,
                                struct qvm_error *err);
    int (*snapshot_revert_undo)(const struct qvm_pool *pool, const char *vm, const char *disk,
                                struct qvm_error *err);
    int (*snapshot_revert_finish)(const struct qvm_pool *pool, const char *vm, const char *disk,
                                  struct qvm_error *err);

    /* Frees what interrupted snapshot operations and removed clones left
     * behind (partial copies; zfs: snapshots clones were made from, data of
     * removed snapshots nothing shares any more). Never touches a revert in
     * progress. Idempotent: also the journal's undo of a clone. */
    int (*snapshot_tidy)(const struct qvm_pool *pool, const char *vm, const char *disk,
                         struct qvm_error *err);

    /* Other VMs' disks that depend on DISK of VM ("VM 'b' (tank/qvm/vms/b/
     * disk0)"), which removing VM would destroy: zfs clones of its
     * snapshots. Caller frees each and the array. NULL: clones never
     * depend on their source (dir, btrfs). */
    int (*snapshot_dependents)(const struct qvm_pool *pool, const char *vm, const char *disk,
                               char ***ret, size_t *ret_n, struct qvm_error *err);

    /* Disk DST_DISK of VM DST (whose bundle exists) as a copy-on-write
     * clone of disk DISK of VM SRC as it is now (SNAP NULL) or of its
     * snapshot SNAP, with NPROPS properties as in disk_clone. All or
     * nothing. dir and btrfs clones stand alone (a qcow2 overlay's backing
     * file is the image version, never a file of SRC); a zfs clone depends
     * on a snapshot of SRC (snapshot_dependents names it). */
    int (*vm_disk_clone)(const struct qvm_pool *pool, const char *src, const char *disk,
                         const char *snap, const char *dst, const char *dst_disk,
                         const struct qvm_prop *props, size_t nprops,
                         struct qvm_disk_info *ret, struct qvm_error *err);
};

struct qvm_pool {
    char *name;
    char *path;                          /* the pool's root directory (zfs: the
                                            dataset's mountpoint) */
    char *dataset;                       /* zfs: the pool's parent dataset */
    char *mode;                          /* zfs: "dataset" or "zvol" */
    const struct qvm_storage_driver *driver;
};

/* The driver named NAME, or NULL. */
const struct qvm_storage_driver *qvm_storage_driver_find(const char *name);

/* POOL/images/IMAGE and POOL/vms/VM: the directories the contract above
 * promises on every backend; drivers use these as image_dir and vm_dir.
 * Caller frees. */
char *qvm_storage_image_dir(const struct qvm_pool *pool, const char *image);
char *qvm_storage_vm_dir(const struct qvm_pool *pool, const char *vm);

/* "dir, btrfs, zfs": the drivers this build has, for messages. */
const char *qvm_storage_driver_names(void);

/* Fills POOL from its configuration (strings are copied; DATASET and MODE
 * may be NULL) and lets the driver check and resolve it. */
int qvm_pool_open(const char *name, const char *driver, const char *path, const char *dataset,
                  const char *mode, struct qvm_pool *ret, struct qvm_error *err);
void qvm_pool_release(struct qvm_pool *pool);

/* Format of an image file by its magic: "qcow2" or "raw". Compressed files
 * (xz, gzip, zstd, bzip2) and other disk formats are refused with a hint. */
int qvm_image_file_format(const char *path, const char **ret_format, struct qvm_error *err);

/* qemu-img info: virtual size, and whether a qcow2 has a backing file. */
int qvm_image_file_probe(const char *path, const char *format, uint64_t *ret_size,
                         bool *ret_has_backing, struct qvm_error *err);

/* storage/resize.c: the size of disk DISK of VM now (a raw file's length,
 * a qcow2's virtual size from qemu-img info, a block device's size), and
 * disk_resize for disks that are files (dir: raw with ftruncate, qcow2
 * with qemu-img resize; btrfs; zfs datasets). */
int qvm_storage_disk_size(const struct qvm_pool *pool, const char *vm, const char *disk,
                          uint64_t *ret, struct qvm_error *err);
int qvm_storage_file_disk_resize(const struct qvm_pool *pool, const char *vm, const char *disk,
                                 uint64_t size, uint64_t *ret_size, struct qvm_error *err);
/* qemu-img resize -q -f qcow2 PATH SIZE (SIZEBUF holds SIZE as text, 24
 * bytes): the exact command line, for the unit test. */
void qvm_storage_argv_qcow2_resize(const char *argv[8], const char *path, uint64_t size,
                                   char sizebuf[24]);

extern const struct qvm_storage_driver qvm_storage_dir, qvm_storage_btrfs, qvm_storage_zfs;

#endif
