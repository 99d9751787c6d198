/* dir_snapshot.c - snapshots and clones of dir-pool VM disks. A VM disk is
 * DISK.raw (a reflink copy of its version) or DISK.qcow2 (an overlay whose
 * backing file is the version, by absolute path); a snapshot, a revert and
 * a clone are each a copy of that one file, made with FICLONE where the file
 * system shares extents (XFS, Btrfs: O(1)) and as a sparse copy elsewhere.
 * A copy of an overlay is an overlay of the same version, so nothing ever
 * depends on a file of another VM or of another snapshot: any snapshot can
 * be removed or reverted to, and a clone outlives its source.
 *
 *   VM/.snapshots/SNAP/DISK.EXT     a snapshot (mode 0444)
 *   VM/.snapshots/.SNAP.part/       a snapshot being made, renamed into place
 *   VM/.snapshots/.SNAP.removing/   a snapshot being removed
 *   VM/.revert-DISK.EXT             the disk as SNAP holds it, during a revert
 *   VM/.old-DISK.EXT                the disk a revert set aside, until freed
 *
 * Names starting with '.' are never qvm names, so none of these can meet a
 * disk or a file core/ writes. */
#include "dir_snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/names.h"
#include "util/reflink.h"
#include "util/strbuf.h"

static const char *const exts[] = { "raw", "qcow2" };

/* fsync of the directory holding PATH (a rename or a new entry in it). */
static int sync_parent(const char *path, struct qvm_error *err)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir)
        *slash = '\0';
    int r = qvm_fsync_dir(dir, err);
    free(dir);
    return r;
}

static char *snaps_dir(const struct qvm_pool *pool, const char *vm)
{
    char *d = qvm_storage_vm_dir(pool, vm);
    char *s = xasprintf("%s/.snapshots", d);
    free(d);
    return s;
}

/* -------------------------------------------------------------- copying */

