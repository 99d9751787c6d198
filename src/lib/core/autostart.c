/* autostart.c - qvm autostart --boot and --shutdown (see autostart.h). Each
 * VM goes through qvm_start / qvm_stop, which take its lock and journal as
 * they always do. */
#include "autostart.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/lifecycle.h"
#include "core/vm.h"
#include "util/strbuf.h"

int qvm_autostart_list(struct qvm_ctx *ctx, struct qvm_autostart_result **ret, size_t *ret_n,
                       struct qvm_error *err)
{
    char **names;
    size_t n;
    *ret = NULL;
    *ret_n = 0;
    int r = qvm_vm_list_names(ctx, &names, &n, err);
    if (r < 0)
        return r;
    struct qvm_autostart_result *v = xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        struct qvm_vm vm;
        v[i].name = names[i];
        /* A VM that cannot be read is reported, not skipped: it may be one
         * that should start. */
        v[i].r = qvm_vm_load(ctx, names[i], &vm, &v[i].err);
        if (v[i].r < 0)
            continue;
        v[i].autostart = vm.spec.autostart;
        v[i].running = qvm_vm_pid(&vm) > 0;
        qvm_vm_release(&vm);
    }
    free(names);
    *ret = v;
    *ret_n = n;
    return 0;
}

int qvm_autostart_boot(struct qvm_ctx *ctx, struct qvm_autostart_result **ret, size_t *ret_n,
                       struct qvm_error *err)
{
    int r = qvm_autostart_list(ctx, ret, ret_n, err);
    if (r < 0)
        return r;
    int failed = 0;
    for (size_t i = 0; i < *ret_n; i++) {
        struct qvm_autostart_result *a = &(*ret)[i];
        if (a->r == 0 && a->autostart && !a->running) {
            qvm_say(ctx->ui, "Starting VM '%s' (autostart)", a->name);
            a->r = qvm_start(ctx, a->name, &a->err);
            a->acted = a->r == 0;
        } else if (a->r == 0 && a->autostart) {
            qvm_say(ctx->ui, "VM '%s' (autostart) is already running", a->name);
        }
        failed += a->r < 0;
    }
    return failed;
}

/* Stops NAME in a child process; its error message comes back on a pipe
 * (at most QVM_ERROR_MAX bytes, less than a pipe holds, so the child never
 * blocks on it). Returns the child's pid, or a negative errno. */
static pid_t stop_child(struct qvm_ctx *ctx, const char *name, int timeout_s, int *ret_fd,
                        struct qvm_error *err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return qvm_err_errno(err, errno, "cannot create a pipe");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return qvm_err_errno(err, e, "cannot fork to stop VM '%s'", name);
    }
    if (pid == 0) {
        close(fds[0]);
        struct qvm_error e = { 0 };
        int r = qvm_stop(ctx, name, false, timeout_s, &e);
        if (r < 0 && write(fds[1], e.msg, strlen(e.msg)) < 0)
            r = -EIO;
        fflush(stdout);
        _exit(r < 0 ? 1 : 0);
    }
    close(fds[1]);
    *ret_fd = fds[0];
    return pid;
}

int qvm_autostart_shutdown(struct qvm_ctx *ctx, int timeout_s,
                           struct qvm_autostart_result **ret, size_t *ret_n,
                           struct qvm_error *err)
{
    int r = qvm_autostart_list(ctx, ret, ret_n, err);
    if (r < 0)
        return r;
    size_t n = *ret_n;
    pid_t *pids = xcalloc(n ? n : 1, sizeof *pids);
    int *fds = xcalloc(n ? n : 1, sizeof *fds);
    for (size_t i = 0; i < n; i++) {
        struct qvm_autostart_result *a = &(*ret)[i];
        fds[i] = -1;
        if (a->r < 0 || !a->autostart || !a->running)
            continue;
        qvm_say(ctx->ui, "Stopping VM '%s' (autostart)", a->name);
        pid_t pid = stop_child(ctx, a->name, timeout_s, &fds[i], &a->err);
        if (pid < 0)
            a->r = (int)pid;
        else
            pids[i] = pid;
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        struct qvm_autostart_result *a = &(*ret)[i];
        if (pids[i] > 0) {
            int status = 0;
            while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
                ;
            char msg[QVM_ERROR_MAX] = "";
            ssize_t got = read(fds[i], msg, sizeof msg - 1);
            msg[got > 0 ? got : 0] = '\0';
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                a->acted = true;
            } else {
                a->r = qvm_err(&a->err, EIO, "%s", msg[0] ? msg : "qvm stop failed");
            }
        }
        if (fds[i] >= 0)
            close(fds[i]);
        failed += a->r < 0 && (a->autostart || a->running);
    }
    free(pids);
    free(fds);
    return failed;
}

void qvm_autostart_results_free(struct qvm_autostart_result *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
}
