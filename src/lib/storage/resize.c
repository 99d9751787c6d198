/* resize.c - growing VM disks that are files, shared by the backends whose
 * disks are files in the bundle (dir: raw reflink copies or qcow2 overlays;
 * btrfs and zfs datasets: raw files), and reading a disk's size. Growing
 * never writes data: a raw file gets a hole at its end, a qcow2 a larger
 * virtual size; the guest's growpart and resize2fs claim the space on its
 * next boot. A zvol is grown by its driver (zfs set volsize). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "storage.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

void qvm_storage_argv_qcow2_resize(const char *argv[8], const char *path, uint64_t size,
                                   char sizebuf[24])
{
    snprintf(sizebuf, 24, "%llu", (unsigned long long)size);
    const char *v[] = { "qemu-img", "resize", "-q", "-f", "qcow2", path, sizebuf, NULL };
    memcpy(argv, v, sizeof v);
}

/* qemu-img info -U --output=json prints, e.g.:
 *   { "virtual-size": 2147483648, "filename": "disk0.qcow2", "format": "qcow2", ... }
 * -U (force share) reads it even while a QEMU holds the image's lock. */
static int qcow2_size(const char *path, uint64_t *ret, struct qvm_error *err)
{
    const char *argv[] = { "qemu-img", "info", "-U", "--output=json", "-f", "qcow2", path, NULL };
    struct qvm_run_opts opts = { .timeout_ms = 60000 };
    struct qvm_run_result res;
    int r = qvm_run(argv, &opts, &res, err);
    json_object *root = r == 0 ? json_tokener_parse(res.out) : NULL, *vs = NULL;
    qvm_run_result_release(&res);
    if (r < 0)
        return qvm_err_wrap(err, "cannot read the size of %s", path);
    if (!root || !json_object_object_get_ex(root, "virtual-size", &vs) ||
        !json_object_is_type(vs, json_type_int) || json_object_get_int64(vs) <= 0)
        r = qvm_err(err, EINVAL, "cannot read the size of %s: unexpected output from qemu-img info",
                    path);
    else
        *ret = (uint64_t)json_object_get_int64(vs);
    json_object_put(root);
    return r;
}

static int size_of(const struct qvm_disk_info *d, uint64_t *ret, struct qvm_error *err)
{
    if (d->is_block) {
        int fd = open(d->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return qvm_err_errno(err, errno, "cannot open %s", d->path);
        uint64_t size = 0;
        int r = 0;
        if (ioctl(fd, BLKGETSIZE64, &size) < 0)
            r = qvm_err_errno(err, errno, "cannot read the size of %s", d->path);
        close(fd);
        if (r == 0)
            *ret = size;
        return r;
    }
    struct stat st;
    if (lstat(d->path, &st) < 0)
        return qvm_err_errno(err, errno, "cannot find the disk %s", d->path);
    if (!S_ISREG(st.st_mode))
        return qvm_err(err, EINVAL, "the disk %s is not a regular file", d->path);
    if (strcmp(d->format, "qcow2") == 0)
        return qcow2_size(d->path, ret, err);
    *ret = (uint64_t)st.st_size;
    return 0;
}

int qvm_storage_disk_size(const struct qvm_pool *pool, const char *vm, const char *disk,
                          uint64_t *ret, struct qvm_error *err)
{
    struct qvm_disk_info d;
    int r = pool->driver->disk_locate(pool, vm, disk, &d, err);
    if (r == 0)
        r = size_of(&d, ret, err);
    qvm_disk_info_release(&d);
    return r;
}

static int grow_raw(const char *path, uint64_t size, struct qvm_error *err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open %s", path);
    int r = 0;
    if (ftruncate(fd, (off_t)size) < 0)
        r = qvm_err_errno(err, errno, "cannot grow %s to %llu bytes", path,
                          (unsigned long long)size);
    else if (fsync(fd) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", path);
    close(fd);
    return r;
}

int qvm_storage_file_disk_resize(const struct qvm_pool *pool, const char *vm, const char *disk,
                                 uint64_t size, uint64_t *ret_size, struct qvm_error *err)
{
    struct qvm_disk_info d;
    uint64_t now = 0;
    int r = pool->driver->disk_locate(pool, vm, disk, &d, err);
    if (r == 0 && d.is_block)
        r = qvm_err(err, ENOTSUP, "%s is a block device, not a file", d.path);
    if (r == 0)
        r = size_of(&d, &now, err);
    if (r == 0 && size < now)
        r = qvm_err(err, EINVAL, "%s is %llu bytes; it is never shrunk to %llu", d.path,
                    (unsigned long long)now, (unsigned long long)size);
    if (r == 0 && size > now) {
        if (strcmp(d.format, "qcow2") == 0) {
            const char *argv[8];
            char sizebuf[24];
            qvm_storage_argv_qcow2_resize(argv, d.path, size, sizebuf);
            struct qvm_run_opts opts = { .timeout_ms = 60000 };
            r = qvm_run(argv, &opts, NULL, err);
        } else {
            r = grow_raw(d.path, size, err);
        }
    }
    if (r == 0)
        *ret_size = size;
    qvm_disk_info_release(&d);
    return r;
}
