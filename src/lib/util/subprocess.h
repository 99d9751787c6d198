/* subprocess.h - the only way qvm runs another program.
 *
 * argv arrays only: no shell is ever involved. The child gets stdin from
 * /dev/null (or a given fd), every fd >= 3 closed but those passed on purpose, LC_ALL=C, and either
 * captured or inherited stdout/stderr, or stdout into a given fd (a stream
 * too large to capture). Output is read with poll() so a chatty child
 * cannot deadlock us; captured output is capped. On timeout the child is
 * killed with SIGKILL; it is always reaped. */
#ifndef QVM_SUBPROCESS_H
#define QVM_SUBPROCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct qvm_run_opts {
    int timeout_ms;          /* 0: 10 minutes */
    int stdin_fd;            /* -1 (or 0 when zero-initialised with use_stdin_fd false): /dev/null */
    bool use_stdin_fd;
    int stdout_fd;           /* with use_stdout_fd: the child's stdout (nothing captured) */
    bool use_stdout_fd;
    bool inherit_stdout;     /* let stdout through to ours (progress on a terminal) */
    bool inherit_stderr;
    size_t max_output;       /* per stream; 0: 1 MiB */
    const int *pass_fds;     /* fds the child gets as 3, 4, ... (QEMU's tap fds) */
    size_t npass_fds;        /* at most QVM_RUN_MAX_PASS_FDS */
};

#define QVM_RUN_MAX_PASS_FDS 16

struct qvm_run_result {
    int status;              /* exit code; 128+N if killed by signal N */
    bool timed_out;
    char *out;               /* captured stdout, NUL-terminated, never NULL after qvm_run */
    size_t out_len;
    char *err;               /* captured stderr */
    size_t err_len;
};

/* Runs argv[0] (looked up in PATH) with argv. Returns 0 if the child ran and
 * exited 0. Returns a negative errno and fills ERR if it could not be
 * started, timed out, or exited non-zero (the message names the program, the
 * status and the last line of its stderr). RES may be NULL; if given, it is
 * filled in every case where the child ran and must be released with
 * qvm_run_result_release. */
int qvm_run(const char *const argv[], const struct qvm_run_opts *opts,
            struct qvm_run_result *res, struct qvm_error *err);

void qvm_run_result_release(struct qvm_run_result *res);

/* Formats argv as a single line for messages and tests (quoted where needed). */
char *qvm_argv_to_string(const char *const argv[]);

/* The last non-empty line of S (a pointer into a static buffer), for messages. */
const char *qvm_last_line(const char *s);

#endif
