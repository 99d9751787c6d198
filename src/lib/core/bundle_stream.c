#include "bundle_stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "util/strbuf.h"

/* zstd's default level: on a disk of a freshly installed system it
 * compresses at several hundred MB/s per core, far faster than qemu-img
 * converts or a network carries, while shrinking the data about 3x. */
#define BUNDLE_ZSTD_LEVEL 3

static int zerr(struct qvm_error *err, size_t code, const char *what)
{
    return qvm_err(err, EINVAL, "%s: %s", what, ZSTD_getErrorName(code));
}

int qvm_bundle_writer_open(struct qvm_bundle_writer *w, int fd, json_object *header,
                           struct qvm_error *err)
{
    memset(w, 0, sizeof *w);
    int r = qvm_frames_write_header(fd, QVM_BUNDLE_MAGIC, header, err);
    if (r < 0)
        return r;
    qvm_frames_out_init(&w->frames, fd);
    w->z = ZSTD_createCCtx();
    if (!w->z)
        return qvm_err(err, ENOMEM, "cannot create a zstd compressor");
    ZSTD_CCtx_setParameter(w->z, ZSTD_c_compressionLevel, BUNDLE_ZSTD_LEVEL);
    ZSTD_CCtx_setParameter(w->z, ZSTD_c_checksumFlag, 1);
    w->ocap = ZSTD_CStreamOutSize();
    if (w->ocap > QVM_FRAME_MAX)
        w->ocap = QVM_FRAME_MAX;
    w->obuf = xmalloc(w->ocap);
    return 0;
}

/* Runs the compressor over IN with MODE, one frame per filled buffer. */
static int pump(struct qvm_bundle_writer *w, ZSTD_inBuffer *in, ZSTD_EndDirective mode,
                struct qvm_error *err)
{
    for (;;) {
        ZSTD_outBuffer out = { w->obuf, w->ocap, 0 };
        size_t left = ZSTD_compressStream2(w->z, &out, in, mode);
        if (ZSTD_isError(left))
            return zerr(err, left, "cannot compress the bundle");
        if (out.pos) {
            int r = qvm_frames_out_put(&w->frames, w->obuf, out.pos, err);
            if (r < 0)
                return r;
        }
        if (mode == ZSTD_e_continue ? in->pos == in->size : left == 0)
            return 0;
    }
}

int qvm_bundle_write(struct qvm_bundle_writer *w, const void *buf, size_t len,
                     struct qvm_error *err)
{
    ZSTD_inBuffer in = { buf, len, 0 };
    return len ? pump(w, &in, ZSTD_e_continue, err) : 0;
}

int qvm_bundle_writer_finish(struct qvm_bundle_writer *w, struct qvm_error *err)
{
    ZSTD_inBuffer in = { NULL, 0, 0 };
    int r = pump(w, &in, ZSTD_e_end, err);
    return r < 0 ? r : qvm_frames_out_end(&w->frames, err);
}

void qvm_bundle_writer_release(struct qvm_bundle_writer *w)
{
    if (w->z)
        ZSTD_freeCCtx(w->z);
    if (w->frames.md)
        qvm_frames_out_release(&w->frames);
    free(w->obuf);
    memset(w, 0, sizeof *w);
}

int qvm_bundle_reader_open(struct qvm_bundle_reader *rd, int fd, json_object **ret_header,
                           struct qvm_error *err)
{
    memset(rd, 0, sizeof *rd);
    int r = qvm_frames_read_header(fd, QVM_BUNDLE_MAGIC, "qvm VM bundle (from qvm export)",
                                   ret_header, err);
    if (r < 0)
        return r;
    qvm_frames_in_init(&rd->frames, fd);
    rd->z = ZSTD_createDCtx();
    if (!rd->z)
        return qvm_err(err, ENOMEM, "cannot create a zstd decompressor");
    rd->ibuf = xmalloc(QVM_FRAME_MAX);
    return 0;
}

/* Refills the input from the next frame. 0 and ilen 0 at the end. */
static int refill(struct qvm_bundle_reader *rd, struct qvm_error *err)
{
    uint32_t len;
    int r = qvm_frames_in_next(&rd->frames, rd->ibuf, &len, err);
    rd->ilen = len;
    rd->ipos = 0;
    return r;
}

int qvm_bundle_read(struct qvm_bundle_reader *rd, void *buf, size_t len, struct qvm_error *err)
{
    ZSTD_outBuffer out = { buf, len, 0 };
    while (out.pos < out.size) {
        if (rd->ipos == rd->ilen) {
            int r = refill(rd, err);
            if (r < 0)
                return r;
            if (rd->ilen == 0)
                return qvm_err(err, EPIPE, "the bundle ends early: it was cut short or damaged");
        }
        ZSTD_inBuffer in = { rd->ibuf, rd->ilen, rd->ipos };
        size_t ret = ZSTD_decompressStream(rd->z, &out, &in);
        rd->ipos = in.pos;
        if (ZSTD_isError(ret))
            return zerr(err, ret, "the bundle is damaged");
        rd->zdone = ret == 0;
    }
    return 0;
}

int qvm_bundle_reader_finish(struct qvm_bundle_reader *rd, struct qvm_error *err)
{
    char extra[256];
    for (;;) {
        if (rd->ipos == rd->ilen) {
            int r = refill(rd, err);
            if (r < 0)
                return r;
            if (rd->ilen == 0)
                break;      /* the end, and the checksum matched */
        }
        ZSTD_outBuffer out = { extra, sizeof extra, 0 };
        ZSTD_inBuffer in = { rd->ibuf, rd->ilen, rd->ipos };
        size_t ret = ZSTD_decompressStream(rd->z, &out, &in);
        rd->ipos = in.pos;
        if (ZSTD_isError(ret))
            return zerr(err, ret, "the bundle is damaged");
        if (out.pos)
            return qvm_err(err, EINVAL, "the bundle holds more than its manifest describes: "
                           "it is damaged");
        rd->zdone = ret == 0;
    }
    if (!rd->zdone)
        return qvm_err(err, EINVAL, "the bundle's compressed data is incomplete: it is damaged");
    return 0;
}

void qvm_bundle_reader_release(struct qvm_bundle_reader *rd)
{
    if (rd->z)
        ZSTD_freeDCtx(rd->z);
    if (rd->frames.md)
        qvm_frames_in_release(&rd->frames);
    free(rd->ibuf);
    memset(rd, 0, sizeof *rd);
}
