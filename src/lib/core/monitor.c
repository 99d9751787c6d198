/* monitor.c - the VM lock with a timeout that names its holder, and QMP/QGA
 * connections that tell a dead QEMU from a slow one (see monitor.h). */
#include "monitor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/process.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"

#define LOCK_POLL_MS 50
#define QMP_TIMEOUT_MS 10000     /* connect + greeting + capabilities */
#define REFUSE_GRACE_MS 1000     /* a live QEMU whose socket refuses this long is broken */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int qvm_vm_lock_timeout_ms(void)
{
    const char *s = getenv("QVM_LOCK_TIMEOUT");
    if (s && *s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (!*end && v >= 0 && v <= 86400)
            return (int)v * 1000;
    }
    return QVM_LOCK_TIMEOUT_S * 1000;
}

int qvm_vm_lock(struct qvm_ctx *ctx, const char *name, int wait_ms, struct qvm_error *err)
{
    int r = qvm_name_check("VM", name, err);
    if (r < 0)
        return r;
    if (wait_ms < 0)
        wait_ms = qvm_vm_lock_timeout_ms();
    char *path = xasprintf("%s/vm-%s.lock", ctx->paths.lock_dir, name);
    char *what = xasprintf("VM '%s'", name);
    long long start = now_ms();
    bool told = false;
    int fd;
    for (;;) {
        struct qvm_error e = { 0 };
        fd = qvm_lock_path(path, false, what, &e);
        if (fd >= 0 || e.code != EBUSY) {
            if (fd < 0)
                fd = qvm_err(err, e.code, "%s", e.msg);
            break;
        }
        long long waited = now_ms() - start;
        if (waited >= wait_ms) {
            /* Name the holder: "qvm stop web1" says more than "busy". */
            pid_t pid = qvm_flock_holder(path);
            char *cmd = pid > 0 ? qvm_process_cmdline(pid, 200) : NULL;
            char holder[320];
            if (cmd)
                snprintf(holder, sizeof holder, "another qvm command (pid %d: %s)", (int)pid, cmd);
            else
                snprintf(holder, sizeof holder, "another qvm command");
            free(cmd);
            if (wait_ms > 0)
                fd = qvm_err(err, EBUSY, "VM '%s' is busy: %s held it for all of %d s "
                             "(QVM_LOCK_TIMEOUT sets how long to wait)", name, holder,
                             (wait_ms + 999) / 1000);
            else
                fd = qvm_err(err, EBUSY, "VM '%s' is busy: %s is working on it", name, holder);
            break;
        }
        if (!told && waited >= 1000) {
            qvm_say(ctx->ui, "Waiting for another qvm command working on VM '%s'", name);
            told = true;
        }
        struct timespec ts = { 0, LOCK_POLL_MS * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    free(what);
    free(path);
    return fd;
}

bool qvm_vm_qemu_exited(const struct qvm_vm *vm)
{
    return access(vm->pid_file, F_OK) == 0 && qvm_vm_pid(vm) <= 0;
}

int qvm_vm_running_pid(const struct qvm_vm *vm, pid_t *ret_pid, struct qvm_error *err)
{
    pid_t pid = qvm_vm_pid(vm);
    if (ret_pid)
        *ret_pid = pid;
    if (pid > 0)
        return 0;
    /* QEMU removes its pid file when it exits normally and qvm stop removes
     * it too: one left behind means QEMU died under the VM. */
    if (access(vm->pid_file, F_OK) == 0)
        return qvm_err(err, ESRCH, "QEMU of VM '%s' is not running (exited)", vm->spec.name);
    return qvm_err(err, ESRCH, "VM '%s' is not running; start it with: qvm start %s",
                   vm->spec.name, vm->spec.name);
}

int qvm_vm_qemu_gone(const struct qvm_vm *vm, int r, struct qvm_error *err)
{
    if (r < 0 && qvm_vm_pid(vm) <= 0)
        qvm_err(err, ESRCH, "QEMU of VM '%s' is not running (exited)", vm->spec.name);
    return r;
}

struct watch {
    pid_t pid;
    long long refuse_until;
};

/* Keeps connect_socket retrying only while QEMU lives, and a refusing
 * socket only for a short grace. */
static bool still_serving(void *arg)
{
    const struct watch *w = arg;
    return qvm_process_alive(w->pid) && now_ms() < w->refuse_until;
}

typedef int connect_fn(const char *, int, qvm_qmp_alive_fn *, void *, struct qvm_qmp **,
                       struct qvm_error *);

static int open_socket(const struct qvm_vm *vm, connect_fn *connect, const char *socket,
                       const char *what, int timeout_ms, struct qvm_qmp **ret,
                       struct qvm_error *err)
{
    *ret = NULL;
    pid_t pid;
    int r = qvm_vm_running_pid(vm, &pid, err);
    if (r < 0)
        return r;
    struct watch w = { .pid = pid, .refuse_until = now_ms() + REFUSE_GRACE_MS };
    struct qvm_error e = { 0 };
    r = connect(socket, timeout_ms, still_serving, &w, ret, &e);
    if (r == 0)
        return 0;
    if (!qvm_process_alive(pid))
        return qvm_err(err, ESRCH, "QEMU of VM '%s' is not running (exited)", vm->spec.name);
    if (e.code == ESRCH)
        return qvm_err(err, ECONNREFUSED, "QEMU of VM '%s' (pid %d) refuses connections on its "
                       "%s socket %s", vm->spec.name, (int)pid, what, socket);
    return qvm_err(err, e.code, "%s", e.msg);
}

int qvm_vm_qmp_open(const struct qvm_vm *vm, struct qvm_qmp **ret, struct qvm_error *err)
{
    return open_socket(vm, qvm_qmp_connect_watch, vm->qmp_socket, "monitor", QMP_TIMEOUT_MS,
                       ret, err);
}

int qvm_vm_qga_open(const struct qvm_vm *vm, int timeout_ms, struct qvm_qmp **ret,
                    struct qvm_error *err)
{
    return open_socket(vm, qvm_qga_connect_watch, vm->qga_socket, "guest agent", timeout_ms,
                       ret, err);
}

int qvm_vm_qmp_execute(const struct qvm_vm *vm, struct qvm_qmp *q, const char *command,
                       struct json_object *args, int timeout_ms, struct json_object **ret,
                       struct qvm_error *err)
{
    int r = qvm_qmp_execute(q, command, args, timeout_ms, ret, err);
    return qvm_vm_qemu_gone(vm, r, err);
}

int qvm_vm_qmp_status(const struct qvm_vm *vm, struct qvm_qmp *q, char *buf, size_t len,
                      struct qvm_error *err)
{
    json_object *ret = NULL;
    int r = qvm_vm_qmp_execute(vm, q, "query-status", NULL, QMP_TIMEOUT_MS, &ret, err);
    if (r == 0) {
        json_object *st;
        if (json_object_object_get_ex(ret, "status", &st) &&
            json_object_is_type(st, json_type_string))
            snprintf(buf, len, "%s", json_object_get_string(st));
        else
            r = qvm_err(err, EPROTO, "query-status of VM '%s' returned no status", vm->spec.name);
    }
    json_object_put(ret);
    return r;
}
