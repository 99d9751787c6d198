#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 2, 0)))
static void set_msg(struct qvm_error *err, const char *fmt, va_list ap)
{
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int qvm_err(struct qvm_error *err, int code, const char *fmt, ...)
{
    if (code <= 0)
        code = EIO;
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        set_msg(err, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return -code;
}

int qvm_err_errno(struct qvm_error *err, int code, const char *fmt, ...)
{
    if (code <= 0)
        code = EIO;
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        set_msg(err, fmt, ap);
        va_end(ap);
        size_t len = strlen(err->msg);
        snprintf(err->msg + len, sizeof err->msg - len, ": %s", strerror(code));
        err->code = code;
    }
    return -code;
}

int qvm_err_wrap(struct qvm_error *err, const char *fmt, ...)
{
    if (!err)
        return -EIO;
    if (err->code <= 0)
        err->code = EIO;
    char prefix[QVM_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[QVM_ERROR_MAX];
    memcpy(old, err->msg, sizeof old);
    if (old[0])
        snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    else
        snprintf(err->msg, sizeof err->msg, "%s", prefix);
    return -err->code;
}

void qvm_err_clear(struct qvm_error *err)
{
    if (err) {
        err->code = 0;
        err->task = NULL;
        err->msg[0] = '\0';
    }
}

int qvm_err_task(struct qvm_error *err, const char *task)
{
    if (!err)
        return -EIO;
    if (!err->task)
        err->task = task;
    return -(err->code > 0 ? err->code : EIO);
}
