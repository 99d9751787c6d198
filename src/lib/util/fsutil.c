#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strbuf.h"

bool qvm_path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

char *qvm_path_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    if (la && a[la - 1] == '/')
        return xasprintf("%s%s", a, b);
    return xasprintf("%s/%s", a, b);
}

int qvm_mkdir_p(const char *path, mode_t mode, struct qvm_error *err)
{
    char *p = xstrdup(path);
    int r = 0;
    for (char *s = p + 1; ; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            r = qvm_err_errno(err, errno, "cannot create directory %s", p);
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    if (r == 0) {
        struct stat st;
        if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
            r = qvm_err(err, ENOTDIR, "%s exists and is not a directory", path);
    }
    free(p);
    return r;
}

int qvm_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len,
                  struct qvm_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return qvm_err_errno(err, e, "cannot stat %s", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return qvm_err(err, EINVAL, "%s is not a regular file", path);
    }
    if ((size_t)st.st_size > max) {
        close(fd);
        return qvm_err(err, EFBIG, "%s is too large (%lld bytes, limit %zu)", path,
                       (long long)st.st_size, max);
    }
    struct strbuf sb = STRBUF_INIT;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            strbuf_release(&sb);
            return qvm_err_errno(err, e, "cannot read %s", path);
        }
        if (n == 0)
            break;
        if (sb.len + (size_t)n > max) {
            close(fd);
            strbuf_release(&sb);
            return qvm_err(err, EFBIG, "%s is too large (limit %zu bytes)", path, max);
        }
        strbuf_add(&sb, buf, (size_t)n);
    }
    close(fd);
    *ret_data = strbuf_detach(&sb, ret_len);
    return 0;
}

int qvm_fsync_dir(const char *dir, struct qvm_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open directory %s", dir);
    int r = 0;
    if (fsync(fd) < 0 && errno != EINVAL)
        r = qvm_err_errno(err, errno, "cannot sync directory %s", dir);
    close(fd);
    return r;
}

int qvm_write_atomic_with(const char *path, mode_t mode, qvm_fill_fn fill, void *fill_ctx,
                          struct qvm_error *err)
{
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int r = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        r = qvm_err_errno(err, errno, "cannot create %s", tmp);
        goto out;
    }
    r = fill(fd, tmp, fill_ctx, err);
    if (r == 0 && fsync(fd) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", tmp);
    if (close(fd) < 0 && r == 0)
        r = qvm_err_errno(err, errno, "cannot close %s", tmp);
    if (r == 0 && rename(tmp, path) < 0)
        r = qvm_err_errno(err, errno, "cannot rename %s to %s", tmp, path);
    if (r < 0) {
        unlink(tmp);
        goto out;
    }
    char *d = xstrdup(path);
    r = qvm_fsync_dir(dirname(d), err);
    free(d);
out:
    free(tmp);
    return r;
}

struct buffer {
    const char *data;
    size_t len;
};

static int write_buffer(int fd, const char *tmp, void *ctx, struct qvm_error *err)
{
    const struct buffer *b = ctx;
    const char *p = b->data;
    size_t left = b->len;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return qvm_err_errno(err, errno, "cannot write %s", tmp);
        p += n;
        left -= (size_t)n;
    }
    return 0;
}

int qvm_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                          struct qvm_error *err)
{
    struct buffer b = { data, len };
    return qvm_write_atomic_with(path, mode, write_buffer, &b, err);
}

static int rm_at(int parent_fd, const char *name, dev_t dev, const char *shown, struct qvm_error *err)
{
    struct stat st;
    if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return qvm_err_errno(err, errno, "cannot stat %s", shown);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(parent_fd, name, 0) < 0 && errno != ENOENT)
            return qvm_err_errno(err, errno, "cannot remove %s", shown);
        return 0;
    }
    if (st.st_dev != dev)
        return qvm_err(err, EXDEV, "refusing to remove %s: it is a mount point", shown);
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open %s", shown);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return qvm_err_errno(err, errno, "cannot read %s", shown);
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *sub = xasprintf("%s/%s", shown, de->d_name);
        r = rm_at(dirfd(d), de->d_name, dev, sub, err);
        free(sub);
    }
    closedir(d);
    if (r == 0 && unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        r = qvm_err_errno(err, errno, "cannot remove directory %s", shown);
    return r;
}

int qvm_rm_rf(const char *path, struct qvm_error *err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return qvm_err_errno(err, errno, "cannot stat %s", path);
    }
    return rm_at(AT_FDCWD, path, st.st_dev, path, err);
}

int qvm_write_all(int fd, const void *buf, size_t len, const char *what, struct qvm_error *err)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return qvm_err_errno(err, errno, "cannot write %s", what);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int qvm_read_exact(int fd, void *buf, size_t len, const char *what, struct qvm_error *err)
{
    char *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return qvm_err_errno(err, errno, "cannot read %s", what);
        if (n == 0)
            return qvm_err(err, EPIPE, "%s ends early: it was cut short", what);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
