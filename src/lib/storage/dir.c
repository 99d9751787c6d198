/* dir.c - the plain-directory backend (seed 002): images are directories of
 * sparse raw version files made read-only once written. A VM disk is made
 * one of two ways (the pool's mode):
 *   reflink  a raw reflink copy (FICLONE) of the version: XFS, Btrfs. The
 *            disk stands alone, costs nothing until written, and runs at
 *            raw speed with no backing chain.
 *   overlay  a qcow2 overlay whose backing file is the version: any file
 *            system (ext4).
 *   auto     (the default) reflink where the file system can, else overlay.
 *
 *   POOL/images/NAME/image.json   metadata (written by core/)
 *   POOL/images/NAME/v1.raw       version 1, mode 0444
 *   POOL/vms/VM/                  the VM bundle: vm.json, seed.iso, and
 *                                 disk0.raw (reflink) or disk0.qcow2 (overlay)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockdelta.h"
#include "dir_snapshot.h"
#include "storage.h"
#include "util/fsutil.h"
#include "util/reflink.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

static int dir_pool_open(struct qvm_pool *pool, struct qvm_error *err)
{
    if (!pool->path || pool->path[0] != '/')
        return qvm_err(err, EINVAL, "a dir pool needs an absolute path");
    if (!pool->mode)
        pool->mode = xstrdup("auto");
    else if (strcmp(pool->mode, "auto") && strcmp(pool->mode, "reflink") &&
             strcmp(pool->mode, "overlay"))
        return qvm_err(err, EINVAL, "unknown dir mode '%s' (modes: auto, reflink, overlay)",
                       pool->mode);
    return 0;
}

/* Whether new VM disks of this pool are reflink copies. "auto" probes the
 * file system once per process and pool. */
static bool use_reflink(const struct qvm_pool *pool)
{
    static char *probed_path;
    static bool probed;
    if (!strcmp(pool->mode, "overlay"))
        return false;
    if (!strcmp(pool->mode, "reflink"))
        return true;
    if (!probed_path || strcmp(probed_path, pool->path)) {
        free(probed_path);
        probed_path = xstrdup(pool->path);
        probed = qvm_reflink_supported(pool->path);
    }
    return probed;
}

static int dir_pool_init(const struct qvm_pool *pool, struct qvm_error *err)
{
    char *images = xasprintf("%s/images", pool->path);
    char *vms = xasprintf("%s/vms", pool->path);
    int r = qvm_mkdir_p(images, 0755, err);
    if (r == 0)
        r = qvm_mkdir_p(vms, 0755, err);
    if (r == 0 && !strcmp(pool->mode, "reflink") && !qvm_reflink_supported(images))
        r = qvm_err(err, EOPNOTSUPP, "pool '%s': the file system under %s cannot make reflink "
                    "copies (FICLONE); XFS made with reflink=1 and Btrfs can (or use mode "
                    "auto or overlay)", pool->name, pool->path);
    free(images);
    free(vms);
    return r;
}

static char *version_path(const struct qvm_pool *pool, const char *image, const char *version)
{
    return xasprintf("%s/images/%s/%s.raw", pool->path, image, version);
}

static int make_container(const char *parent, const char *path, const char *what,
                          struct qvm_error *err)
{
    int r = qvm_mkdir_p(parent, 0755, err);
    if (r < 0)
        return r;
    if (mkdir(path, 0755) < 0) {
        if (errno == EEXIST)
            return qvm_err(err, EEXIST, "%s already exists (%s)", what, path);
        return qvm_err_errno(err, errno, "cannot create %s", path);
    }
    return 0;
}

static int dir_image_create(const struct qvm_pool *pool, const char *image, struct qvm_error *err)
{
    char *parent = xasprintf("%s/images", pool->path);
    char *path = qvm_storage_image_dir(pool, image);
    char *what = xasprintf("image '%s'", image);
    int r = make_container(parent, path, what, err);
    free(parent);
    free(path);
    free(what);
    return r;
}

