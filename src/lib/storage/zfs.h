/* zfs.h - private to storage/zfs.c and tests/unit/test_zfs_argv.c: the exact
 * command lines the zfs driver runs, the parsers of what zfs prints, and the
 * checks of every string that reaches a zfs argv. Nothing here runs a
 * program. */
#ifndef QVM_STORAGE_ZFS_H
#define QVM_STORAGE_ZFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/spec.h"
#include "util/error.h"

/* ZFS names are at most 255 bytes. The longest name qvm derives from the
 * pool's dataset is DATASET/images/NAME/disk@VERSION, 135 bytes more with
 * 63-byte qvm names, so the dataset itself is kept to 120. */
#define QVM_ZFS_DATASET_MAX 120

/* Seed 000, 3.1.1: images are zvols with volblocksize 16K and no
 * refreservation (sparse). A zvol's size must be a multiple of it. */
#define QVM_ZFS_VOLBLOCKSIZE 16384u

/* The user property on a dataset-mode version snapshot that records its
 * virtual size: zfs-fuse exposes no .zfs/snapshot directory, so the size of
 * a snapshot's disk.raw cannot be read from the file without a clone. */
#define QVM_ZFS_SIZE_PROP "qvm:virtual-size"

/* The file holding a dataset-mode disk inside its dataset. */
#define QVM_ZFS_DISK_FILE "disk.raw"

/* A full stream is received into DATA:recv (DATA the dataset whose
 * snapshots are the versions), beside the image, and renamed into place
 * once checked. ':' is in no qvm name, so the staging dataset (and its
 * mountpoint in the images directory) is never taken for an image. */
#define QVM_ZFS_RECV_SUFFIX ":recv"

/* --- argv builders: NULL-terminated arrays whose strings are all owned;
 *     free with qvm_zfs_argv_free. --------------------------------------- */

/* zfs get -Hp [-r] -o name,property,value PROPS DATASET...: PROPS is a
 * comma-separated list; DATASETS is NULL-terminated. */
char **qvm_zfs_argv_get(const char *props, const char *const datasets[], bool recursive);
/* zfs create [-p] DATASET */
char **qvm_zfs_argv_create(const char *dataset, bool parents);
/* zfs create -V SIZE -o volblocksize=16K -o refreservation=none DATASET */
char **qvm_zfs_argv_create_zvol(const char *dataset, uint64_t size);
/* zfs snapshot [-o qvm:virtual-size=SIZE] SNAPSHOT (SIZE 0: no property) */
char **qvm_zfs_argv_snapshot(const char *snapshot, uint64_t virtual_size);
/* zfs clone [-o KEY=VALUE]... SNAPSHOT TARGET */
char **qvm_zfs_argv_clone(const char *snapshot, const char *target,
                          const struct qvm_prop *props, size_t nprops);
/* zfs set volsize=SIZE DATASET */
char **qvm_zfs_argv_set_volsize(const char *dataset, uint64_t size);
/* zfs destroy [-r] DATASET */
char **qvm_zfs_argv_destroy(const char *dataset, bool recursive);
/* zfs send [-i @FROM] SNAPSHOT: the stream on stdout, whole or (FROM, a
 * snapshot name without '@') as the changes since DATASET@FROM. */
char **qvm_zfs_argv_send(const char *snapshot, const char *from);
/* zfs recv [-F] SNAPSHOT: the stream from stdin becomes SNAPSHOT, whatever
 * the sender's snapshot was called. -F (incremental streams) first rolls
 * the dataset back to its newest snapshot, the stream's base. */
char **qvm_zfs_argv_receive(const char *snapshot, bool force);
/* zfs rename FROM TO */
char **qvm_zfs_argv_rename(const char *from, const char *to);
/* zfs mount DATASET / zfs unmount DATASET */
char **qvm_zfs_argv_mount(const char *dataset);
char **qvm_zfs_argv_unmount(const char *dataset);
/* zfs set qvm:virtual-size=SIZE SNAPSHOT */
char **qvm_zfs_argv_set_virtual_size(const char *snapshot, uint64_t size);
/* qemu-img convert -p|-q [-n] -f FORMAT -O raw SRC DST: -n (DST exists)
 * when writing into a zvol's block device. */