static int copy_range(int in, int out, off_t off, off_t end, const char *src, const char *dst,
                      struct qvm_error *err)
{
    static char buf[1 << 16];
    bool plain = false;
    while (off < end) {
        size_t want = (size_t)(end - off);
        if (!plain) {
            loff_t a = off, b = off;
            ssize_t n = copy_file_range(in, &a, out, &b, want, 0);
            if (n > 0) {
                off += n;
                continue;
            }
            if (n == 0)
                return qvm_err(err, EIO, "%s ended early while it was copied", src);
            if (errno == EINTR)
                continue;
            if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
                return qvm_err_errno(err, errno, "cannot copy %s to %s", src, dst);
            plain = true;     /* across file systems on old kernels, or unsupported */
        }
        ssize_t n = pread(in, buf, want < sizeof buf ? want : sizeof buf, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? qvm_err_errno(err, errno, "cannot read %s", src)
                         : qvm_err(err, EIO, "%s ended early while it was copied", src);
        for (ssize_t done = 0; done < n;) {
            ssize_t w = pwrite(out, buf + done, (size_t)(n - done), off + done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return qvm_err_errno(err, errno, "cannot write %s", dst);
            done += w;
        }
        off += n;
    }
    return 0;
}

/* The data extents of IN (SEEK_DATA/SEEK_HOLE), so holes stay holes. */
static int sparse_copy(const char *src, const char *dst, mode_t mode, struct qvm_error *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return qvm_err_errno(err, errno, "cannot open %s", src);
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (out < 0) {
        int e = errno;
        close(in);
        return qvm_err_errno(err, e, "cannot create %s", dst);
    }
    struct stat st;
    int r = fstat(in, &st) < 0 ? qvm_err_errno(err, errno, "cannot stat %s", src) : 0;
    for (off_t pos = 0; r == 0 && pos < st.st_size;) {
        off_t data = lseek(in, pos, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break;                   /* only a hole is left */
        off_t hole = data < 0 ? -1 : lseek(in, data, SEEK_HOLE);
        if (data < 0 || hole < 0) {
            r = qvm_err_errno(err, errno, "cannot find the data of %s", src);
            break;
        }
        r = copy_range(in, out, data, hole, src, dst, err);
        pos = hole;
    }
    if (r == 0 && ftruncate(out, st.st_size) < 0)
        r = qvm_err_errno(err, errno, "cannot size %s", dst);
    if (r == 0 && fsync(out) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", dst);
    close(in);
    close(out);
    if (r < 0)
        unlink(dst);        /* ours: O_EXCL */
    return r;
}

int qvm_dir_copy_disk_file(const char *src, const char *dst, mode_t mode, struct qvm_error *err)
{
    struct qvm_error e = { 0 };
    int r = qvm_reflink_new(src, dst, mode, &e);
    if (r == -EOPNOTSUPP || r == -EXDEV)
        return sparse_copy(src, dst, mode, err);
    if (r < 0 && err)
        *err = e;
    return r;
}

/* ------------------------------------------------------------- reading */

/* The virtual size of a disk file: a raw file's length, or a qcow2's size
 * field (big-endian at offset 24 of its header: magic, version, backing
 * file offset and size, cluster bits, then the size), read directly so
 * that a listing starts no qemu-img. */
static int file_virtual_size(const char *path, const char *format, uint64_t *ret,
                             struct qvm_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open %s", path);
    struct stat st;
    unsigned char h[32];
    int r = 0;
    if (strcmp(format, "qcow2") != 0) {
        if (fstat(fd, &st) < 0)
            r = qvm_err_errno(err, errno, "cannot stat %s", path);
        else
            *ret = (uint64_t)st.st_size;
    } else if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h || memcmp(h, "QFI\xfb", 4) != 0) {
        r = qvm_err(err, EINVAL, "%s is not a qcow2 image", path);
    } else {
        uint64_t v = 0;
        for (int i = 24; i < 32; i++)
            v = v << 8 | h[i];
        *ret = v;
    }
    close(fd);
    return r;
}

/* The file of snapshot SNAP of DISK (DIR/DISK.raw or .qcow2): 0 and
 * *RET_PATH, *RET_EXT if there is one, -ENOENT if not. */
static int snap_file(const char *dir, const char *disk, char **ret_path, const char **ret_ext)
{
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        char *p = xasprintf("%s/%s.%s", dir, disk, exts[i]);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            *ret_path = p;
            if (ret_ext)
                *ret_ext = exts[i];
            return 0;
        }
        free(p);
    }
    return -ENOENT;
}

/* The current disk file of VM: it must exist. */
static int current_disk(const struct qvm_pool *pool, const char *vm, const char *disk,
                        struct qvm_disk_info *ret, struct qvm_error *err)
{
    int r = pool->driver->disk_locate(pool, vm, disk, ret, err);
    if (r == 0 && !qvm_path_exists(ret->path)) {
        r = qvm_err(err, ENOENT, "VM '%s' has no disk %s", vm, ret->path);
        qvm_disk_info_release(ret);
    }
    return r;
}

/* ----------------------------------------------------------- snapshots */

int qvm_dir_snapshot_create(const struct qvm_pool *pool, const char *vm, const char *disk,
                            const char *snap, struct qvm_error *err)
{
    struct qvm_disk_info cur;
    int r = current_disk(pool, vm, disk, &cur, err);
    if (r < 0)
        return r;
    char *dir = snaps_dir(pool, vm);
    char *final = xasprintf("%s/%s", dir, snap);
    char *part = xasprintf("%s/.%s.part", dir, snap);
    char *file = xasprintf("%s/%s", part, strrchr(cur.path, '/') + 1);
    bool made = false;
    if (qvm_path_exists(final))
        r = qvm_err(err, EEXIST, "VM '%s' already has a snapshot '%s'", vm, snap);
    if (r == 0)
        r = qvm_mkdir_p(dir, 0755, err);
    if (r == 0)
        r = qvm_rm_rf(part, err);           /* a create that was killed */
    if (r == 0 && mkdir(part, 0755) < 0)
        r = qvm_err_errno(err, errno, "cannot create %s", part);
    made = r == 0;
    if (r == 0)
        r = qvm_dir_copy_disk_file(cur.path, file, 0444, err);
    if (r == 0)
        r = qvm_fsync_dir(part, err);
    /* The snapshot appears whole, in one rename. */
    if (r == 0 && renameat2(AT_FDCWD, part, AT_FDCWD, final, RENAME_NOREPLACE) < 0)
        r = qvm_err_errno(err, errno, "cannot rename %s to %s", part, final);
    if (r == 0)
        r = qvm_fsync_dir(dir, err);
    if (r < 0) {
        if (made)
            qvm_rm_rf(part, NULL);
        rmdir(dir);                         /* only if empty */
        qvm_err_wrap(err, "cannot snapshot disk %s of VM '%s'", disk, vm);
    }
    free(dir);
    free(final);
    free(part);
    free(file);
    qvm_disk_info_release(&cur);
    return r;
}

int qvm_dir_snapshot_destroy(const struct qvm_pool *pool, const char *vm, const char *disk,
                             const char *snap, struct qvm_error *err)
{
    (void)disk;
    char *dir = snaps_dir(pool, vm);
    char *final = xasprintf("%s/%s", dir, snap);
    char *part = xasprintf("%s/.%s.part", dir, snap);
    char *gone = xasprintf("%s/.%s.removing", dir, snap);
    int r = qvm_rm_rf(part, err);
    if (r == 0)
        r = qvm_rm_rf(gone, err);
    /* One rename makes it disappear; the space is freed after. */
    if (r == 0 && rename(final, gone) == 0)
        r = qvm_fsync_dir(dir, err);
    else if (r == 0 && errno != ENOENT)
        r = qvm_err_errno(err, errno, "cannot remove snapshot '%s' of VM '%s'", snap, vm);
    if (r == 0)
        r = qvm_rm_rf(gone, err);
    rmdir(dir);
    free(dir);
    free(final);
    free(part);
    free(gone);
    return r;
}

static int cmp_snap(const void *a, const void *b)
{
    const struct qvm_snapshot_info *x = a, *y = b;
    return x->created != y->created ? (x->created < y->created ? -1 : 1) : strcmp(x->name, y->name);
}

int qvm_dir_snapshot_list(const struct qvm_pool *pool, const char *vm, const char *disk,
                          struct qvm_snapshot_info **ret, size_t *ret_n, struct qvm_error *err)
{
    *ret = NULL;
    *ret_n = 0;
    char *dir = snaps_dir(pool, vm);
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        free(dir);
        return e == ENOENT ? 0 : qvm_err_errno(err, e, "cannot read the snapshots of VM '%s'", vm);
    }
    struct qvm_snapshot_info *v = NULL;
    size_t n = 0;
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        if (!qvm_name_valid(de->d_name))
            continue;           /* ".", "..", and snapshots being made or removed */
        char *sdir = xasprintf("%s/%s", dir, de->d_name), *file = NULL;
        const char *ext = NULL;
        struct stat st;
        uint64_t size = 0;
        if (snap_file(sdir, disk, &file, &ext) == 0 && stat(file, &st) == 0 &&
            file_virtual_size(file, ext, &size, NULL) == 0) {
            v = xrealloc(v, (n + 1) * sizeof *v);
            /* Nanoseconds while sorting: snapshots a second apart or less
             * keep their order. */
            v[n++] = (struct qvm_snapshot_info){
                .name = xstrdup(de->d_name), .size = size,
                .created = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec };
        }
        free(file);
        free(sdir);
    }
    closedir(d);
    free(dir);
    qsort(v, n, sizeof *v, cmp_snap);
    for (size_t i = 0; i < n; i++)
        v[i].created /= 1000000000LL;
    *ret = v;
    *ret_n = n;
    return r;
}