static int fsync_path(const char *path, struct qvm_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open %s", path);
    int r = 0;
    if (fsync(fd) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", path);
    close(fd);
    return r;
}

static int dir_version_import(const struct qvm_pool *pool, const char *image, const char *version,
                              const char *src, const char *src_format, struct qvm_ui *ui,
                              struct qvm_error *err)
{
    char *dst = version_path(pool, image, version);
    char *part = xasprintf("%s.part", dst);
    bool progress = ui && ui->show_progress;
    /* convert writes sparse output (runs of zeroes are skipped), from raw
     * or qcow2 input alike. */
    const char *argv[] = { "qemu-img", "convert", progress ? "-p" : "-q", "-f", src_format,
                           "-O", "raw", src, part, NULL };
    struct qvm_run_opts opts = { .timeout_ms = 60 * 60 * 1000, .inherit_stdout = progress };
    int r = qvm_run(argv, &opts, NULL, err);
    if (r < 0)
        qvm_err_wrap(err, "cannot copy %s into the pool", src);
    if (r == 0)
        r = fsync_path(part, err);
    if (r == 0 && chmod(part, 0444) < 0)
        r = qvm_err_errno(err, errno, "cannot make %s read-only", part);
    /* Versions are immutable and back VM disks: never replace one. */
    if (r == 0 && renameat2(AT_FDCWD, part, AT_FDCWD, dst, RENAME_NOREPLACE) < 0)
        r = errno == EEXIST ? qvm_err(err, EEXIST, "version %s of image '%s' already exists",
                                      version, image)
                            : qvm_err_errno(err, errno, "cannot rename %s to %s", part, dst);
    if (r < 0)
        unlink(part);
    free(dst);
    free(part);
    return r;
}

static int dir_version_info(const struct qvm_pool *pool, const char *image, const char *version,
                            struct qvm_disk_info *ret, struct qvm_error *err)
{
    char *path = version_path(pool, image, version);
    struct stat st;
    if (stat(path, &st) < 0) {
        int e = errno;
        free(path);
        if (e == ENOENT)
            return qvm_err(err, ENOENT, "image '%s' has no version %s", image, version);
        return qvm_err_errno(err, e, "cannot stat version %s of image '%s'", version, image);
    }
    memset(ret, 0, sizeof *ret);
    ret->path = path;
    ret->format = xstrdup("raw");
    ret->virtual_size = (uint64_t)st.st_size;
    return 0;
}

static int dir_image_destroy(const struct qvm_pool *pool, const char *image, struct qvm_error *err)
{
    char *path = qvm_storage_image_dir(pool, image);
    int r = qvm_rm_rf(path, err);
    free(path);
    return r;
}

/* The disk as it is (DISK.raw or DISK.qcow2 in the bundle), or as the
 * pool's mode will make it. */
static int dir_disk_locate(const struct qvm_pool *pool, const char *vm, const char *disk,
                           struct qvm_disk_info *ret, struct qvm_error *err)
{
    (void)err;
    memset(ret, 0, sizeof *ret);
    char *raw = xasprintf("%s/vms/%s/%s.raw", pool->path, vm, disk);
    char *qcow2 = xasprintf("%s/vms/%s/%s.qcow2", pool->path, vm, disk);
    bool is_raw = qvm_path_exists(raw) ? true
                  : qvm_path_exists(qcow2) ? false : use_reflink(pool);
    ret->path = is_raw ? raw : qcow2;
    ret->format = xstrdup(is_raw ? "raw" : "qcow2");
    free(is_raw ? qcow2 : raw);
    return 0;
}

/* A raw disk becomes a version by a reflink copy: nothing is copied. */
static int reflink_version(const struct qvm_pool *pool, const char *image, const char *version,
                           const char *src, struct qvm_error *err)
{
    char *dst = version_path(pool, image, version);
    char *part = xasprintf("%s.part", dst);
    unlink(part);
    int r = qvm_reflink_new(src, part, 0444, err);
    if (r == 0 && renameat2(AT_FDCWD, part, AT_FDCWD, dst, RENAME_NOREPLACE) < 0) {
        r = errno == EEXIST ? qvm_err(err, EEXIST, "version %s of image '%s' already exists",
                                      version, image)
                            : qvm_err_errno(err, errno, "cannot rename %s to %s", part, dst);
        unlink(part);
    }
    free(dst);
    free(part);
    return r;
}

/* A new version is a sparse raw file standing alone (a reflink copy of a
 * raw disk, or a qcow2 overlay read through its backing version), so any
 * version can be removed without touching the others. */
static int dir_version_from_disk(const struct qvm_pool *pool, const char *image,
                                 const char *version, const char *vm, const char *disk,
                                 struct qvm_ui *ui, struct qvm_error *err)
{
    struct qvm_disk_info src;
    int r = dir_disk_locate(pool, vm, disk, &src, err);
    if (r == 0 && !strcmp(src.format, "raw")) {
        struct qvm_error e = { 0 };
        r = reflink_version(pool, image, version, src.path, &e);
        if (r == -EOPNOTSUPP || r == -EXDEV)
            r = 1;       /* moved to a file system without reflinks: copy */
        else if (r < 0 && err)
            *err = e;
    } else {
        r = r < 0 ? r : 1;
    }
    if (r == 1)
        r = dir_version_import(pool, image, version, src.path, src.format, ui, err);
    qvm_disk_info_release(&src);
    return r;
}

static int dir_version_send(const struct qvm_pool *pool, const char *image, const char *version,
                            const char *from, int out_fd, struct qvm_error *err)
{
    char *path = version_path(pool, image, version);
    char *base = from ? version_path(pool, image, from) : NULL;
    int r = qvm_blockdelta_write(path, base, out_fd, err);
    free(path);
    free(base);
    return r;
}

static int dir_version_receive(const struct qvm_pool *pool, const char *image,
                               const char *version, const char *from, int in_fd,
                               struct qvm_error *err)
{
    char *dst = version_path(pool, image, version);
    char *part = xasprintf("%s.part", dst);
    char *base = from ? version_path(pool, image, from) : NULL;
    int r = 0;
    if (qvm_path_exists(dst))
        r = qvm_err(err, EEXIST, "version %s of image '%s' already exists", version, image);
    else if (base && !qvm_path_exists(base))
        r = qvm_err(err, ENOENT, "image '%s' has no version %s to apply the stream to", image,
                    from);
    if (r == 0) {
        unlink(part);
        r = qvm_blockdelta_apply(in_fd, base, part, err);
    }
    if (r == 0 && chmod(part, 0444) < 0)
        r = qvm_err_errno(err, errno, "cannot make %s read-only", part);
    if (r == 0 && renameat2(AT_FDCWD, part, AT_FDCWD, dst, RENAME_NOREPLACE) < 0)
        r = qvm_err_errno(err, errno, "cannot rename %s to %s", part, dst);
    if (r < 0)
        unlink(part);
    free(dst);
    free(part);
    free(base);
    return r;
}

static int dir_version_destroy(const struct qvm_pool *pool, const char *image,
                               const char *version, struct qvm_error *err)
{
    /* The empty-overlay templates of this version go first: they name the
     * version as their backing file. */
    char *dir = xasprintf("%s/images/%s/.overlays", pool->path, image);
    char *prefix = xasprintf("%s-", version);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
            char *p = xasprintf("%s/%s", dir, de->d_name);
            unlink(p);
            free(p);
        }
    }
    if (d)
        closedir(d);
    free(prefix);
    free(dir);
    char *path = version_path(pool, image, version);
    char *part = xasprintf("%s.part", path);
    unlink(part);       /* a receive or import cut short */
    int r = 0;
    if (unlink(path) < 0 && errno != ENOENT)
        r = qvm_err_errno(err, errno, "cannot remove %s", path);
    free(path);
    free(part);
    return r;
}

