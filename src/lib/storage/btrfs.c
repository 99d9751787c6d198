/* btrfs.c - the Btrfs backend: images and VM bundles are subvolumes,
 * versions read-only snapshots of their image, and a VM disk is a writable
 * snapshot of a version, made in O(1) whatever the image's size.
 *
 *   POOL/images/NAME/              subvolume: image.json (core/); disk.raw
 *                                  while a version is being imported
 *   POOL/images/.versions/NAME/vN  read-only snapshot of images/NAME (import)
 *                                  or of a VM's disk (image commit): vN/disk.raw
 *   POOL/vms/VM/                   subvolume: vm.json, vm.yaml, seed.iso, ...
 *   POOL/vms/VM/DISK/              writable snapshot of a version: DISK/disk.raw,
 *                                  grown (sparse) to the VM's disk size
 *   POOL/images/.versions/NAME/vN.receiving/vN
 *                                  a version while btrfs receive makes it
 *
 * Streams are btrfs send streams ("btrfs-send-1"): btrfs send of the
 * version's snapshot (-p the base for the changes since it); btrfs receive
 * into the staging directory, then the checked subvolume renamed into place.
 *
 * Subvolumes are created, snapshotted, deleted, sent and received by
 * btrfs(8) (the command lines come from the builders of btrfs.h, checked
 * by tests/unit/test_btrfs_argv.c). No btrfs output is parsed: a directory
 * is a subvolume when its inode number is 256 (BTRFS_FIRST_FREE_OBJECTID),
 * the test btrfs-progs itself uses, and a received subvolume's read-only
 * flag and received UUID are read (and the flag set) with the ioctls
 * btrfs property and btrfs subvolume show use.
 *
 * This file owns nothing outside the pool's directory and never touches
 * files core/ writes except to delete them with their subvolume. */
#include "btrfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "disk_create.h"
#include "storage.h"
#include "util/fsutil.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

/* btrfs calls are metadata operations, but a snapshot first flushes the
 * source's dirty data and a delete with --commit-after waits for a
 * transaction commit: on a slow or busy disk either can take a while. */
#define BTRFS_TIMEOUT_MS (10 * 60 * 1000)
#define CONVERT_TIMEOUT_MS (60 * 60 * 1000)
/* A stream goes at the pace of its other end (a large image over a slow
 * link): this only ends a transfer whose peer stopped for good. */
#define STREAM_TIMEOUT_MS (24 * 60 * 60 * 1000)
/* Subvolumes nested deeper than this inside a bundle are not ours. */
#define MAX_DEPTH 8

/* --- command lines (btrfs.h) --------------------------------------------- */

size_t qvm_btrfs_argv_subvol_create(const char **argv, const char *path)
{
    size_t n = 0;
    argv[n++] = "btrfs";
    argv[n++] = "subvolume";
    argv[n++] = "create";
    argv[n++] = path;
    argv[n] = NULL;
    return n;
}

size_t qvm_btrfs_argv_snapshot(const char **argv, const char *src, const char *dst,
                               bool readonly)
{
    size_t n = 0;
    argv[n++] = "btrfs";
    argv[n++] = "subvolume";
    argv[n++] = "snapshot";
    if (readonly)
        argv[n++] = "-r";
    argv[n++] = src;
    argv[n++] = dst;
    argv[n] = NULL;
    return n;
}

size_t qvm_btrfs_argv_subvol_delete(const char **argv, const char *path, bool commit)
{
    size_t n = 0;
    argv[n++] = "btrfs";
    argv[n++] = "subvolume";
    argv[n++] = "delete";
    if (commit)
        argv[n++] = "--commit-after";
    argv[n++] = path;
    argv[n] = NULL;
    return n;
}

size_t qvm_btrfs_argv_send(const char **argv, const char *snapshot, const char *parent)
{
    size_t n = 0;
    argv[n++] = "btrfs";
    argv[n++] = "send";
    if (parent) {
        argv[n++] = "-p";
        argv[n++] = parent;
    }
    argv[n++] = snapshot;
    argv[n] = NULL;
    return n;
}

size_t qvm_btrfs_argv_receive(const char **argv, const char *dir)
{
    size_t n = 0;
    argv[n++] = "btrfs";
    argv[n++] = "receive";
    argv[n++] = "-e";
    argv[n++] = dir;
    argv[n] = NULL;
    return n;
}

size_t qvm_btrfs_argv_convert(const char **argv, const char *src, const char *src_format,
                              const char *dst, bool progress)
{
    size_t n = 0;
    argv[n++] = "qemu-img";
    argv[n++] = "convert";
    argv[n++] = progress ? "-p" : "-q";
    argv[n++] = "-f";
    argv[n++] = src_format;
    argv[n++] = "-O";
    argv[n++] = "raw";
    argv[n++] = src;
    argv[n++] = dst;
    argv[n] = NULL;
    return n;
}

/* --- helpers --------------------------------------------------------------- */

static int run_btrfs_opts(const char **argv, const struct qvm_run_opts *opts,
                          struct qvm_error *err)
{
    int r = qvm_run(argv, opts, NULL, err);
    if (r == -ENOENT)
        return qvm_err(err, ENOENT, "btrfs not found; install the btrfs-progs package");
    return r;
}

static int run_btrfs(const char **argv, struct qvm_error *err)
{
    struct qvm_run_opts opts = { .timeout_ms = BTRFS_TIMEOUT_MS };
    return run_btrfs_opts(argv, &opts, err);
}

/* Commits the running transaction of the file system holding PATH's parent
 * (syncfs(2) on Btrfs is a transaction commit). */
static int commit(const char *path, struct qvm_error *err)
{
    char *parent = xstrdup(path);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent)
        *slash = '\0';
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = 0;
    if (fd < 0)
        r = qvm_err_errno(err, errno, "cannot open %s", parent);
    else if (syncfs(fd) < 0)
        r = qvm_err_errno(err, errno, "cannot commit the deletions under %s", parent);
    if (fd >= 0)
        close(fd);
    free(parent);
    return r;
}

/* What the tree walks need of a directory entry. */
struct entry {
    bool exists, dir, subvolume;
    bool has_mnt_id;            /* kernels before 5.8 do not say */
    uint64_t mnt_id;
};

