/* error.h - the one error convention of qvm.
 *
 * Library functions return 0 on success or a negative errno, and fill a
 * struct qvm_error with a message that says what failed, on what, and why.
 * Callers add context with qvm_err_wrap(). Only the CLI prints errors.
 * Every function here accepts a NULL error pointer. */
#ifndef QVM_ERROR_H
#define QVM_ERROR_H

#include <stdarg.h>

#define QVM_ERROR_MAX 2048

struct qvm_error {
    int code;                   /* positive errno, 0 when no error */
    const char *task;           /* static string: what qvm was doing, e.g.
                                   "importing qvm file"; NULL: the verb's */
    char msg[QVM_ERROR_MAX];
};

/* Sets the error to CODE (a positive errno) and a printf-style message.
 * Returns -CODE so callers can write: return qvm_err(err, EINVAL, "..."); */
int qvm_err(struct qvm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like qvm_err, appending ": strerror(code)" to the message. */
int qvm_err_errno(struct qvm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with context ("ctx: old message").
 * Returns -err->code (or -EIO if no code was set). */
int qvm_err_wrap(struct qvm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void qvm_err_clear(struct qvm_error *err);

/* Sets the task the error belongs to, unless one is set already. Returns
 * -err->code so it can wrap a return: return qvm_err_task(err, "..."). */
int qvm_err_task(struct qvm_error *err, const char *task);

#endif