static int dir_vm_create(const struct qvm_pool *pool, const char *vm, struct qvm_error *err)
{
    char *parent = xasprintf("%s/vms", pool->path);
    char *path = qvm_storage_vm_dir(pool, vm);
    char *what = xasprintf("VM '%s'", vm);
    int r = make_container(parent, path, what, err);
    free(parent);
    free(path);
    free(what);
    return r;
}

/* An empty qcow2 overlay of a version is the same file for every VM of
 * the same disk size, so qemu-img makes it once, under
 * images/NAME/.overlays/vN-SIZE.qcow2 (mode 0444), and each new disk is a
 * copy of it: copying ~200 KiB is far cheaper than starting qemu-img. The
 * directory is a cache, not state: removing it loses nothing. */
static int overlay_template(const struct qvm_pool *pool, const char *image, const char *version,
                            const char *base_path, uint64_t size, char **ret,
                            struct qvm_error *err)
{
    char *dir = xasprintf("%s/images/%s/.overlays", pool->path, image);
    char *path = xasprintf("%s/%s-%llu.qcow2", dir, version, (unsigned long long)size);
    int r = 0;
    if (qvm_path_exists(path))
        goto out;
    r = qvm_mkdir_p(dir, 0755, err);
    if (r < 0)
        goto out;
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    char sizestr[32];
    snprintf(sizestr, sizeof sizestr, "%llu", (unsigned long long)size);
    const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                           "-b", base_path, tmp, sizestr, NULL };
    struct qvm_run_opts opts = { .timeout_ms = 60000 };
    unlink(tmp);
    r = qvm_run(argv, &opts, NULL, err);
    if (r == 0)
        r = fsync_path(tmp, err);
    if (r == 0 && chmod(tmp, 0444) < 0)
        r = qvm_err_errno(err, errno, "cannot make %s read-only", tmp);
    /* Another qvm may have made the same template meanwhile: keep theirs. */
    if (r == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0 && errno != EEXIST)
        r = qvm_err_errno(err, errno, "cannot rename %s to %s", tmp, path);
    unlink(tmp);
    free(tmp);