static int entry_at(int dirfd, const char *name, const char *shown, struct entry *ret,
                    struct qvm_error *err)
{
    struct statx stx;
    memset(ret, 0, sizeof *ret);
    if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO | STATX_MNT_ID, &stx) < 0)
        return errno == ENOENT ? 0 : qvm_err_errno(err, errno, "cannot stat %s", shown);
    ret->exists = true;
    ret->dir = S_ISDIR(stx.stx_mode);
    ret->subvolume = ret->dir && stx.stx_ino == BTRFS_FIRST_FREE_OBJECTID;
    ret->has_mnt_id = stx.stx_mask & STATX_MNT_ID;
    ret->mnt_id = stx.stx_mnt_id;
    return 0;
}

/* 1 if PATH is a subvolume, 0 if something else, -ENOENT if missing. */
static int is_subvolume(const char *path, struct qvm_error *err)
{
    struct entry e;
    int r = entry_at(AT_FDCWD, path, path, &e, err);
    if (r < 0)
        return r;
    return e.exists ? e.subvolume : -ENOENT;
}

static int subvol_create(const char *path, struct qvm_error *err)
{
    const char *argv[QVM_BTRFS_ARGV_MAX];
    qvm_btrfs_argv_subvol_create(argv, path);
    return run_btrfs(argv, err);
}

static int subvol_delete(const char *path, bool commit, struct qvm_error *err)
{
    const char *argv[QVM_BTRFS_ARGV_MAX];
    qvm_btrfs_argv_subvol_delete(argv, path, commit);
    return run_btrfs(argv, err);
}

static int snapshot(const char *src, const char *dst, bool readonly, struct qvm_error *err)
{
    const char *argv[QVM_BTRFS_ARGV_MAX];
    qvm_btrfs_argv_snapshot(argv, src, dst, readonly);
    return run_btrfs(argv, err);
}

/* Deletes every subvolume below directory PATH (on mount TOP), innermost
 * first (a subvolume holding another cannot be deleted), without deleting
 * PATH. Like qvm_rm_rf, never crosses into another mount. Counts the
 * deletions in *DELETED. */
static int delete_nested(const char *path, const struct entry *top, int depth, int *deleted,
                         struct qvm_error *err)
{
    if (depth > MAX_DEPTH)
        return qvm_err(err, ELOOP, "refusing to remove %s: directories nested too deep", path);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : qvm_err_errno(err, errno, "cannot open %s", path);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return qvm_err_errno(err, errno, "cannot read %s", path);
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
            continue;
        char *sub = xasprintf("%s/%s", path, de->d_name);
        struct entry e;
        r = entry_at(dirfd(d), de->d_name, sub, &e, err);
        if (r == 0 && e.dir && top->has_mnt_id && e.has_mnt_id && e.mnt_id != top->mnt_id)
            r = qvm_err(err, EXDEV, "refusing to remove %s: it is a mount point", sub);
        if (r == 0 && e.dir)
            r = delete_nested(sub, top, depth + 1, deleted, err);
        if (r == 0 && e.subvolume) {
            r = subvol_delete(sub, false, err);
            (*deleted)++;
        }
        free(sub);
    }
    closedir(d);
    return r;
}

/* Removes PATH, a subvolume or a plain directory, with every subvolume and
 * file in it. Missing is success. Ends with a transaction commit (which
 * makes every earlier deletion durable too), so that a journal deleted
 * after this never outlives the deletion on disk. */