int qvm_dir_snapshot_locate(const struct qvm_pool *pool, const char *vm, const char *disk,
                            const char *snap, struct qvm_disk_info *ret, struct qvm_error *err)
{
    char *dir = snaps_dir(pool, vm);
    char *sdir = xasprintf("%s/%s", dir, snap), *file = NULL;
    const char *ext = NULL;
    uint64_t size = 0;
    int r = snap_file(sdir, disk, &file, &ext);
    if (r < 0)
        r = qvm_err(err, ENOENT, "VM '%s' has no snapshot '%s'", vm, snap);
    else
        r = file_virtual_size(file, ext, &size, err);
    if (r == 0) {
        memset(ret, 0, sizeof *ret);
        ret->path = file;
        ret->format = xstrdup(ext);
        ret->virtual_size = size;
    } else {
        free(file);
    }
    free(dir);
    free(sdir);
    return r;
}

/* -------------------------------------------------------------- revert */

/* The three names a revert of DISK uses, for the format EXT. */
struct revert_paths {
    char *disk, *staged, *old;
};

static void revert_paths(const struct qvm_pool *pool, const char *vm, const char *disk,
                         const char *ext, struct revert_paths *p)
{
    char *d = qvm_storage_vm_dir(pool, vm);
    p->disk = xasprintf("%s/%s.%s", d, disk, ext);
    p->staged = xasprintf("%s/.revert-%s.%s", d, disk, ext);
    p->old = xasprintf("%s/.old-%s.%s", d, disk, ext);
    free(d);
}

