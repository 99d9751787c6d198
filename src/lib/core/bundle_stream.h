/* bundle_stream.h - the byte channel of a VM bundle: zstd compression
 * inside qvm's stream framing (core/frames.h), so a bundle is checked
 * (SHA-256 of the compressed frames) exactly like an image stream.
 *
 *   "QVMBUNDLE 1\n"   magic and format version
 *   one JSON line     the header (what the bundle holds, for a reader that
 *                     has not decompressed anything; the manifest inside
 *                     repeats it and is the one trusted)
 *   frames            one zstd stream (with its own content checksum)
 *   u32 0, SHA-256
 *
 * Writers push bytes, readers pull exact counts; neither knows what the
 * bytes mean (core/bundle.c does). */
#ifndef QVM_CORE_BUNDLE_STREAM_H
#define QVM_CORE_BUNDLE_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "core/frames.h"
#include "util/error.h"

#define QVM_BUNDLE_MAGIC "QVMBUNDLE 1\n"

struct qvm_bundle_writer {
    struct qvm_frames_out frames;
    void *z;                 /* ZSTD_CCtx */
    char *obuf;
    size_t ocap;
};

/* Writes the magic and HEADER to FD and starts the compressed payload. */
int qvm_bundle_writer_open(struct qvm_bundle_writer *w, int fd, json_object *header,
                           struct qvm_error *err);
int qvm_bundle_write(struct qvm_bundle_writer *w, const void *buf, size_t len,
                     struct qvm_error *err);
/* Ends the zstd stream, then the frames with their checksum. */
int qvm_bundle_writer_finish(struct qvm_bundle_writer *w, struct qvm_error *err);
void qvm_bundle_writer_release(struct qvm_bundle_writer *w);

struct qvm_bundle_reader {
    struct qvm_frames_in frames;
    void *z;                 /* ZSTD_DCtx */
    char *ibuf;              /* the current frame */
    size_t ilen, ipos;
    bool zdone;              /* the zstd stream ended where we stopped */
};

/* Reads the magic and the header (*RET_HEADER, caller puts) from FD. */
int qvm_bundle_reader_open(struct qvm_bundle_reader *rd, int fd, json_object **ret_header,
                           struct qvm_error *err);
/* Exactly LEN decompressed bytes; a stream ending first is cut short. */
int qvm_bundle_read(struct qvm_bundle_reader *rd, void *buf, size_t len, struct qvm_error *err);
/* After the last expected byte: nothing more may follow, the zstd stream
 * must be complete and the frames' checksum must match. Only after this
 * succeeds is anything read trustworthy. */
int qvm_bundle_reader_finish(struct qvm_bundle_reader *rd, struct qvm_error *err);
void qvm_bundle_reader_release(struct qvm_bundle_reader *rd);

#endif