static int destroy_tree(const char *path, struct qvm_error *err)
{
    struct entry top;
    int r = entry_at(AT_FDCWD, path, path, &top, err);
    if (r < 0 || !top.exists)
        return r;
    int deleted = 0;
    r = delete_nested(path, &top, 0, &deleted, err);
    if (r == 0 && top.subvolume)
        return subvol_delete(path, true, err);
    if (r == 0)
        r = qvm_rm_rf(path, err);
    if (r == 0 && deleted)
        r = commit(path, err);
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

/* /proc/self/mountinfo, one mount a line:
 *   29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
 *   36 29 0:32 / /tmp rw,nosuid shared:14 - tmpfs tmpfs rw,size=8192k
 * field 3 is the device (major:minor), and the file system type follows
 * the " - " separator. Fills BUF with the type of the mount whose device
 * is DEV; false if none matches. */
static bool mount_fstype(dev_t dev, char *buf, size_t size)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned maj, min;
        if (sscanf(line, "%*u %*u %u:%u", &maj, &min) != 2 || makedev(maj, min) != dev)
            continue;
        const char *sep = strstr(line, " - ");
        if (!sep)
            continue;
        char type[64];
        if (sscanf(sep + 3, "%63s", type) == 1) {
            snprintf(buf, size, "%s", type);
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* --- the driver -------------------------------------------------------------- */

static int btrfs_pool_open(struct qvm_pool *pool, struct qvm_error *err)
{
    if (!pool->path || pool->path[0] != '/')
        return qvm_err(err, EINVAL, "a btrfs pool needs an absolute path");
    struct stat st;
    if (stat(pool->path, &st) < 0)
        return qvm_err_errno(err, errno, "cannot use %s", pool->path);
    if (!S_ISDIR(st.st_mode))
        return qvm_err(err, ENOTDIR, "%s is not a directory", pool->path);
    struct statfs sfs;
    if (statfs(pool->path, &sfs) < 0)
        return qvm_err_errno(err, errno, "cannot read the file system of %s", pool->path);
    if ((uint32_t)sfs.f_type != (uint32_t)BTRFS_SUPER_MAGIC) {
        char type[64];
        if (!mount_fstype(st.st_dev, type, sizeof type))
            snprintf(type, sizeof type, "file system type 0x%lx", (unsigned long)sfs.f_type);
        return qvm_err(err, EINVAL, "%s is not on a Btrfs file system (it is %s)", pool->path,
                       type);
    }
    return 0;
}

static int btrfs_pool_init(const struct qvm_pool *pool, struct qvm_error *err)
{
    const char *dirs[] = { "images", "images/.versions", "vms" };
    int r = 0;
    for (size_t i = 0; r == 0 && i < sizeof dirs / sizeof dirs[0]; i++) {
        char *p = xasprintf("%s/%s", pool->path, dirs[i]);
        r = qvm_mkdir_p(p, 0755, err);
        free(p);
    }
    return r;
}

static char *versions_dir(const struct qvm_pool *pool, const char *image)
{
    return xasprintf("%s/images/.versions/%s", pool->path, image);
}

static char *version_snapshot(const struct qvm_pool *pool, const char *image, const char *version)
{
    return xasprintf("%s/images/.versions/%s/%s", pool->path, image, version);
}

/* Where a version is received: a plain directory of its own, so that what
 * btrfs receive makes can be checked (and deleted) before it is a version.
 * Not a version name (".receiving"), so never mistaken for one. */
static char *receive_staging(const struct qvm_pool *pool, const char *image, const char *version)
{
    return xasprintf("%s/images/.versions/%s/%s.receiving", pool->path, image, version);
}

/* Creates subvolume PARENT/NAME (PARENT made if missing); -EEXIST if
 * anything is there. If btrfs fails after all, whatever it made goes. */
static int make_subvolume(const char *parent, const char *path, const char *what,
                          struct qvm_error *err)
{
    int r = qvm_mkdir_p(parent, 0755, err);
    if (r < 0)
        return r;
    struct stat st;
    if (lstat(path, &st) == 0)
        return qvm_err(err, EEXIST, "%s already exists (%s)", what, path);
    if (errno != ENOENT)
        return qvm_err_errno(err, errno, "cannot stat %s", path);
    r = subvol_create(path, err);
    if (r < 0) {
        destroy_tree(path, NULL);
        return qvm_err_wrap(err, "cannot create %s", what);
    }
    return 0;
}

static int btrfs_image_create(const struct qvm_pool *pool, const char *image,
                              struct qvm_error *err)
{
    char *parent = xasprintf("%s/images", pool->path);
    char *path = qvm_storage_image_dir(pool, image);
    char *what = xasprintf("image '%s'", image);
    int r = make_subvolume(parent, path, what, err);
    free(parent);
    free(path);
    free(what);
    return r;
}

/* No_COW (FS_NOCOW_FL, chattr +C) is not set on disk.raw. It can only be
 * set on an empty file (btrfs ignores it on a file with data), so it would
 * have to go on the version, and every VM disk snapshotted from it would
 * inherit it: no data checksums, irreversibly, on the image all VMs share
 * and on their disks. What it buys, measured on a 6 GiB loop-mounted Btrfs
 * (1 GiB image, 512 MiB of it data; 20000 random 4 KiB pwrites into a
 * clone, fdatasync every 64; four runs, CoW first and No_COW first):
 *   first writes after the snapshot   CoW 1.2-2.6 s   No_COW 1.6-2.5 s
 *   rewrites of the same blocks       CoW 1.3-2.3 s   No_COW 0.5-0.6 s
 *   import (qemu-img convert)         CoW 0.9-3.4 s   No_COW 1.3-3.3 s
 *   sequential read after, cold       CoW 1.1-1.3 s   No_COW 1.0-1.2 s
 *   extents after the writes          28127 / 52876 both ways
 * A snapshot's blocks are shared, so a VM's first write to each is
 * copy-on-write whatever the flag; No_COW only speeds up rewrites of
 * blocks the VM already owns (2-4x), and the first writes of a freshly
 * provisioned VM, import, reads and fragmentation gain nothing. Not worth
 * losing checksums by default; a pool option could pass qemu-img convert
 * -o nocow=on for write-heavy, long-lived VMs. */
static int btrfs_version_import(const struct qvm_pool *pool, const char *image,
                                const char *version, const char *src, const char *src_format,
                                struct qvm_ui *ui, struct qvm_error *err)
{
    char *idir = qvm_storage_image_dir(pool, image);
    char *work = xasprintf("%s/disk.raw", idir);
    char *part = xasprintf("%s.part", work);
    char *vdir = versions_dir(pool, image);
    char *snap = version_snapshot(pool, image, version);
    bool progress = ui && ui->show_progress;
    bool snapped = false;
    struct stat st;
    int r = 0;

    /* Versions are immutable and back VM disks: never replace one. The
     * image lock (core/) keeps SNAP absent until we are done. */
    if (lstat(snap, &st) == 0)
        r = qvm_err(err, EEXIST, "version %s of image '%s' already exists", version, image);
    else if (errno != ENOENT)
        r = qvm_err_errno(err, errno, "cannot stat %s", snap);
    if (r == 0 && is_subvolume(idir, err) != 1)
        r = qvm_err(err, ENOENT, "image '%s' has no subvolume %s", image, idir);
    if (r == 0) {
        /* convert writes sparse output (runs of zeroes are skipped), from
         * raw or qcow2 input alike. */
        const char *argv[QVM_BTRFS_ARGV_MAX];
        qvm_btrfs_argv_convert(argv, src, src_format, part, progress);
        struct qvm_run_opts opts = { .timeout_ms = CONVERT_TIMEOUT_MS,
                                     .inherit_stdout = progress };
        r = qvm_run(argv, &opts, NULL, err);
        if (r < 0)
            qvm_err_wrap(err, "cannot copy %s into the pool", src);
    }
    if (r == 0)
        r = fsync_path(part, err);
    if (r == 0 && rename(part, work) < 0)
        r = qvm_err_errno(err, errno, "cannot rename %s to %s", part, work);
    if (r == 0)
        r = qvm_mkdir_p(vdir, 0755, err);
    if (r == 0) {
        /* Taking a snapshot commits a transaction: the data, the rename
         * and the new directory are on disk when it returns. */
        snapped = true;
        r = snapshot(idir, snap, true, err);
        if (r < 0)
            qvm_err_wrap(err, "cannot make version %s of image '%s'", version, image);
    }
    if (r < 0) {
        unlink(part);
        if (snapped)
            destroy_tree(snap, NULL);   /* ours: it did not exist before */
    }
    /* The snapshot holds the data now. The working copy would keep the
     * newest version's blocks allocated after that version is removed. */
    unlink(work);
    free(idir);
    free(work);
    free(part);
    free(vdir);
    free(snap);
    return r;
}

static int btrfs_version_info(const struct qvm_pool *pool, const char *image, const char *version,
                              struct qvm_disk_info *ret, struct qvm_error *err)
{
    char *snap = version_snapshot(pool, image, version);
    char *path = xasprintf("%s/disk.raw", snap);
    free(snap);
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

/* Versions first, then the image: if this is interrupted, what is left is
 * the image's own directory, which doctor and listings see, never a
 * version no image points at. */
static int btrfs_image_destroy(const struct qvm_pool *pool, const char *image,
                               struct qvm_error *err)
{
    char *vdir = versions_dir(pool, image);
    char *idir = qvm_storage_image_dir(pool, image);
    int r = destroy_tree(vdir, err);
    if (r == 0)
        r = destroy_tree(idir, err);
    free(vdir);
    free(idir);
    return r;
}

/* A read-only snapshot of the VM's disk subvolume, O(1) like a clone: the
 * new version shares every block with the disk it came from. */
static int btrfs_version_from_disk(const struct qvm_pool *pool, const char *image,
                                   const char *version, const char *vm, const char *disk,
                                   struct qvm_ui *ui, struct qvm_error *err)
{
    char *src = xasprintf("%s/vms/%s/%s", pool->path, vm, disk);
    char *vdir = versions_dir(pool, image);
    char *snap = version_snapshot(pool, image, version);
    struct stat st;
    bool made = false;
    int r = 0;
    if (lstat(snap, &st) == 0)
        r = qvm_err(err, EEXIST, "version %s of image '%s' already exists", version, image);
    else if (errno != ENOENT)
        r = qvm_err_errno(err, errno, "cannot stat %s", snap);
    if (r == 0 && is_subvolume(src, err) != 1)
        r = qvm_err(err, ENOENT, "VM '%s' has no disk subvolume %s", vm, src);
    if (r == 0)
        r = qvm_mkdir_p(vdir, 0755, err);
    if (r == 0) {
        made = true;
        r = snapshot(src, snap, true, err);
    }
    if (r < 0) {
        if (made)
            destroy_tree(snap, NULL);   /* ours: it did not exist before */
        qvm_err_wrap(err, "cannot make version %s of image '%s' from VM '%s'", version, image,
                     vm);
    }
    free(src);
    free(vdir);
    free(snap);
    return r;
}

/* btrfs send writes straight into OUT_FD (core's pipe); its stderr is kept
 * for the message. The base must be a version of the same image: btrfs
 * send -p only needs it read-only and on this file system, and the other
 * side finds its copy of it by the UUID it was received with. */
static int btrfs_version_send(const struct qvm_pool *pool, const char *image, const char *version,
                              const char *from, int out_fd, struct qvm_error *err)
{
    char *snap = version_snapshot(pool, image, version);
    char *base = from ? version_snapshot(pool, image, from) : NULL;
    int r = 0;
    if (is_subvolume(snap, NULL) != 1)
        r = qvm_err(err, ENOENT, "image '%s' has no version %s", image, version);
    else if (base && is_subvolume(base, NULL) != 1)
        r = qvm_err(err, ENOENT, "image '%s' has no version %s to send the changes from", image,
                    from);
    if (r == 0) {
        const char *argv[QVM_BTRFS_ARGV_MAX];
        qvm_btrfs_argv_send(argv, snap, base);
        struct qvm_run_opts opts = { .timeout_ms = STREAM_TIMEOUT_MS, .use_stdout_fd = true,
                                     .stdout_fd = out_fd };
        r = run_btrfs_opts(argv, &opts, err);
        if (r < 0)
            qvm_err_wrap(err, "cannot send version %s of image '%s'", version, image);
    }
    free(snap);
    free(base);
    return r;
}

static int get_readonly(int fd, const char *path, bool *ret, struct qvm_error *err)
{
    uint64_t flags = 0;
    if (ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &flags) < 0)
        return qvm_err_errno(err, errno, "cannot read the flags of subvolume %s", path);
    *ret = flags & BTRFS_SUBVOL_RDONLY;
    return 0;
}

static int set_readonly(int fd, const char *path, bool readonly, struct qvm_error *err)
{
    uint64_t flags = 0;
    if (ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &flags) < 0)
        return qvm_err_errno(err, errno, "cannot read the flags of subvolume %s", path);
    flags = readonly ? flags | BTRFS_SUBVOL_RDONLY : flags & ~(uint64_t)BTRFS_SUBVOL_RDONLY;
    if (ioctl(fd, BTRFS_IOC_SUBVOL_SETFLAGS, &flags) < 0)
        return qvm_err_errno(err, errno, "cannot make subvolume %s %s", path,
                             readonly ? "read-only" : "writable");
    return 0;
}

/* The UUID btrfs receive gave the subvolume open as FD: the sender's
 * snapshot's, by which a later incremental receive finds its base. All
 * zeroes if the subvolume was not received (or not whole). */
static int get_received_uuid(int fd, const char *path, uint8_t uuid[BTRFS_UUID_SIZE],
                             struct qvm_error *err)
{
    struct btrfs_ioctl_get_subvol_info_args info;
    memset(&info, 0, sizeof info);
    if (ioctl(fd, BTRFS_IOC_GET_SUBVOL_INFO, &info) < 0)
        return qvm_err_errno(err, errno, "cannot read subvolume %s", path);
    memcpy(uuid, info.received_uuid, BTRFS_UUID_SIZE);
    return 0;
}

/* The one entry btrfs receive made in STAGE must be subvolume VERSION
 * (named after the sender's snapshot), finished (btrfs receive sets the
 * received UUID, then the read-only flag, after the stream's last command)
 * and holding disk.raw. Leaves it open in *RET_FD. */
static int check_received(const char *stage, const char *version, int *ret_fd,
                          struct qvm_error *err)
{
    DIR *d = opendir(stage);
    if (!d)
        return qvm_err_errno(err, errno, "cannot read %s", stage);
    char other[256] = "";
    bool found = false;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (!strcmp(de->d_name, version))
            found = true;
        else
            snprintf(other, sizeof other, "%s", de->d_name);
    }
    closedir(d);
    if (other[0])
        return qvm_err(err, EINVAL, "the stream holds subvolume '%s', not version %s", other,
                       version);
    if (!found)
        return qvm_err(err, EINVAL, "btrfs receive made no subvolume %s", version);
    char *got = xasprintf("%s/%s", stage, version);
    int fd = open(got, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    bool ro = false;
    uint8_t uuid[BTRFS_UUID_SIZE], zero[BTRFS_UUID_SIZE] = { 0 };
    int r = 0;
    if (fd < 0)
        r = qvm_err_errno(err, errno, "cannot open %s", got);
    else if (fstat(fd, &st) < 0)
        r = qvm_err_errno(err, errno, "cannot stat %s", got);
    else if (st.st_ino != BTRFS_FIRST_FREE_OBJECTID)
        r = qvm_err(err, EINVAL, "the stream made %s, which is not a subvolume", got);
    if (r == 0)
        r = get_readonly(fd, got, &ro, err);
    if (r == 0)
        r = get_received_uuid(fd, got, uuid, err);
    if (r == 0 && (!ro || !memcmp(uuid, zero, sizeof uuid)))
        r = qvm_err(err, EIO, "btrfs receive did not finish %s (it is not read-only with a "
                    "received UUID)", got);
    if (r == 0 && (fstatat(fd, "disk.raw", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)))
        r = qvm_err(err, EINVAL, "the received subvolume holds no disk.raw: it is not a qvm "
                    "image version");
    if (r < 0 && fd >= 0)
        close(fd);
    else
        *ret_fd = fd;
    free(got);
    return r;
}

/* Renames received subvolume GOT (open as FD) to SNAP, which must not
 * exist. The kernel refuses (EROFS) to move a read-only subvolume into
 * another directory, as that rewrites its "..", so the flag is lifted for
 * the rename alone, through the ioctl: btrfs property set refuses to on a
 * received subvolume, whose received UUID a writable subvolume may no
 * longer deserve. Nothing writes to it meanwhile (core/ records the
 * version only after this returns), and the received UUID is checked to
 * have survived: later incremental streams find their base by it. */
static int move_into_place(int fd, const char *got, const char *snap, struct qvm_error *err)
{
    uint8_t before[BTRFS_UUID_SIZE], after[BTRFS_UUID_SIZE];
    bool moved = false;
    int r = get_received_uuid(fd, got, before, err);
    if (r == 0)
        r = set_readonly(fd, got, false, err);
    if (r == 0) {
        if (renameat2(AT_FDCWD, got, AT_FDCWD, snap, RENAME_NOREPLACE) == 0)
            moved = true;
        else if (errno == EEXIST)
            r = qvm_err(err, EEXIST, "%s already exists", snap);
        else
            r = qvm_err_errno(err, errno, "cannot rename %s to %s", got, snap);
        /* Read-only again whatever happened: it is a version or garbage. */
        int r2 = set_readonly(fd, moved ? snap : got, true, r == 0 ? err : NULL);
        if (r == 0)
            r = r2;
    }
    if (r == 0)
        r = get_received_uuid(fd, snap, after, err);
    if (r == 0 && memcmp(before, after, sizeof before) != 0)
        r = qvm_err(err, EIO, "%s lost its received UUID when it was moved: later incremental "
                    "streams could not find it", snap);
    if (r < 0 && moved)
        destroy_tree(snap, NULL);       /* ours: nothing was there (RENAME_NOREPLACE) */
    return r;
}

/* btrfs receive into a staging directory of this version's own (private:
 * the image lock of core/ keeps every other receive and import of IMAGE
 * out), then the checked subvolume is renamed into place and the file
 * system synced: the version exists whole or not at all. A stream cut
 * short makes btrfs receive fail ("short read", "unexpected EOF") and
 * leave a partial, writable subvolume behind; that, and anything else it
 * made, goes with the staging directory. */
static int btrfs_version_receive(const struct qvm_pool *pool, const char *image,
                                 const char *version, const char *from, int in_fd,
                                 struct qvm_error *err)
{
    char *vdir = versions_dir(pool, image);
    char *snap = version_snapshot(pool, image, version);
    char *base = from ? version_snapshot(pool, image, from) : NULL;
    char *stage = receive_staging(pool, image, version);
    char *got = xasprintf("%s/%s", stage, version);
    struct stat st;
    int fd = -1;
    int r = 0;
    if (lstat(snap, &st) == 0)
        r = qvm_err(err, EEXIST, "version %s of image '%s' already exists", version, image);
    else if (errno != ENOENT)
        r = qvm_err_errno(err, errno, "cannot stat %s", snap);
    if (r == 0 && base && is_subvolume(base, NULL) != 1)
        r = qvm_err(err, ENOENT, "image '%s' has no version %s to apply the stream to", image,
                    from);
    if (r == 0)
        r = destroy_tree(stage, err);   /* left by a receive that was killed */
    if (r == 0)
        r = qvm_mkdir_p(vdir, 0755, err);
    if (r == 0 && mkdir(stage, 0700) < 0)
        r = qvm_err_errno(err, errno, "cannot create %s", stage);
    if (r == 0) {
        const char *argv[QVM_BTRFS_ARGV_MAX];
        qvm_btrfs_argv_receive(argv, stage);
        struct qvm_run_opts opts = { .timeout_ms = STREAM_TIMEOUT_MS, .use_stdin_fd = true,
                                     .stdin_fd = in_fd };
        r = run_btrfs_opts(argv, &opts, err);
    }
    if (r == 0)
        r = check_received(stage, version, &fd, err);
    if (r == 0)
        r = move_into_place(fd, got, snap, err);
    if (fd >= 0)
        close(fd);
    /* The data btrfs receive wrote and the rename, on disk before core/
     * records the version. */
    if (r == 0 && (r = commit(snap, err)) < 0)
        destroy_tree(snap, NULL);
    if (r == 0)
        rmdir(stage);   /* empty now; if it stays, the next receive or removal of VERSION takes it */
    if (r < 0) {
        destroy_tree(stage, NULL);
        qvm_err_wrap(err, "cannot receive version %s of image '%s'", version, image);
    }
    free(vdir);
    free(snap);
    free(base);
    free(stage);
    free(got);
    return r;
}

/* VM disks are snapshots of their own, not dependents: the version's
 * snapshot goes alone. */
static int btrfs_version_destroy(const struct qvm_pool *pool, const char *image,
                                 const char *version, struct qvm_error *err)
{
    char *snap = version_snapshot(pool, image, version);
    char *stage = receive_staging(pool, image, version);
    int r = destroy_tree(snap, err);
    if (r == 0)
        r = destroy_tree(stage, err);     /* a receive that was killed */
    if (r < 0)
        qvm_err_wrap(err, "cannot remove version %s of image '%s'", version, image);
    free(snap);
    free(stage);
    return r;
}

static int btrfs_vm_create(const struct qvm_pool *pool, const char *vm, struct qvm_error *err)
{
    char *parent = xasprintf("%s/vms", pool->path);
    char *path = qvm_storage_vm_dir(pool, vm);
    char *what = xasprintf("VM '%s'", vm);
    int r = make_subvolume(parent, path, what, err);
    free(parent);
    free(path);
    free(what);
    return r;
}

static int btrfs_disk_locate(const struct qvm_pool *pool, const char *vm, const char *disk,
                             struct qvm_disk_info *ret, struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    ret->path = xasprintf("%s/vms/%s/%s/disk.raw", pool->path, vm, disk);
    ret->format = xstrdup("raw");
    return 0;
}

/* Grows PATH to SIZE bytes: a hole at the end, no data written. */
static int grow_file(const char *path, uint64_t size, struct qvm_error *err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open %s", path);
    int r = 0;
    if (ftruncate(fd, (off_t)size) < 0)
        r = qvm_err_errno(err, errno, "cannot grow %s to %" PRIu64 " bytes", path, size);
    else if (fsync(fd) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", path);
    close(fd);
    return r;
}

static int btrfs_disk_clone(const struct qvm_pool *pool, const char *image, const char *version,
                            const char *vm, const char *disk, uint64_t size,
                            const struct qvm_prop *props, size_t nprops,
                            struct qvm_disk_info *ret, struct qvm_error *err)
{
    struct qvm_disk_info base;
    int r = btrfs_version_info(pool, image, version, &base, err);
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
    qvm_disk_info_release(&base);
    char *snap = version_snapshot(pool, image, version);
    char *dst = xasprintf("%s/vms/%s/%s", pool->path, vm, disk);
    char *file = xasprintf("%s/disk.raw", dst);
    struct stat st;
    bool made = false;
    if (lstat(dst, &st) == 0) {
        r = qvm_err(err, EEXIST, "VM '%s' already has a disk %s", vm, dst);
    } else if (errno != ENOENT) {
        r = qvm_err_errno(err, errno, "cannot stat %s", dst);
    } else {
        /* DST must not exist: btrfs would put the snapshot inside an
         * existing directory. The VM lock keeps it so until we are done. */
        made = true;
        r = snapshot(snap, dst, false, err);
    }
    if (r == 0) {
        if (stat(file, &st) < 0)
            r = qvm_err_errno(err, errno, "cannot stat %s", file);
        else if ((uint64_t)st.st_size < size)
            r = grow_file(file, size, err);
    }
    if (r < 0) {
        if (made)
            destroy_tree(dst, NULL);
        qvm_err_wrap(err, "cannot clone image '%s@%s' for VM '%s'", image, version, vm);
        free(file);
    } else {
        memset(ret, 0, sizeof *ret);
        ret->path = file;
        ret->format = xstrdup("raw");
        ret->virtual_size = size;
    }
    free(snap);
    free(dst);
    return r;
}

/* Disk subvolumes inside the bundle first, then the bundle with the files
 * core/ wrote (vm.json or, after qvm rm, vm.json.removed, seed.iso, ...). */
static int btrfs_vm_destroy(const struct qvm_pool *pool, const char *vm, struct qvm_error *err)
{
    char *path = qvm_storage_vm_dir(pool, vm);
    int r = destroy_tree(path, err);
    if (r < 0)
        qvm_err_wrap(err, "cannot remove VM '%s'", vm);
    free(path);
    return r;
}

/* --- snapshots and clones of VM disks (seed 004) ---------------------------
 *
 *   POOL/vms/VM/.snapshots/SNAP/DISK         read-only snapshot of the disk
 *   POOL/vms/VM/.snapshots/.SNAP.part/DISK   while it is made (one rename
 *                                            then makes it appear whole)
 *   POOL/vms/VM/.snapshots/.SNAP.removing    while it is removed
 *   POOL/vms/VM/.revert-DISK                 writable snapshot of SNAP/DISK
 *                                            while the disk is reverted
 *   POOL/vms/VM/.old-DISK                    the disk a revert set aside
 *
 * Btrfs snapshots share blocks but depend on nothing: any snapshot can be
 * removed or reverted to, and a clone (a writable snapshot of the disk or
 * of one of its snapshots) outlives its source. Names starting with '.'
 * are never qvm names, so none of these meets a disk or core's files. */

/* fsync of the directory holding PATH (a rename or a new entry in it). */
static int sync_parent_dir(const char *path, struct qvm_error *err)
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
    return xasprintf("%s/vms/%s/.snapshots", pool->path, vm);
}

static char *disk_subvol(const struct qvm_pool *pool, const char *vm, const char *disk)
{
    return xasprintf("%s/vms/%s/%s", pool->path, vm, disk);
}

static int need_subvolume(const char *path, const char *what, struct qvm_error *err)
{
    int r = is_subvolume(path, err);
    if (r == 1)
        return 0;
    return r < 0 && r != -ENOENT ? r : qvm_err(err, ENOENT, "%s does not exist (%s)", what, path);
}

static int btrfs_snapshot_create(const struct qvm_pool *pool, const char *vm, const char *disk,
                                 const char *snap, struct qvm_error *err)
{
    char *src = disk_subvol(pool, vm, disk);
    char *dir = snaps_dir(pool, vm);
    char *final = xasprintf("%s/%s", dir, snap);
    char *part = xasprintf("%s/.%s.part", dir, snap);
    char *dst = xasprintf("%s/%s", part, disk);
    char *what = xasprintf("disk %s of VM '%s'", disk, vm);
    bool made = false;
    int r = need_subvolume(src, what, err);
    if (r == 0 && qvm_path_exists(final))
        r = qvm_err(err, EEXIST, "VM '%s' already has a snapshot '%s'", vm, snap);
    if (r == 0)
        r = qvm_mkdir_p(dir, 0755, err);
    if (r == 0)
        r = destroy_tree(part, err);        /* a create that was killed */
    if (r == 0 && mkdir(part, 0755) < 0)
        r = qvm_err_errno(err, errno, "cannot create %s", part);
    made = r == 0;
    /* Taking the snapshot flushes the disk's dirty data and commits. */
    if (r == 0)
        r = snapshot(src, dst, true, err);
    if (r == 0 && renameat2(AT_FDCWD, part, AT_FDCWD, final, RENAME_NOREPLACE) < 0)
        r = qvm_err_errno(err, errno, "cannot rename %s to %s", part, final);
    if (r == 0)
        r = qvm_fsync_dir(dir, err);
    if (r < 0) {
        if (made)
            destroy_tree(part, NULL);
        rmdir(dir);                         /* only if empty */
        qvm_err_wrap(err, "cannot snapshot %s", what);
    }
    free(src);
    free(dir);
    free(final);
    free(part);
    free(dst);
    free(what);
    return r;
}

static int btrfs_snapshot_destroy(const struct qvm_pool *pool, const char *vm, const char *disk,
                                  const char *snap, struct qvm_error *err)
{
    (void)disk;
    char *dir = snaps_dir(pool, vm);
    char *final = xasprintf("%s/%s", dir, snap);
    char *part = xasprintf("%s/.%s.part", dir, snap);
    char *gone = xasprintf("%s/.%s.removing", dir, snap);
    int r = destroy_tree(part, err);
    if (r == 0)
        r = destroy_tree(gone, err);
    /* One rename makes it disappear; the subvolume is deleted after. */
    if (r == 0 && rename(final, gone) == 0)
        r = qvm_fsync_dir(dir, err);
    else if (r == 0 && errno != ENOENT)
        r = qvm_err_errno(err, errno, "cannot remove snapshot '%s' of VM '%s'", snap, vm);
    if (r == 0)
        r = destroy_tree(gone, err);
    rmdir(dir);
    free(dir);
    free(final);
    free(part);
    free(gone);
    return r;
}

/* When subvolume PATH was made (its otime), in nanoseconds. */
static int subvol_otime(const char *path, long long *ret, struct qvm_error *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open %s", path);
    struct btrfs_ioctl_get_subvol_info_args info;
    memset(&info, 0, sizeof info);
    int r = 0;
    if (ioctl(fd, BTRFS_IOC_GET_SUBVOL_INFO, &info) < 0)
        r = qvm_err_errno(err, errno, "cannot read subvolume %s", path);
    else
        *ret = (long long)info.otime.sec * 1000000000LL + info.otime.nsec;
    close(fd);
    return r;
}

static int cmp_snapshot_info(const void *a, const void *b)
{
    const struct qvm_snapshot_info *x = a, *y = b;
    return x->created != y->created ? (x->created < y->created ? -1 : 1) : strcmp(x->name, y->name);
}

static int btrfs_snapshot_list(const struct qvm_pool *pool, const char *vm, const char *disk,
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
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!qvm_name_valid(de->d_name))
            continue;           /* ".", "..", and snapshots being made or removed */
        char *sub = xasprintf("%s/%s/%s", dir, de->d_name, disk);
        char *file = xasprintf("%s/disk.raw", sub);
        struct stat st;
        long long otime = 0;
        if (is_subvolume(sub, NULL) == 1 && stat(file, &st) == 0 &&
            subvol_otime(sub, &otime, NULL) == 0) {
            v = xrealloc(v, (n + 1) * sizeof *v);
            v[n++] = (struct qvm_snapshot_info){ .name = xstrdup(de->d_name), .created = otime,
                                                 .size = (uint64_t)st.st_size };
        }
        free(sub);
        free(file);
    }
    closedir(d);
    free(dir);
    /* Nanoseconds while sorting, seconds reported. */
    qsort(v, n, sizeof *v, cmp_snapshot_info);
    for (size_t i = 0; i < n; i++)
        v[i].created /= 1000000000LL;
    *ret = v;
    *ret_n = n;
    return 0;
}

