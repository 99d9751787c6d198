#include "frames.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "util/fsutil.h"
#include "util/strbuf.h"

int qvm_frames_write_header(int fd, const char *magic, json_object *header,
                            struct qvm_error *err)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, magic);
    strbuf_addstr(&sb, json_object_to_json_string_ext(header, JSON_C_TO_STRING_PLAIN));
    strbuf_addch(&sb, '\n');
    int r = qvm_write_all(fd, sb.buf, sb.len, "the stream", err);
    strbuf_release(&sb);
    return r;
}

int qvm_frames_read_header(int fd, const char *magic, const char *what, json_object **ret,
                           struct qvm_error *err)
{
    size_t mlen = strlen(magic);
    char got[64];
    if (mlen > sizeof got)
        return qvm_err(err, EINVAL, "magic too long");
    int r = qvm_read_exact(fd, got, mlen, "the stream", err);
    if (r < 0)
        return r;
    if (memcmp(got, magic, mlen) != 0)
        return qvm_err(err, EINVAL, "this is not a %s", what);
    struct strbuf sb = STRBUF_INIT;
    for (;;) {
        char ch;
        if ((r = qvm_read_exact(fd, &ch, 1, "the stream", err)) < 0)
            break;
        if (ch == '\n')
            break;
        if (sb.len >= QVM_FRAME_HEADER_MAX) {
            r = qvm_err(err, EINVAL, "the stream header is larger than 64 KiB");
            break;
        }
        strbuf_addch(&sb, ch);
    }
    *ret = NULL;
    if (r == 0 && (!(*ret = json_tokener_parse(sb.buf)) ||
                   !json_object_is_type(*ret, json_type_object))) {
        json_object_put(*ret);
        *ret = NULL;
        r = qvm_err(err, EINVAL, "the stream header is not valid JSON");
    }
    strbuf_release(&sb);
    return r;
}

void qvm_frames_out_init(struct qvm_frames_out *o, int fd)
{
    o->fd = fd;
    o->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(o->md, EVP_sha256(), NULL);
}

int qvm_frames_out_put(struct qvm_frames_out *o, const void *buf, size_t len,
                       struct qvm_error *err)
{
    if (len == 0 || len > QVM_FRAME_MAX)
        return qvm_err(err, EINVAL, "a frame of %zu bytes", len);
    uint32_t l = htole32((uint32_t)len);
    int r = qvm_write_all(o->fd, &l, 4, "the stream", err);
    if (r == 0)
        r = qvm_write_all(o->fd, buf, len, "the stream", err);
    if (r == 0)
        EVP_DigestUpdate(o->md, buf, len);
    return r;
}

int qvm_frames_out_end(struct qvm_frames_out *o, struct qvm_error *err)
{
    unsigned char end[4 + 32];
    unsigned int dlen = 0;
    memset(end, 0, 4);
    EVP_DigestFinal_ex(o->md, end + 4, &dlen);
    return qvm_write_all(o->fd, end, sizeof end, "the stream", err);
}

void qvm_frames_out_release(struct qvm_frames_out *o)
{
    EVP_MD_CTX_free(o->md);
    o->md = NULL;
}

void qvm_frames_in_init(struct qvm_frames_in *in, int fd)
{
    in->fd = fd;
    in->ended = false;
    in->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(in->md, EVP_sha256(), NULL);
}

int qvm_frames_in_next(struct qvm_frames_in *in, void *buf, uint32_t *ret_len,
                       struct qvm_error *err)
{
    *ret_len = 0;
    if (in->ended)
        return 0;
    uint32_t len;
    int r = qvm_read_exact(in->fd, &len, 4, "the stream", err);
    if (r < 0)
        return r;
    len = le32toh(len);
    if (len > QVM_FRAME_MAX)
        return qvm_err(err, EINVAL, "a stream frame is larger than 1 MiB: the stream is damaged");
    if (len == 0) {
        unsigned char want[32], got[32];
        unsigned int dlen = 0;
        EVP_DigestFinal_ex(in->md, got, &dlen);
        r = qvm_read_exact(in->fd, want, sizeof want, "the stream", err);
        if (r == 0 && memcmp(want, got, sizeof got) != 0)
            r = qvm_err(err, EINVAL, "the stream's checksum does not match: it is damaged");
        in->ended = r == 0;
        return r;
    }
    r = qvm_read_exact(in->fd, buf, len, "the stream", err);
    if (r < 0)
        return r;
    EVP_DigestUpdate(in->md, buf, len);
    *ret_len = len;
    return 0;
}

void qvm_frames_in_release(struct qvm_frames_in *in)
{
    EVP_MD_CTX_free(in->md);
    in->md = NULL;
}
