#include "util/reflink.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

bool qvm_reflink_supported(const char *dir)
{
    int a = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (a < 0)
        return false;
    int b = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    bool ok = false;
    if (b >= 0) {
        /* One whole block: some file systems refuse to clone an empty or
         * partial-block range even where reflinks work. */
        char block[4096];
        memset(block, 0x5a, sizeof block);
        ok = write(a, block, sizeof block) == (ssize_t)sizeof block &&
             ioctl(b, FICLONE, a) == 0;
        close(b);
    }
    close(a);
    return ok;
}

int qvm_reflink_new(const char *src, const char *dst, mode_t mode, struct qvm_error *err)
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
    int r = 0;
    if (ioctl(out, FICLONE, in) < 0) {
        int e = errno;
        if (e == EOPNOTSUPP || e == ENOTTY || e == EINVAL || e == EXDEV)
            r = qvm_err(err, e == EXDEV ? EXDEV : EOPNOTSUPP,
                        "the file system under %s cannot make reflink copies (FICLONE: %s)",
                        dst, strerror(e));
        else
            r = qvm_err_errno(err, e, "cannot reflink %s to %s", src, dst);
    }
    if (r == 0 && fsync(out) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", dst);
    close(in);
    close(out);
    if (r < 0)
        unlink(dst);     /* ours: created with O_EXCL */
    return r;
}
