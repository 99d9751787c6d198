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

/* --- VM disk snapshots (seed 004) ------------------------------------------
 * The family of a VM disk dataset D: D and the datasets D:NAME qvm makes
 * beside it (':' is in no qvm name): D:revert and D:old while a revert
 * runs, and D:h1, D:h2, ... holding the snapshots newer than one a revert
 * went back to (zfs keeps a snapshot on the dataset it was taken of, so
 * they cannot move to D). A snapshot whose name is not a qvm name (it
 * holds ':') is qvm's own: clone:VM, the origin of VM's disk when it was
 * cloned from D as it was; NAME:removed:TXG, a removed snapshot another
 * snapshot's history still shares. */

/* zfs promote DATASET */
char **qvm_zfs_argv_promote(const char *dataset);
/* zfs rollback SNAPSHOT: only ever a dataset's newest snapshot (no -r). */
char **qvm_zfs_argv_rollback(const char *snapshot);

/* The properties the family is read with: zfs get -Hp -r of these on the
 * VM's bundle dataset. */
#define QVM_ZFS_FAMILY_PROPS "type,origin,createtxg,creation,volsize," QVM_ZFS_SIZE_PROP

struct qvm_zfs_snap {
    char *dataset;          /* the family member holding it */
    char *name;             /* after '@' */
    uint64_t txg;
    long long creation;     /* Unix time */
    uint64_t size;          /* qvm:virtual-size; 0: not recorded */
    char **clones;          /* datasets whose origin it is (when read with origins) */
    size_t nclones;
};

struct qvm_zfs_family {
    char **members;         /* D (if it exists) and D:NAME datasets, in output order */
    char **origins;         /* each member's origin, NULL for none */
    uint64_t *volsizes;     /* each member's volsize, 0 for a filesystem */
    size_t nmembers;
    struct qvm_zfs_snap *snaps;   /* every snapshot of every member, oldest first */
    size_t nsnaps;
};

/* True if DATASET is D or D:NAME. */
bool qvm_zfs_family_member(const char *dataset, const char *disk_ds);

/* The family of DISK_DS from ROWS (zfs get -Hp -r QVM_ZFS_FAMILY_PROPS of
 * the bundle dataset) and, if ORIGINS is not NULL, the clones of each
 * snapshot from ORIGINS (a pool-wide zfs get -Hp -r origin). -EINVAL if a
 * number does not parse. */
int qvm_zfs_family_read(const struct qvm_zfs_rows *rows, const struct qvm_zfs_rows *origins,
                        const char *disk_ds, struct qvm_zfs_family *ret, struct qvm_error *err);
void qvm_zfs_family_release(struct qvm_zfs_family *f);

/* The snapshot named NAME on any member (NULL: none); the index of member
 * DATASET (-1: not one). */
const struct qvm_zfs_snap *qvm_zfs_family_find(const struct qvm_zfs_family *f, const char *name);
int qvm_zfs_family_index(const struct qvm_zfs_family *f, const char *dataset);

#endif