char **qvm_zfs_argv_convert(const char *src, const char *src_format, const char *dst,
                            bool to_device, bool progress);
void qvm_zfs_argv_free(char **argv);

/* --- checks ------------------------------------------------------------- */

/* A pool's dataset: [A-Za-z0-9_.:/-], starting with a letter or digit, no
 * empty, "." or ".." component, no trailing '/', at most
 * QVM_ZFS_DATASET_MAX bytes. */
int qvm_zfs_dataset_check(const char *dataset, struct qvm_error *err);

/* A disk.zvol property for the clone: the key [a-z][a-z0-9:._-]{0,63}, the
 * value 1-255 of [A-Za-z0-9:._,+/@=-] not starting with '-'; keys qvm
 * manages itself (mountpoint, canmount, readonly, volsize, qvm:*) are
 * refused. */
int qvm_zfs_prop_check(const struct qvm_prop *prop, struct qvm_error *err);

/* SIZE rounded up to a multiple of QVM_ZFS_VOLBLOCKSIZE. */
uint64_t qvm_zfs_volsize(uint64_t size);

/* --- parsers ------------------------------------------------------------ */

struct qvm_zfs_row {
    char *name;
    char *property;
    char *value;
};

struct qvm_zfs_rows {
    struct qvm_zfs_row *v;
    size_t n;
};

/* Parses the output of `zfs get -Hp -o name,property,value`: one
 * NAME<TAB>PROPERTY<TAB>VALUE line per dataset and property. Any other
 * shape is -EINVAL. */
int qvm_zfs_parse_get(const char *out, struct qvm_zfs_rows *ret, struct qvm_error *err);
/* The value of PROPERTY of NAME, or NULL. "-" (no value) is returned as is. */
const char *qvm_zfs_rows_value(const struct qvm_zfs_rows *rows, const char *name,
                               const char *property);
void qvm_zfs_rows_release(struct qvm_zfs_rows *rows);

/* Names of the datasets whose origin is snapshot ORIGIN@VERSION (VERSION
 * NULL: any snapshot of ORIGIN), from the rows of a recursive
 * `zfs get origin`, in output order; caller frees each and the array. */
char **qvm_zfs_clones_of(const struct qvm_zfs_rows *rows, const char *origin, const char *version,
                         size_t *ret_n);

/* The snapshots of DATASET (their names after '@') oldest first, from the
 * rows of `zfs get -Hp -r createtxg DATASET`; rows of other datasets (and
 * of DATASET itself) are ignored. -EINVAL if a createtxg is not a number.
 * Caller frees each and the array. */
int qvm_zfs_snapshots(const struct qvm_zfs_rows *rows, const char *dataset, char ***ret,
                      size_t *ret_n, struct qvm_error *err);

/* Parses a decimal byte count as `zfs get -p` prints it; -EINVAL otherwise. */
int qvm_zfs_parse_size(const char *value, uint64_t *ret);

/* What a failed zfs command's stderr says. */
enum qvm_zfs_failure {
    QVM_ZFS_FAIL_OTHER = 0,
    QVM_ZFS_FAIL_MISSING,          /* dataset does not exist */
    QVM_ZFS_FAIL_EXISTS,           /* dataset already exists */
    QVM_ZFS_FAIL_BUSY,             /* dataset is busy */
    QVM_ZFS_FAIL_DEPENDENTS,       /* filesystem/volume has dependent clones */
    QVM_ZFS_FAIL_NO_DAEMON,        /* zfs-fuse's daemon is not running */
    QVM_ZFS_FAIL_NO_MODULE,        /* the ZFS kernel module is not loaded */
    QVM_ZFS_FAIL_NOT_IMPLEMENTED,  /* zfs-fuse: zvols ("Function not implemented") */
};
enum qvm_zfs_failure qvm_zfs_classify(const char *stderr_text);

/* The datasets zfs names after "use '-R' to destroy the following
 * datasets:" when it refuses to destroy a snapshot's origin; caller frees
 * each and the array. */
char **qvm_zfs_parse_dependents(const char *stderr_text, size_t *ret_n);

void qvm_zfs_strv_free(char **v, size_t n);

#endif