static void revert_paths_free(struct revert_paths *p)
{
    free(p->disk);
    free(p->staged);
    free(p->old);
}

int qvm_dir_snapshot_revert_prepare(const struct qvm_pool *pool, const char *vm, const char *disk,
                                    const char *snap, struct qvm_error *err)
{
    struct qvm_disk_info cur, from;
    int r = current_disk(pool, vm, disk, &cur, err);
    if (r < 0)
        return r;
    r = qvm_dir_snapshot_locate(pool, vm, disk, snap, &from, err);
    if (r < 0) {
        qvm_disk_info_release(&cur);
        return r;
    }
    struct revert_paths p;
    revert_paths(pool, vm, disk, cur.format, &p);
    if (strcmp(cur.format, from.format) != 0)
        r = qvm_err(err, EINVAL, "snapshot '%s' of VM '%s' holds a %s disk, but the VM's disk is "
                    "%s", snap, vm, from.format, cur.format);
    if (r == 0 && unlink(p.staged) < 0 && errno != ENOENT)
        r = qvm_err_errno(err, errno, "cannot remove %s", p.staged);
    if (r == 0)
        r = qvm_dir_copy_disk_file(from.path, p.staged, 0644, err);
    if (r == 0)
        r = sync_parent(p.staged, err);
    if (r < 0)
        qvm_err_wrap(err, "cannot revert VM '%s' to snapshot '%s'", vm, snap);
    revert_paths_free(&p);
    qvm_disk_info_release(&cur);
    qvm_disk_info_release(&from);
    return r;
}

/* The format of DISK from whichever of its revert files exists. */
static const char *revert_ext(const struct qvm_pool *pool, const char *vm, const char *disk)
{
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        struct revert_paths p;
        revert_paths(pool, vm, disk, exts[i], &p);
        bool any = qvm_path_exists(p.disk) || qvm_path_exists(p.staged) || qvm_path_exists(p.old);
        revert_paths_free(&p);
        if (any)
            return exts[i];
    }
    return NULL;
}

/* Two renames: the disk aside, the staged copy into its place. Between
 * them the disk is missing; revert_undo puts it back from there too. */
int qvm_dir_snapshot_revert_swap(const struct qvm_pool *pool, const char *vm, const char *disk,
                                 struct qvm_error *err)
{
    const char *ext = revert_ext(pool, vm, disk);
    if (!ext)
        return qvm_err(err, ENOENT, "VM '%s' has no disk %s", vm, disk);
    struct revert_paths p;
    revert_paths(pool, vm, disk, ext, &p);
    int r = 0;
    if (!qvm_path_exists(p.staged))
        r = qvm_err(err, ENOENT, "no reverted disk %s was prepared", p.staged);
    else if (renameat2(AT_FDCWD, p.disk, AT_FDCWD, p.old, RENAME_NOREPLACE) < 0)
        r = qvm_err_errno(err, errno, "cannot move %s aside", p.disk);
    else if (rename(p.staged, p.disk) < 0)
        r = qvm_err_errno(err, errno, "cannot rename %s to %s", p.staged, p.disk);
    if (r == 0)
        r = sync_parent(p.disk, err);
    revert_paths_free(&p);
    return r;
}

