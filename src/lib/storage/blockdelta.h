/* blockdelta.h - qvm's block-delta format, the stream payload of the dir
 * backend (which has no send/receive of its own):
 *
 *   "QVMBD1\0\0"  u64 size  u32 block_size          (little-endian)
 *   { u64 offset  u32 length  length bytes }...     changed blocks
 *   u64 0xffffffffffffffff                          end
 *
 * A full stream carries every block holding data (holes are skipped); an
 * incremental one every block that differs from the base version. Integrity
 * is the stream framing's job (core/stream.c checks a SHA-256). */
#ifndef QVM_STORAGE_BLOCKDELTA_H
#define QVM_STORAGE_BLOCKDELTA_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define QVM_BLOCKDELTA_BLOCK (64u << 10)

/* Where an encoded stream goes to or comes from when it is not a plain fd
 * (a VM bundle compresses it): WRITE writes all LEN bytes, READ reads
 * exactly LEN bytes (a short stream is an error). */
struct qvm_blockdelta_io {
    int (*write)(void *ctx, const void *buf, size_t len, struct qvm_error *err);
    int (*read)(void *ctx, void *buf, size_t len, struct qvm_error *err);
    void *ctx;
};

/* Encodes PATH (a regular file or a block device) through IO, whole (BASE
 * NULL: every block holding data) or as the blocks that differ from BASE.
 * Ranges that are holes (in both files) are skipped without reading. */
int qvm_blockdelta_encode(const char *path, const char *base, const struct qvm_blockdelta_io *io,
                          struct qvm_error *err);

/* Decodes a stream read through IO into OUT_FD (PATH, for messages), which
 * is open for writing and holds what the stream was made against (nothing,
 * or its base): a regular file is sized to the stream's size first; a block
 * device must be at least that big. An all-zero block becomes a hole
 * where the file system can punch one, so holes stay holes. *RET_SIZE: the
 * size the stream describes. */
int qvm_blockdelta_decode(const struct qvm_blockdelta_io *io, int out_fd, const char *path,
                          uint64_t *ret_size, struct qvm_error *err);

/* Writes PATH (against BASE, or whole when BASE is NULL) to OUT_FD. */
int qvm_blockdelta_write(const char *path, const char *base, int out_fd, struct qvm_error *err);

/* Creates DST (which must not exist) from BASE (or empty when NULL) plus the
 * blocks read from IN_FD. DST is removed on any failure. */
int qvm_blockdelta_apply(int in_fd, const char *base, const char *dst, struct qvm_error *err);

#endif
