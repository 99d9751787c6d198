/* stream.h - image versions as byte streams: what `qvm image send` writes
 * and `qvm image receive` reads, and what replication will carry.
 *
 *   "QVMSTREAM 1\n"
 *   one JSON line (at most 64 KiB): image, version, from, driver, format,
 *                                   uuid, parent, created, size, state
 *   frames: u32 length (little-endian) + that many payload bytes ...
 *   u32 0, then the SHA-256 of all payload bytes (32 bytes)
 *
 * The payload is the pool driver's own (zfs send, btrfs send, or qvm's
 * block delta for dir pools), so a stream is received into a pool of the
 * same driver. A receive creates the version atomically: until the whole
 * stream has arrived and its checksum matches, no version is visible, and a
 * failed or cut-short receive leaves nothing behind. */
#ifndef QVM_CORE_STREAM_H
#define QVM_CORE_STREAM_H

#include "core/context.h"

#define QVM_STREAM_HEADER_MAX (64u << 10)
#define QVM_STREAM_FRAME_MAX (1u << 20)

/* Writes REF ("IMAGE@vN") to OUT_FD, whole or, with FROM ("vM"), as the
 * changes since that version. */
int qvm_image_send(struct qvm_ctx *ctx, const char *pool, const char *ref, const char *from,
                   int out_fd, struct qvm_error *err);

/* Reads a stream from IN_FD into POOL (NULL: the default pool). */
int qvm_image_receive(struct qvm_ctx *ctx, const char *pool, int in_fd, struct qvm_error *err);

#endif
