/* guest.c - exec and wait through the guest agent, each conversation under
 * the VM lock (monitor.h). */
#include "guest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/monitor.h"
#include "core/runtime_libvirt.h"
#include "core/vm.h"
#include "runtime/qmp.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Opens a conversation with the agent of VM NAME: the VM lock held, the
 * VM running and not paused, the agent synchronised. While the guest boots
 * the agent does not answer yet: the lock is let go between attempts until
 * DEADLINE, so a long wait does not keep stop or info out. Fatal states
 * (not running, QEMU dead, paused) fail at once. */
static int agent_open(struct qvm_ctx *ctx, const char *name, long long deadline, int *ret_lock,
                      struct qvm_qmp **ret, struct qvm_error *err)
{
    struct qvm_vm vm;
    int r = qvm_vm_load(ctx, name, &vm, err);
    if (r < 0)
        return r;
    for (;;) {
        long long left = deadline - now_ms();
        int lock_wait = qvm_vm_lock_timeout_ms();
        int lock = qvm_vm_lock(ctx, name, left < lock_wait ? (int)(left > 0 ? left : 0) : lock_wait,
                               err);
        if (lock < 0) {
            r = lock;
            break;
        }
        struct qvm_qmp *q = NULL;
        char st[32] = "";
        r = qvm_vm_qmp_open(&vm, &q, err);
        if (r == 0)
            r = qvm_vm_qmp_status(&vm, q, st, sizeof st, err);
        qvm_qmp_close(q);
        if (r == 0 && strcmp(st, "running") != 0)
            r = qvm_err(err, EAGAIN, "VM '%s' is %s, so its guest agent cannot answer%s%s", name,
                        st, strcmp(st, "paused") == 0 ? "; resume it with: qvm resume " : "",
                        strcmp(st, "paused") == 0 ? name : "");
        if (r < 0) {
            qvm_unlock(lock);
            break;
        }
        left = deadline - now_ms();
        if (left <= 0) {
            qvm_unlock(lock);
            r = qvm_err(err, ETIMEDOUT, "the guest agent of VM '%s' did not answer in time", name);
            break;
        }
        struct qvm_error e = { 0 };
        r = qvm_vm_qga_open(&vm, left < 5000 ? (int)left : 5000, ret, &e);
        if (r == 0) {
            *ret_lock = lock;
            break;
        }
        qvm_unlock(lock);
        if (e.code == ESRCH) {
            r = qvm_err(err, ESRCH, "%s", e.msg);
            break;
        }
        usleep(500 * 1000);
    }
    qvm_vm_release(&vm);
    return r;
}

int qvm_guest_exec(struct qvm_ctx *ctx, const char *name, const char *const argv[],
                   const char *input, int timeout_s, struct qvm_exec_result *ret,
                   struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    long long deadline = now_ms() + (long long)timeout_s * 1000;
    int r = qvm_name_check("VM", name, err);
    if (r < 0)
        return r;
    if (qvm_vm_name_libvirt(ctx, name))         /* the agent through libvirt */
        return qvm_lv_guest_exec(ctx, name, argv, input, timeout_s, ret, err);
    int lock = -1;
    struct qvm_qmp *q;
    r = agent_open(ctx, name, deadline, &lock, &q, err);
    if (r == 0) {
        long long left = deadline - now_ms();
        r = qvm_qga_exec(q, argv, input, left > 1000 ? (int)left : 1000, &ret->exit_status,
                         &ret->out, &ret->out_len, &ret->err, &ret->err_len, err);
        qvm_qmp_close(q);
        if (r < 0) {
            struct qvm_vm vm;
            if (qvm_vm_load(ctx, name, &vm, NULL) == 0) {
                qvm_vm_qemu_gone(&vm, r, err);
                qvm_vm_release(&vm);
            }
        }
        qvm_unlock(lock);
    }
    return r;
}

void qvm_exec_result_release(struct qvm_exec_result *res)
{
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof *res);
}

int qvm_guest_wait(struct qvm_ctx *ctx, const char *name, int timeout_s, char **ret_status,
                   struct qvm_error *err)
{
    *ret_status = NULL;
    qvm_say(ctx->ui, "Waiting for the guest agent and cloud-init of VM '%s' (up to %d s)", name,
            timeout_s);
    long long deadline = now_ms() + (long long)timeout_s * 1000;
    /* `cloud-init status --wait` alone is not enough: cloud-init 22.4 reports
     * "error" as soon as one stage failed, before the final stage (runcmd)
     * has run. The final stage writes result.json last, so wait for that,
     * then read the status. */
    static const char *const done_argv[] = { "test", "-e", "/run/cloud-init/result.json", NULL };
    static const char *const status_argv[] = { "cloud-init", "status", "--long", NULL };
    struct qvm_exec_result res;
    int r;
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return qvm_err(err, ETIMEDOUT, "cloud-init in VM '%s' did not finish in %d s", name,
                           timeout_s);
        r = qvm_guest_exec(ctx, name, done_argv, NULL, (int)((left + 999) / 1000), &res, err);
        if (r < 0)
            return r;
        int done = res.exit_status == 0;
        qvm_exec_result_release(&res);
        if (done)
            break;
        usleep(1000 * 1000);
    }
    long long left = deadline - now_ms();
    r = qvm_guest_exec(ctx, name, status_argv, NULL, left > 10000 ? (int)(left / 1000) : 10, &res,
                       err);
    if (r < 0)
        return r;
    struct strbuf sb = STRBUF_INIT;
    if (res.out_len)
        strbuf_add(&sb, res.out, res.out_len);
    if (res.err_len)
        strbuf_add(&sb, res.err, res.err_len);
    while (sb.len && (sb.buf[sb.len - 1] == '\n' || sb.buf[sb.len - 1] == ' '))
        sb.buf[--sb.len] = '\0';
    *ret_status = strbuf_detach(&sb, NULL);
    /* cloud-init status exits 0 when done, 1 on errors, 2 on recoverable
     * errors (newer versions). */
    if (res.exit_status != 0)
        r = qvm_err(err, EIO, "cloud-init in VM '%s' reported errors (exit status %d): %s", name,
                    res.exit_status, *ret_status);
    qvm_exec_result_release(&res);
    return r;
}