static int btrfs_snapshot_locate(const struct qvm_pool *pool, const char *vm, const char *disk,
                                 const char *snap, struct qvm_disk_info *ret,
                                 struct qvm_error *err)
{
    char *dir = snaps_dir(pool, vm);
    char *file = xasprintf("%s/%s/%s/disk.raw", dir, snap, disk);
    free(dir);
    struct stat st;
    if (stat(file, &st) < 0) {
        int e = errno;
        free(file);
        return e == ENOENT ? qvm_err(err, ENOENT, "VM '%s' has no snapshot '%s'", vm, snap)
                           : qvm_err_errno(err, e, "cannot read snapshot '%s' of VM '%s'", snap, vm);
    }
    memset(ret, 0, sizeof *ret);
    ret->path = file;
    ret->format = xstrdup("raw");
    ret->virtual_size = (uint64_t)st.st_size;
    return 0;
}

struct revert_names {
    char *disk, *staged, *old;
};

static void revert_names(const struct qvm_pool *pool, const char *vm, const char *disk,
                         struct revert_names *n)
{
    n->disk = disk_subvol(pool, vm, disk);
    n->staged = xasprintf("%s/vms/%s/.revert-%s", pool->path, vm, disk);
    n->old = xasprintf("%s/vms/%s/.old-%s", pool->path, vm, disk);
}

