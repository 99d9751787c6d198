/* btrfs.h - private to storage/btrfs.c and tests/unit/test_btrfs_argv.c:
 * the exact command lines the Btrfs backend runs, so a change in what qvm
 * runs shows in review and is checked by the unit test.
 *
 * Each builder fills ARGV (room for QVM_BTRFS_ARGV_MAX pointers) with
 * pointers to its string arguments and to literals, NULL-terminated, and
 * returns the number of arguments. Nothing is allocated: ARGV is valid as
 * long as the strings passed in are. */
#ifndef QVM_STORAGE_BTRFS_H
#define QVM_STORAGE_BTRFS_H

#include <stdbool.h>
#include <stddef.h>

#define QVM_BTRFS_ARGV_MAX 12

/* btrfs subvolume create PATH */
size_t qvm_btrfs_argv_subvol_create(const char **argv, const char *path);

/* btrfs subvolume snapshot [-r] SRC DST */
size_t qvm_btrfs_argv_snapshot(const char **argv, const char *src, const char *dst,
                               bool readonly);

/* btrfs subvolume delete [--commit-after] PATH */
size_t qvm_btrfs_argv_subvol_delete(const char **argv, const char *path, bool commit);

/* btrfs send [-p PARENT] SNAPSHOT: the stream of read-only SNAPSHOT on
 * stdout, whole or as the changes since read-only PARENT. */
size_t qvm_btrfs_argv_send(const char **argv, const char *snapshot, const char *parent);

/* btrfs receive -e DIR: makes the stream's subvolume (named after the
 * sender's snapshot) in DIR from stdin; -e ends at the stream's end
 * command, so a second stream appended to the first is not received. */
size_t qvm_btrfs_argv_receive(const char **argv, const char *dir);

/* qemu-img convert -p|-q -f FORMAT -O raw SRC DST: sparse raw output. */
size_t qvm_btrfs_argv_convert(const char **argv, const char *src, const char *src_format,
                              const char *dst, bool progress);

#endif
