#include "blockdelta.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/strbuf.h"

static const char magic[8] = { 'Q', 'V', 'M', 'B', 'D', '1', 0, 0 };
#define END_OFFSET UINT64_MAX
#define MAX_SIZE (1ull << 50)     /* 1 PiB: refuse absurd headers before allocating */


static ssize_t pread_full(int fd, char *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static bool all_zero(const char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int put_block(int out_fd, uint64_t off, const char *data, uint32_t len,
                     struct qvm_error *err)
{
    unsigned char h[12];
    uint64_t o = htole64(off);
    uint32_t l = htole32(len);
    memcpy(h, &o, 8);
    memcpy(h + 8, &l, 4);
    int r = qvm_write_all(out_fd, h, sizeof h, "the block stream", err);
    return r < 0 ? r : qvm_write_all(out_fd, data, len, "the block stream", err);
}

int qvm_blockdelta_write(const char *path, const char *base, int out_fd, struct qvm_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open %s", path);
    int bfd = -1, r = 0;
    if (base && (bfd = open(base, O_RDONLY | O_CLOEXEC)) < 0) {
        r = qvm_err_errno(err, errno, "cannot open %s", base);
        close(fd);
        return r;
    }
    struct stat st;
    fstat(fd, &st);
    uint64_t size = (uint64_t)st.st_size;
    unsigned char hdr[20];
    uint64_t s = htole64(size);
    uint32_t bs = htole32(QVM_BLOCKDELTA_BLOCK);
    memcpy(hdr, magic, 8);
    memcpy(hdr + 8, &s, 8);
    memcpy(hdr + 16, &bs, 4);
    r = qvm_write_all(out_fd, hdr, sizeof hdr, "the block stream", err);
    char *buf = xmalloc(QVM_BLOCKDELTA_BLOCK), *bbuf = xmalloc(QVM_BLOCKDELTA_BLOCK);
    uint64_t off = 0;
    while (r == 0 && off < size) {
        if (!base) {
            /* Skip holes without reading them. */
            off_t data = lseek(fd, (off_t)off, SEEK_DATA);
            if (data < 0)
                break;          /* ENXIO: only a hole is left */
            off = (uint64_t)data / QVM_BLOCKDELTA_BLOCK * QVM_BLOCKDELTA_BLOCK;
        }
        ssize_t n = pread_full(fd, buf, QVM_BLOCKDELTA_BLOCK, off);
        if (n < 0) {
            r = qvm_err_errno(err, errno, "cannot read %s", path);
            break;
        }
        if (n == 0)
            break;
        bool send;
        if (base) {
            ssize_t m = pread_full(bfd, bbuf, (size_t)n, off);
            if (m < 0) {
                r = qvm_err_errno(err, errno, "cannot read %s", base);
                break;
            }
            /* Past the base's end, the base reads as zeroes. */
            memset(bbuf + m, 0, (size_t)(n - m));
            send = memcmp(buf, bbuf, (size_t)n) != 0;
        } else {
            send = !all_zero(buf, (size_t)n);
        }
        if (send)
            r = put_block(out_fd, off, buf, (uint32_t)n, err);
        off += (uint64_t)n;
    }
    if (r == 0) {
        uint64_t end = htole64(END_OFFSET);
        r = qvm_write_all(out_fd, &end, 8, "the block stream", err);
    }
    free(buf);
    free(bbuf);
    close(fd);
    if (bfd >= 0)
        close(bfd);
    return r;
}

/* A sparse copy of SRC into the open file OUT: data ranges only. */
static int sparse_copy(const char *src, int out, struct qvm_error *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return qvm_err_errno(err, errno, "cannot open %s", src);
    struct stat st;
    fstat(in, &st);
    int r = 0;
    if (ftruncate(out, st.st_size) < 0)
        r = qvm_err_errno(err, errno, "cannot size the new version");
    off_t off = 0;
    while (r == 0 && off < st.st_size) {
        off_t data = lseek(in, off, SEEK_DATA);
        if (data < 0)
            break;
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0)
            hole = st.st_size;
        loff_t i = data, o = data;
        size_t left = (size_t)(hole - data);
        while (left) {
            /* copy_file_range shares extents where the file system can
             * (Btrfs, XFS): the copy then costs no space. */
            ssize_t n = copy_file_range(in, &i, out, &o, left, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                r = qvm_err_errno(err, n < 0 ? errno : EIO, "cannot copy %s", src);
                break;
            }
            left -= (size_t)n;
        }
        off = hole;
    }
    close(in);
    return r;
}

int qvm_blockdelta_apply(int in_fd, const char *base, const char *dst, struct qvm_error *err)
{
    unsigned char hdr[20];
    int r = qvm_read_exact(in_fd, hdr, sizeof hdr, "the block stream", err);
    if (r < 0)
        return r;
    uint64_t size;
    uint32_t bs;
    memcpy(&size, hdr + 8, 8);
    memcpy(&bs, hdr + 16, 4);
    size = le64toh(size);
    bs = le32toh(bs);
    if (memcmp(hdr, magic, 8) != 0)
        return qvm_err(err, EINVAL, "not a qvm block stream (bad magic)");
    if (size > MAX_SIZE || bs == 0 || bs > (16u << 20))
        return qvm_err(err, EINVAL, "block stream header is out of range (size %llu, block %u)",
                       (unsigned long long)size, bs);
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (out < 0)
        return qvm_err_errno(err, errno, "cannot create %s", dst);
    if (base)
        r = sparse_copy(base, out, err);
    if (r == 0 && ftruncate(out, (off_t)size) < 0)
        r = qvm_err_errno(err, errno, "cannot size %s", dst);
    char *buf = xmalloc(bs);
    while (r == 0) {
        unsigned char rec[12];
        if ((r = qvm_read_exact(in_fd, rec, 8, "the block stream", err)) < 0)
            break;
        uint64_t off;
        memcpy(&off, rec, 8);
        off = le64toh(off);
        if (off == END_OFFSET)
            break;
        if ((r = qvm_read_exact(in_fd, rec + 8, 4, "the block stream", err)) < 0)
            break;
        uint32_t len;
        memcpy(&len, rec + 8, 4);
        len = le32toh(len);
        if (len == 0 || len > bs || off > size || len > size - off) {
            r = qvm_err(err, EINVAL, "block stream record out of range (offset %llu, length %u)",
                        (unsigned long long)off, len);
            break;
        }
        if ((r = qvm_read_exact(in_fd, buf, len, "the block stream", err)) < 0)
            break;
        for (uint32_t done = 0; r == 0 && done < len;) {
            ssize_t n = pwrite(out, buf + done, len - done, (off_t)(off + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                r = qvm_err_errno(err, errno, "cannot write %s", dst);
            else
                done += (uint32_t)n;
        }
    }
    free(buf);
    if (r == 0 && fsync(out) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", dst);
    close(out);
    if (r < 0)
        unlink(dst);
    return r;
}