static void revert_names_free(struct revert_names *n)
{
    free(n->disk);
    free(n->staged);
    free(n->old);
}

static int btrfs_snapshot_revert_prepare(const struct qvm_pool *pool, const char *vm,
                                         const char *disk, const char *snap,
                                         struct qvm_error *err)
{
    struct revert_names n;
    revert_names(pool, vm, disk, &n);
    char *dir = snaps_dir(pool, vm);
    char *src = xasprintf("%s/%s/%s", dir, snap, disk);
    char *what = xasprintf("snapshot '%s' of VM '%s'", snap, vm);
    int r = need_subvolume(src, what, err);
    if (r == 0)
        r = destroy_tree(n.staged, err);
    if (r == 0 && (r = snapshot(src, n.staged, false, err)) < 0)
        destroy_tree(n.staged, NULL);
    if (r < 0)
        qvm_err_wrap(err, "cannot revert VM '%s' to snapshot '%s'", vm, snap);
    revert_names_free(&n);
    free(dir);
    free(src);
    free(what);
    return r;
}

/* Two renames (subvolumes move like directories): the disk aside, the
 * staged snapshot into its place. revert_undo handles the moment between. */
static int btrfs_snapshot_revert_swap(const struct qvm_pool *pool, const char *vm,
                                      const char *disk, struct qvm_error *err)
{
    struct revert_names n;
    revert_names(pool, vm, disk, &n);
    int r = 0;
    if (is_subvolume(n.staged, NULL) != 1)
        r = qvm_err(err, ENOENT, "no reverted disk %s was prepared", n.staged);
    else if (renameat2(AT_FDCWD, n.disk, AT_FDCWD, n.old, RENAME_NOREPLACE) < 0)
        r = qvm_err_errno(err, errno, "cannot move %s aside", n.disk);
    else if (rename(n.staged, n.disk) < 0)
        r = qvm_err_errno(err, errno, "cannot rename %s to %s", n.staged, n.disk);
    if (r == 0)
        r = sync_parent_dir(n.disk, err);
    revert_names_free(&n);
    return r;
}