out:
    free(dir);
    if (r < 0) {
        free(path);
        return r;
    }
    *ret = path;
    return 0;
}

/* Copies SRC to DST, which must not exist, and syncs it. */
static int copy_new_file(const char *src, const char *dst, struct qvm_error *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return qvm_err_errno(err, errno, "cannot open %s", src);
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return qvm_err_errno(err, e, "cannot create %s", dst);
    }
    int r = 0;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = qvm_err_errno(err, errno, "cannot read %s", src);
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                r = qvm_err_errno(err, errno, "cannot write %s", dst);
                break;
            }
            off += w;
        }
        if (r < 0)
            break;
    }
    if (r == 0 && fsync(out) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", dst);
    close(in);
    close(out);
    if (r < 0)
        unlink(dst);     /* we created it (O_EXCL) */
    return r;
}

static int dir_disk_clone(const struct qvm_pool *pool, const char *image, const char *version,
                          const char *vm, const char *disk, uint64_t size,
                          const struct qvm_prop *props, size_t nprops,
                          struct qvm_disk_info *ret, struct qvm_error *err)
{
    struct qvm_disk_info base;
    int r = dir_version_info(pool, image, version, &base, err);
    if (r < 0)
        return r;
    if (size == 0)
        size = base.virtual_size;
    if (size < base.virtual_size) {
        r = qvm_err(err, EINVAL, "disk size %llu bytes is smaller than image '%s@%s' (%llu bytes)",
                    (unsigned long long)size, image, version,
                    (unsigned long long)base.virtual_size);
        qvm_disk_info_release(&base);
        return r;
    }
    struct qvm_disk_info loc;
    dir_disk_locate(pool, vm, disk, &loc, NULL);
    char *dst = loc.path;
    bool reflink = !strcmp(loc.format, "raw");
    free(loc.format);
    if (qvm_path_exists(dst)) {
        r = qvm_err(err, EEXIST, "VM '%s' already has a disk %s", vm, dst);
        free(dst);
        qvm_disk_info_release(&base);
        return r;
    }
    char *tmpl = NULL;
    if (reflink) {
        r = qvm_reflink_new(base.path, dst, 0644, err);
        if (r == -EOPNOTSUPP || r == -EXDEV)
            r = qvm_err(err, EOPNOTSUPP, "pool '%s' is in mode reflink, but the file system "
                        "under %s cannot make reflink copies (use mode auto or overlay)",
                        pool->name, pool->path);
        /* A bigger disk: the tail is a hole, which the guest's growpart
         * claims on first boot. */
        if (r == 0 && size > base.virtual_size && truncate(dst, (off_t)size) < 0) {
            r = qvm_err_errno(err, errno, "cannot grow the disk of VM '%s' to %llu bytes", vm,
                              (unsigned long long)size);
            unlink(dst);
        }
    } else {
        r = overlay_template(pool, image, version, base.path, size, &tmpl, err);
        if (r == 0)
            r = copy_new_file(tmpl, dst, err);
    }
    if (r < 0) {
        qvm_err_wrap(err, "cannot clone image '%s@%s' for VM '%s'", image, version, vm);
        free(dst);
    } else {
        memset(ret, 0, sizeof *ret);
        ret->path = dst;
        ret->format = xstrdup(reflink ? "raw" : "qcow2");
        ret->virtual_size = size;
    }
    free(tmpl);
    qvm_disk_info_release(&base);
    return r;
}

