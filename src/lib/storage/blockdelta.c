#include "blockdelta.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
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

static int fd_write(void *ctx, const void *buf, size_t len, struct qvm_error *err)
{
    return qvm_write_all(*(int *)ctx, buf, len, "the block stream", err);
}

static int fd_read(void *ctx, void *buf, size_t len, struct qvm_error *err)
{
    return qvm_read_exact(*(int *)ctx, buf, len, "the block stream", err);
}

static int put_block(const struct qvm_blockdelta_io *io, uint64_t off, const char *data,
                     uint32_t len, struct qvm_error *err)
{
    unsigned char h[12];
    uint64_t o = htole64(off);
    uint32_t l = htole32(len);
    memcpy(h, &o, 8);
    memcpy(h + 8, &l, 4);
    int r = io->write(io->ctx, h, sizeof h, err);
    return r < 0 ? r : io->write(io->ctx, data, len, err);
}

/* Size of an open regular file or block device. */
static int fd_size(int fd, const char *path, uint64_t *ret, struct qvm_error *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return qvm_err_errno(err, errno, "cannot stat %s", path);
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, ret) < 0)
            return qvm_err_errno(err, errno, "cannot read the size of %s", path);
        return 0;
    }
    *ret = (uint64_t)st.st_size;
    return 0;
}

/* The first offset at or after OFF where FD may hold data (SIZE: none). */
static uint64_t next_data(int fd, uint64_t off, uint64_t size)
{
    if (off >= size)
        return size;
    off_t d = lseek(fd, (off_t)off, SEEK_DATA);
    if (d < 0)
        return errno == ENXIO ? size : off;     /* no SEEK_DATA here: read on */
    return (uint64_t)d < size ? (uint64_t)d : size;
}

int qvm_blockdelta_encode(const char *path, const char *base, const struct qvm_blockdelta_io *io,
                          struct qvm_error *err)
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
    uint64_t size = 0, bsize = 0;
    r = fd_size(fd, path, &size, err);
    if (r == 0 && bfd >= 0)
        r = fd_size(bfd, base, &bsize, err);
    unsigned char hdr[20];
    uint64_t s = htole64(size);
    uint32_t bs = htole32(QVM_BLOCKDELTA_BLOCK);
    memcpy(hdr, magic, 8);
    memcpy(hdr + 8, &s, 8);
    memcpy(hdr + 16, &bs, 4);
    if (r == 0)
        r = io->write(io->ctx, hdr, sizeof hdr, err);
    char *buf = xmalloc(QVM_BLOCKDELTA_BLOCK), *bbuf = xmalloc(QVM_BLOCKDELTA_BLOCK);
    uint64_t off = 0;
    while (r == 0 && off < size) {
        /* Skip what is a hole in the file and in its base without reading
         * it: a hole reads as zeroes in both. */
        uint64_t data = next_data(fd, off, size);
        if (bfd >= 0) {
            uint64_t bdata = next_data(bfd, off, bsize < size ? bsize : size);
            if (bdata < (bsize < size ? bsize : size) && bdata < data)
                data = bdata;
        }
        if (data >= size)
            break;
        off = data / QVM_BLOCKDELTA_BLOCK * QVM_BLOCKDELTA_BLOCK;
        ssize_t n = pread_full(fd, buf, QVM_BLOCKDELTA_BLOCK, off);
        if (n < 0) {
            r = qvm_err_errno(err, errno, "cannot read %s", path);
            break;
        }
        if (n == 0)
            break;
        bool send;
        if (bfd >= 0) {
            ssize_t m = off < bsize ? pread_full(bfd, bbuf, (size_t)n, off) : 0;
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
            r = put_block(io, off, buf, (uint32_t)n, err);
        off += (uint64_t)n;
    }
    if (r == 0) {
        uint64_t end = htole64(END_OFFSET);
        r = io->write(io->ctx, &end, 8, err);
    }
    free(buf);
    free(bbuf);
    close(fd);
    if (bfd >= 0)
        close(bfd);
    return r;
}

int qvm_blockdelta_write(const char *path, const char *base, int out_fd, struct qvm_error *err)
{
    struct qvm_blockdelta_io io = { .write = fd_write, .ctx = &out_fd };
    return qvm_blockdelta_encode(path, base, &io, err);
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

/* Writes LEN bytes of BUF at OFF; an all-zero block is punched as a hole
 * instead where the file system can (so holes stay holes). */
static int put_data(int out, const char *path, const char *buf, uint32_t len, uint64_t off,
                    struct qvm_error *err)
{
    if (all_zero(buf, len) &&
        fallocate(out, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
        return 0;
    for (uint32_t done = 0; done < len;) {
        ssize_t n = pwrite(out, buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return qvm_err_errno(err, errno, "cannot write %s", path);
        done += (uint32_t)n;
    }
    return 0;
}

int qvm_blockdelta_decode(const struct qvm_blockdelta_io *io, int out, const char *path,
                          uint64_t *ret_size, struct qvm_error *err)
{
    unsigned char hdr[20];
    int r = io->read(io->ctx, hdr, sizeof hdr, err);
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
    struct stat st;
    if (fstat(out, &st) < 0)
        return qvm_err_errno(err, errno, "cannot stat %s", path);
    if (S_ISBLK(st.st_mode)) {
        uint64_t have = 0;
        if ((r = fd_size(out, path, &have, err)) < 0)
            return r;
        if (have < size)
            return qvm_err(err, ENOSPC, "%s holds %llu bytes, the stream %llu", path,
                           (unsigned long long)have, (unsigned long long)size);
    } else if (ftruncate(out, (off_t)size) < 0) {
        return qvm_err_errno(err, errno, "cannot size %s", path);
    }
    char *buf = xmalloc(bs);
    while (r == 0) {
        unsigned char rec[12];
        if ((r = io->read(io->ctx, rec, 8, err)) < 0)
            break;
        uint64_t off;
        memcpy(&off, rec, 8);
        off = le64toh(off);
        if (off == END_OFFSET)
            break;
        if ((r = io->read(io->ctx, rec + 8, 4, err)) < 0)
            break;
        uint32_t len;
        memcpy(&len, rec + 8, 4);
        len = le32toh(len);
        if (len == 0 || len > bs || off > size || len > size - off) {
            r = qvm_err(err, EINVAL, "block stream record out of range (offset %llu, length %u)",
                        (unsigned long long)off, len);
            break;
        }
        if ((r = io->read(io->ctx, buf, len, err)) < 0)
            break;
        r = put_data(out, path, buf, len, off, err);
    }
    free(buf);
    if (r == 0 && ret_size)
        *ret_size = size;
    return r;
}

int qvm_blockdelta_apply(int in_fd, const char *base, const char *dst, struct qvm_error *err)
{
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (out < 0)
        return qvm_err_errno(err, errno, "cannot create %s", dst);
    int r = 0;
    if (base)
        r = sparse_copy(base, out, err);
    struct qvm_blockdelta_io io = { .read = fd_read, .ctx = &in_fd };
    if (r == 0)
        r = qvm_blockdelta_decode(&io, out, dst, NULL, err);
    if (r == 0 && fsync(out) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", dst);
    close(out);
    if (r < 0)
        unlink(dst);
    return r;
}
