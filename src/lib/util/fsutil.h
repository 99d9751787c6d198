/* fsutil.h - file system helpers: bounded reads, atomic writes, recursive
 * removal that never follows symlinks, and directory creation. */
#ifndef QVM_FSUTIL_H
#define QVM_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* Creates PATH and its missing parents with MODE. */
int qvm_mkdir_p(const char *path, mode_t mode, struct qvm_error *err);

/* Reads a whole regular file of at most MAX bytes. *ret_data is
 * NUL-terminated; the caller frees it. -EFBIG if larger than MAX. */
int qvm_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len,
                  struct qvm_error *err);

/* Writes DATA to PATH atomically: a temporary file in the same directory,
 * fsync, rename, fsync of the directory. */
int qvm_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                          struct qvm_error *err);

/* Writes PATH atomically through FILL, which writes the content to FD (the
 * temporary file TMP_PATH): then fsync, rename, fsync of the directory. On
 * any failure the temporary file is removed and PATH is untouched. */
typedef int (*qvm_fill_fn)(int fd, const char *tmp_path, void *ctx, struct qvm_error *err);
int qvm_write_atomic_with(const char *path, mode_t mode, qvm_fill_fn fill, void *fill_ctx,
                          struct qvm_error *err);

/* Writes all LEN bytes to FD (retrying short writes and EINTR). WHAT names
 * the destination in messages ("the stream"). */
int qvm_write_all(int fd, const void *buf, size_t len, const char *what, struct qvm_error *err);

/* Reads exactly LEN bytes from FD; -EPIPE with "WHAT ends early" when it
 * ends first. */
int qvm_read_exact(int fd, void *buf, size_t len, const char *what, struct qvm_error *err);

/* Removes PATH recursively. Missing PATH is success. Symlinks are removed,
 * never followed; mount points are not crossed (-EXDEV). */
int qvm_rm_rf(const char *path, struct qvm_error *err);

/* fsync of the directory containing PATH (or PATH itself if a directory). */
int qvm_fsync_dir(const char *dir, struct qvm_error *err);

bool qvm_path_exists(const char *path);

/* Joins with '/'; caller frees. */
char *qvm_path_join(const char *a, const char *b);

#endif