static char *dir_adopt_path(const struct qvm_pool *pool, const char *vm, const char *disk,
                            const char *format)
{
    return xasprintf("%s/vms/%s/%s.%s", pool->path, vm, disk, format);
}

static int dir_vm_destroy(const struct qvm_pool *pool, const char *vm, struct qvm_error *err)
{
    char *path = qvm_storage_vm_dir(pool, vm);
    int r = qvm_rm_rf(path, err);
    free(path);
    return r;
}

const struct qvm_storage_driver qvm_storage_dir = {
    .name = "dir",
    .pool_open = dir_pool_open,
    .pool_init = dir_pool_init,
    .image_dir = qvm_storage_image_dir,
    .vm_dir = qvm_storage_vm_dir,
    .image_create = dir_image_create,
    .version_import = dir_version_import,
    .version_info = dir_version_info,
    .image_destroy = dir_image_destroy,
    .version_from_disk = dir_version_from_disk,
    .stream_format = "qvm-blockdelta-1",
    .version_send = dir_version_send,
    .version_receive = dir_version_receive,
    .version_destroy = dir_version_destroy,
    .vm_create = dir_vm_create,
    .disk_locate = dir_disk_locate,
    .disk_clone = dir_disk_clone,
    .adopt_path = dir_adopt_path,
    .disk_resize = qvm_storage_file_disk_resize,
    .vm_destroy = dir_vm_destroy,
    /* Snapshots and clones: storage/dir_snapshot.c */
    .snapshot_create = qvm_dir_snapshot_create,
    .snapshot_destroy = qvm_dir_snapshot_destroy,
    .snapshot_list = qvm_dir_snapshot_list,
    .snapshot_locate = qvm_dir_snapshot_locate,
    .snapshot_revert_prepare = qvm_dir_snapshot_revert_prepare,
    .snapshot_revert_swap = qvm_dir_snapshot_revert_swap,
    .snapshot_revert_undo = qvm_dir_snapshot_revert_undo,
    .snapshot_revert_finish = qvm_dir_snapshot_revert_finish,
    .snapshot_tidy = qvm_dir_snapshot_tidy,
    .vm_disk_clone = qvm_dir_vm_disk_clone,
};