static int btrfs_snapshot_revert_undo(const struct qvm_pool *pool, const char *vm,
                                      const char *disk, struct qvm_error *err)
{
    struct revert_names n;
    revert_names(pool, vm, disk, &n);
    int r = 0;
    /* Set aside: the reverted copy (of a snapshot that still exists) goes
     * and the disk comes back. */
    if (qvm_path_exists(n.old)) {
        r = destroy_tree(n.disk, err);
        if (r == 0 && rename(n.old, n.disk) < 0)
            r = qvm_err_errno(err, errno, "cannot move %s back to %s", n.old, n.disk);
        if (r == 0)
            r = sync_parent_dir(n.disk, err);
    }
    if (r == 0)
        r = destroy_tree(n.staged, err);
    revert_names_free(&n);
    return r;
}

static int btrfs_snapshot_revert_finish(const struct qvm_pool *pool, const char *vm,
                                        const char *disk, struct qvm_error *err)
{
    struct revert_names n;
    revert_names(pool, vm, disk, &n);
    int r = destroy_tree(n.old, err);
    if (r == 0)
        r = destroy_tree(n.staged, err);
    revert_names_free(&n);
    return r;
}

static int btrfs_snapshot_tidy(const struct qvm_pool *pool, const char *vm, const char *disk,
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
            r = destroy_tree(p, err);
            free(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
    free(dir);
    return r;
}

/* A writable snapshot of the disk (or of its snapshot SNAP) in DST's
 * bundle: O(1), and independent of SRC from then on. */
static int btrfs_vm_disk_clone(const struct qvm_pool *pool, const char *src, const char *disk,
                               const char *snap, const char *dst, const char *dst_disk,
                               const struct qvm_prop *props, size_t nprops,
                               struct qvm_disk_info *ret, struct qvm_error *err)
{
    (void)props;
    (void)nprops;             /* core refuses disk.zvol properties outside zfs */
    char *dir = snaps_dir(pool, src);
    char *from = snap ? xasprintf("%s/%s/%s", dir, snap, disk) : disk_subvol(pool, src, disk);
    char *to = disk_subvol(pool, dst, dst_disk);
    char *file = xasprintf("%s/disk.raw", to);
    char *what = snap ? xasprintf("snapshot '%s' of VM '%s'", snap, src)
                      : xasprintf("disk %s of VM '%s'", disk, src);
    struct stat st;
    bool made = false;
    int r = need_subvolume(from, what, err);
    if (r == 0 && lstat(to, &st) == 0)
        r = qvm_err(err, EEXIST, "VM '%s' already has a disk %s", dst, to);
    if (r == 0) {
        made = true;
        r = snapshot(from, to, false, err);
    }
    if (r == 0 && stat(file, &st) < 0)
        r = qvm_err_errno(err, errno, "cannot stat %s", file);
    if (r == 0) {
        memset(ret, 0, sizeof *ret);
        ret->path = file;
        ret->format = xstrdup("raw");
        ret->virtual_size = (uint64_t)st.st_size;
        file = NULL;
    } else {
        if (made)
            destroy_tree(to, NULL);
        qvm_err_wrap(err, "cannot clone %s", what);
    }
    free(dir);
    free(from);
    free(to);
    free(file);
    free(what);
    return r;
}

const struct qvm_storage_driver qvm_storage_btrfs = {
    .name = "btrfs",
    .pool_open = btrfs_pool_open,
    .pool_init = btrfs_pool_init,
    .image_dir = qvm_storage_image_dir,
    .vm_dir = qvm_storage_vm_dir,
    .image_create = btrfs_image_create,
    .version_import = btrfs_version_import,
    .version_info = btrfs_version_info,
    .image_destroy = btrfs_image_destroy,
    .version_from_disk = btrfs_version_from_disk,
    .stream_format = "btrfs-send-1",
    .version_send = btrfs_version_send,
    .version_receive = btrfs_version_receive,
    .version_destroy = btrfs_version_destroy,
    .vm_create = btrfs_vm_create,
    .disk_locate = btrfs_disk_locate,
    .disk_clone = btrfs_disk_clone,
    .disk_create = qvm_btrfs_disk_create,
    .disk_resize = qvm_storage_file_disk_resize,
    .clone_properties = false,
    .vm_destroy = btrfs_vm_destroy,
    .snapshot_create = btrfs_snapshot_create,
    .snapshot_destroy = btrfs_snapshot_destroy,
    .snapshot_list = btrfs_snapshot_list,
    .snapshot_locate = btrfs_snapshot_locate,
    .snapshot_revert_prepare = btrfs_snapshot_revert_prepare,
    .snapshot_revert_swap = btrfs_snapshot_revert_swap,
    .snapshot_revert_undo = btrfs_snapshot_revert_undo,
    .snapshot_revert_finish = btrfs_snapshot_revert_finish,
    .snapshot_tidy = btrfs_snapshot_tidy,
    .vm_disk_clone = btrfs_vm_disk_clone,
};