int qvm_dir_snapshot_revert_undo(const struct qvm_pool *pool, const char *vm, const char *disk,
                                 struct qvm_error *err)
{
    int r = 0;
    for (size_t i = 0; r == 0 && i < sizeof exts / sizeof exts[0]; i++) {
        struct revert_paths p;
        revert_paths(pool, vm, disk, exts[i], &p);
        /* The old disk, where it was set aside, goes back over the
         * reverted copy (a copy of a snapshot that still exists). */
        if (qvm_path_exists(p.old) && rename(p.old, p.disk) < 0)
            r = qvm_err_errno(err, errno, "cannot move %s back to %s", p.old, p.disk);
        if (r == 0 && unlink(p.staged) < 0 && errno != ENOENT)
            r = qvm_err_errno(err, errno, "cannot remove %s", p.staged);
        if (r == 0)
            r = sync_parent(p.disk, err);
        revert_paths_free(&p);
    }
    return r;
}

int qvm_dir_snapshot_revert_finish(const struct qvm_pool *pool, const char *vm, const char *disk,
                                   struct qvm_error *err)
{
    int r = 0;
    for (size_t i = 0; r == 0 && i < sizeof exts / sizeof exts[0]; i++) {
        struct revert_paths p;
        revert_paths(pool, vm, disk, exts[i], &p);
        if (unlink(p.old) < 0 && errno != ENOENT)
            r = qvm_err_errno(err, errno, "cannot remove %s", p.old);
        else if (unlink(p.staged) < 0 && errno != ENOENT)
            r = qvm_err_errno(err, errno, "cannot remove %s", p.staged);
        revert_paths_free(&p);
    }
    return r;
}

int qvm_dir_snapshot_tidy(const struct qvm_pool *pool, const char *vm, const char *disk,
                          struct qvm_error *err)
{
    (void)disk;
    char *dir = snaps_dir(pool, vm);
    DIR *d = opendir(dir);
    int r = 0;
    struct dirent *de;
    while (d && r == 0 && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        bool part = len > 5 && !strcmp(de->d_name + len - 5, ".part");
        bool gone = len > 9 && !strcmp(de->d_name + len - 9, ".removing");
        if (de->d_name[0] == '.' && (part || gone)) {
            char *p = xasprintf("%s/%s", dir, de->d_name);
            r = qvm_rm_rf(p, err);
            free(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
    free(dir);
    return r;
}

/* --------------------------------------------------------------- clone */

int qvm_dir_vm_disk_clone(const struct qvm_pool *pool, const char *src, const char *disk,
                          const char *snap, const char *dst, const char *dst_disk,
                          const struct qvm_prop *props, size_t nprops,
                          struct qvm_disk_info *ret, struct qvm_error *err)
{
    (void)props;
    (void)nprops;             /* core refuses disk.zvol properties outside zfs */
    struct qvm_disk_info from;
    int r = snap ? qvm_dir_snapshot_locate(pool, src, disk, snap, &from, err)
                 : current_disk(pool, src, disk, &from, err);
    if (r < 0)
        return r;
    uint64_t size = from.virtual_size;
    if (!snap)
        r = file_virtual_size(from.path, from.format, &size, err);
    char *bundle = qvm_storage_vm_dir(pool, dst);
    char *path = xasprintf("%s/%s.%s", bundle, dst_disk, from.format);
    if (r == 0 && qvm_path_exists(path))
        r = qvm_err(err, EEXIST, "VM '%s' already has a disk %s", dst, path);
    if (r == 0)
        r = qvm_dir_copy_disk_file(from.path, path, 0644, err);
    if (r == 0)
        r = sync_parent(path, err);
    if (r == 0) {
        memset(ret, 0, sizeof *ret);
        ret->path = path;
        ret->format = xstrdup(from.format);
        ret->virtual_size = size;
    } else {
        free(path);
        qvm_err_wrap(err, "cannot clone disk %s of VM '%s'%s%s%s", disk, src,
                     snap ? " (snapshot '" : "", snap ? snap : "", snap ? "')" : "");
    }
    free(bundle);
    qvm_disk_info_release(&from);
    return r;
}
