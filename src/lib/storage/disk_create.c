#include "disk_create.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "btrfs.h"
#include "zfs.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

#define TOOL_TIMEOUT_MS (10 * 60 * 1000)

/* Creates PATH (which must not exist) as a sparse file of SIZE bytes. */
static int sparse_file(const char *path, uint64_t size, struct qvm_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot create %s", path);
    int r = 0;
    if (ftruncate(fd, (off_t)size) < 0)
        r = qvm_err_errno(err, errno, "cannot size %s to %llu bytes", path,
                          (unsigned long long)size);
    else if (fsync(fd) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", path);
    close(fd);
    if (r < 0)
        unlink(path);
    return r;
}

int qvm_storage_data_disk_locate(const struct qvm_pool *pool, const char *vm, const char *disk,
                                 struct qvm_disk_info *ret, struct qvm_error *err)
{
    if (pool->driver->disk_create)
        return pool->driver->disk_locate(pool, vm, disk, ret, err);
    /* dir: raw even in overlay mode, since there is no image to overlay. */
    memset(ret, 0, sizeof *ret);
    char *dir = pool->driver->vm_dir(pool, vm);
    ret->path = xasprintf("%s/%s.raw", dir, disk);
    ret->format = xstrdup("raw");
    free(dir);
    return 0;
}

int qvm_storage_data_disk_create(const struct qvm_pool *pool, const char *vm, const char *disk,
                                 uint64_t size, struct qvm_error *err)
{
    if (pool->driver->disk_create)
        return pool->driver->disk_create(pool, vm, disk, size, err);
    struct qvm_disk_info loc;
    int r = qvm_storage_data_disk_locate(pool, vm, disk, &loc, err);
    if (r == 0 && (r = sparse_file(loc.path, size, err)) < 0)
        qvm_err_wrap(err, "cannot create disk %s of VM '%s'", disk, vm);
    qvm_disk_info_release(&loc);
    return r;
}

int qvm_btrfs_disk_create(const struct qvm_pool *pool, const char *vm, const char *disk,
                          uint64_t size, struct qvm_error *err)
{
    char *dir = xasprintf("%s/vms/%s/%s", pool->path, vm, disk);
    char *file = xasprintf("%s/disk.raw", dir);
    struct stat st;
    int r = 0;
    if (lstat(dir, &st) == 0) {
        r = qvm_err(err, EEXIST, "VM '%s' already has a disk %s", vm, dir);
    } else {
        const char *argv[QVM_BTRFS_ARGV_MAX];
        qvm_btrfs_argv_subvol_create(argv, dir);
        struct qvm_run_opts opts = { .timeout_ms = TOOL_TIMEOUT_MS };
        r = qvm_run(argv, &opts, NULL, err);
        if (r == 0 && (r = sparse_file(file, size, err)) < 0) {
            qvm_btrfs_argv_subvol_delete(argv, dir, true);
            qvm_run(argv, &opts, NULL, NULL);
        }
    }
    if (r < 0)
        qvm_err_wrap(err, "cannot create disk %s of VM '%s'", disk, vm);
    free(dir);
    free(file);
    return r;
}

int qvm_zfs_disk_create(const struct qvm_pool *pool, const char *vm, const char *disk,
                        uint64_t size, struct qvm_error *err)
{
    if (pool->mode && !strcmp(pool->mode, "zvol"))
        return qvm_err(err, ENOTSUP, "pool '%s' keeps disks as zvols; importing into a "
                       "zvol-mode pool is not supported yet: import into a dataset-mode pool",
                       pool->name);
    char *ds = xasprintf("%s/vms/%s/%s", pool->dataset, vm, disk);
    char *file = xasprintf("%s/vms/%s/%s/%s", pool->path, vm, disk, QVM_ZFS_DISK_FILE);
    char **argv = qvm_zfs_argv_create(ds, false);
    struct qvm_run_opts opts = { .timeout_ms = TOOL_TIMEOUT_MS };
    struct qvm_run_result res = { 0 };
    int r = qvm_run((const char *const *)argv, &opts, &res, err);
    qvm_zfs_argv_free(argv);
    if (r < 0 && res.err && qvm_zfs_classify(res.err) == QVM_ZFS_FAIL_EXISTS)
        r = qvm_err(err, EEXIST, "VM '%s' already has a disk (dataset %s)", vm, ds);
    qvm_run_result_release(&res);
    if (r == 0 && (r = sparse_file(file, size, err)) < 0) {
        /* zfs-fuse unmounts asynchronously: a destroy right after a create
         * can be "busy" for a moment (see zfs.c). The VM's journal destroys
         * the whole bundle anyway; this only tidies early. */
        char **d = qvm_zfs_argv_destroy(ds, true);
        for (int i = 0; i < 20 && qvm_run((const char *const *)d, &opts, NULL, NULL) < 0; i++)
            nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
        qvm_zfs_argv_free(d);
    }
    if (r < 0)
        qvm_err_wrap(err, "cannot create disk %s of VM '%s'", disk, vm);
    free(ds);
    free(file);
    return r;
}
