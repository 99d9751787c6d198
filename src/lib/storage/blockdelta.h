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

#include "util/error.h"

#define QVM_BLOCKDELTA_BLOCK (64u << 10)

/* Writes PATH (against BASE, or whole when BASE is NULL) to OUT_FD. */
int qvm_blockdelta_write(const char *path, const char *base, int out_fd, struct qvm_error *err);

/* Creates DST (which must not exist) from BASE (or empty when NULL) plus the
 * blocks read from IN_FD. DST is removed on any failure. */
int qvm_blockdelta_apply(int in_fd, const char *base, const char *dst, struct qvm_error *err);

#endif
