#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "names.h"
#include "strbuf.h"

int qvm_lock_path(const char *path, bool wait, const char *what, struct qvm_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open lock file %s", path);
    while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
        int e = errno;
        if (e == EINTR)
            continue;
        close(fd);
        if (e == EWOULDBLOCK)
            return qvm_err(err, EBUSY, "%s is busy: another qvm command is working on it", what);
        return qvm_err_errno(err, e, "cannot lock %s", path);
    }
    return fd;
}

int qvm_lock_object(const char *lock_dir, const char *kind, const char *name, bool wait,
                    struct qvm_error *err)
{
    /* Callers validate names at the edge; this is the last line of defence
     * before a user string becomes a path. */
    if (!qvm_name_valid(name))
        return qvm_err(err, EINVAL, "invalid %s name '%.80s'", kind, name);
    char *path = xasprintf("%s/%s-%s.lock", lock_dir, kind, name);
    char *what = xasprintf("%s '%s'", kind, name);
    int r = qvm_lock_path(path, wait, what, err);
    free(path);
    free(what);
    return r;
}

void qvm_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}
