/* frames.h - the framing every qvm stream shares (image streams, VM
 * bundles), so that each is checked the same way:
 *
 *   MAGIC                 a text line naming the kind and its version
 *   one JSON line         the header, at most 64 KiB
 *   frames                u32 length (little-endian) + that many bytes,
 *                         each at most 1 MiB
 *   u32 0, then the SHA-256 of all frame bytes (32 bytes)
 *
 * A stream without the final checksum was cut short; one whose checksum
 * differs was damaged. Readers act on nothing irreversibly before
 * qvm_frames_in_next has reported the end. */
#ifndef QVM_CORE_FRAMES_H
#define QVM_CORE_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "util/error.h"

#define QVM_FRAME_HEADER_MAX (64u << 10)
#define QVM_FRAME_MAX (1u << 20)

/* Writes MAGIC (which ends in '\n') and HEADER as one JSON line. */
int qvm_frames_write_header(int fd, const char *magic, json_object *header,
                            struct qvm_error *err);

/* Reads MAGIC and the header line into *RET (caller puts). A wrong magic
 * is "this is not a WHAT". */
int qvm_frames_read_header(int fd, const char *magic, const char *what, json_object **ret,
                           struct qvm_error *err);

struct qvm_frames_out {
    int fd;
    void *md;              /* EVP_MD_CTX */
};

void qvm_frames_out_init(struct qvm_frames_out *o, int fd);
/* One frame of LEN bytes (1..QVM_FRAME_MAX). */
int qvm_frames_out_put(struct qvm_frames_out *o, const void *buf, size_t len,
                       struct qvm_error *err);
/* The end marker and the checksum. */
int qvm_frames_out_end(struct qvm_frames_out *o, struct qvm_error *err);
void qvm_frames_out_release(struct qvm_frames_out *o);

struct qvm_frames_in {
    int fd;
    void *md;              /* EVP_MD_CTX */
    bool ended;
};

void qvm_frames_in_init(struct qvm_frames_in *in, int fd);
/* Reads the next frame into BUF (QVM_FRAME_MAX bytes). At the end marker
 * it reads and checks the checksum and sets *RET_LEN to 0. */
int qvm_frames_in_next(struct qvm_frames_in *in, void *buf, uint32_t *ret_len,
                       struct qvm_error *err);
void qvm_frames_in_release(struct qvm_frames_in *in);

#endif
