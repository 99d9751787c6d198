#include "context.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "core/journal.h"
#include "core/pools.h"
#include "storage/storage.h"

int qvm_ctx_init(struct qvm_ctx *ctx, const char *root, struct qvm_ui *ui, struct qvm_error *err)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->ui = ui;
    const char *qemu = getenv("QVM_QEMU");
    ctx->qemu_binary = qemu && *qemu ? qemu : "qemu-system-x86_64";
    ctx->default_pool = NULL;      /* the configuration's default pool */
    int r = qvm_paths_init(&ctx->paths, root, err);
    if (r < 0)
        return r;
    r = qvm_paths_ensure(&ctx->paths, err);
    if (r < 0)
        return r;
    /* The implicit default dir pool needs its layout; a configured pool got
     * it from qvm pool add. A pool that cannot be opened here (a zfs pool
     * whose daemon is down) is reported by the command that uses it. */
    struct qvm_pool pool;
    if (qvm_pool_get(ctx, "default", &pool, NULL) == 0) {
        r = pool.driver->pool_init(&pool, err);
        qvm_pool_release(&pool);
        if (r < 0)
            return r;
    }
    r = qvm_journal_recover(ctx, err);
    return r < 0 ? r : 0;
}

void qvm_ctx_release(struct qvm_ctx *ctx)
{
    qvm_paths_release(&ctx->paths);
}

static double elapsed_ms(void)
{
    /* Since the process started, from /proc/self/stat is overkill: the
     * first call to any step is close enough to startup for a profile. */
    static struct timespec t0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (t0.tv_sec == 0 && t0.tv_nsec == 0)
        t0 = now;
    return (double)(now.tv_sec - t0.tv_sec) * 1000.0 + (double)(now.tv_nsec - t0.tv_nsec) / 1e6;
}

void qvm_timing_start(void)
{
    elapsed_ms();
}

void qvm_timing_mark(const char *what)
{
    if (getenv("QVM_TIMING"))
        fprintf(stderr, "qvm timing: %-20s %7.2f ms\n", what, elapsed_ms());
}

int qvm_fault_point(const char *step, struct qvm_error *err)
{
    qvm_timing_mark(step);
    const char *trace = getenv("QVM_FAULT_TRACE");
    if (trace && *trace) {
        int fd = open(trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            if (write(fd, step, strlen(step)) < 0 || write(fd, "\n", 1) < 0) {
                /* tracing is best effort */
            }
            close(fd);
        }
    }
    const char *fault = getenv("QVM_FAULT");
    if (!fault || !*fault)
        return 0;
    if (strncmp(fault, "kill:", 5) == 0 && strcmp(fault + 5, step) == 0)
        raise(SIGKILL);
    if (strcmp(fault, step) == 0)
        return qvm_err(err, EIO, "injected failure after step '%s' (QVM_FAULT)", step);
    return 0;
}
