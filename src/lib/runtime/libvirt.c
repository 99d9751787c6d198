/* libvirt.c - the libvirt C API behind libvirt.h.
 *
 * Every call looks its domain up by UUID and frees it again: nothing of
 * libvirt's is kept between calls but the connection. */
#include "libvirt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "runtime/domain_xml.h"
#include "util/strbuf.h"

/* runtime/qga.c's codec (the agent's input-data and out-data). */
char *qvm_base64_encode(const void *data, size_t len);
int qvm_base64_decode(const char *in, size_t in_len, char **ret, size_t *ret_len);

#define EXEC_POLL_MS 100

struct qvm_libvirt {
    virConnectPtr conn;
    char *uri;
};

/* libvirt prints every error on stderr unless a handler is set; qvm
 * reports them itself, once, through struct qvm_error. */
static void quiet(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;
}

/* The errno that says what kind of failure libvirt's last error is. */
static int errno_of(const virError *e)
{
    if (!e)
        return EIO;
    switch (e->code) {
    case VIR_ERR_NO_DOMAIN:
        return ENOENT;
    case VIR_ERR_AGENT_UNRESPONSIVE:
    case VIR_ERR_AGENT_UNSYNCED:
        return EAGAIN;
    case VIR_ERR_OPERATION_TIMEOUT:
        return ETIMEDOUT;
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_SYSTEM_ERROR:
    case VIR_ERR_RPC:
        return ECONNREFUSED;
    case VIR_ERR_OPERATION_INVALID:
        return EINVAL;
    case VIR_ERR_OPERATION_DENIED:
    case VIR_ERR_AUTH_FAILED:
        return EACCES;
    default:
        return EIO;
    }
}

/* "WHAT: libvirt's message", errno from libvirt's error code. */
__attribute__((format(printf, 2, 3)))
static int fail(struct qvm_error *err, const char *fmt, ...)
{
    virErrorPtr e = virGetLastError();
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int code = errno_of(e);
    return qvm_err(err, code, "%s: %s", what, e && e->message ? e->message : "libvirt failed");
}

int qvm_libvirt_open(const char *uri, struct qvm_libvirt **ret, struct qvm_error *err)
{
    *ret = NULL;
    if (!uri)
        uri = QVM_LIBVIRT_DEFAULT_URI;
    if (virInitialize() < 0)
        return qvm_err(err, EIO, "cannot initialise libvirt");
    virSetErrorFunc(NULL, quiet);
    /* The console's streams need an event loop (qvm_libvirt_console); it
     * must be registered before the first connection. Nothing runs it
     * otherwise, and synchronous calls do not need it. */
    static bool events;
    if (!events && virEventRegisterDefaultImpl() == 0)
        events = true;
    virConnectPtr c = virConnectOpen(uri);
    if (!c) {
        virErrorPtr e = virGetLastError();
        return qvm_err(err, ECONNREFUSED, "cannot connect to libvirt at %s (%s); is libvirtd "
                       "running?", uri, e && e->message ? e->message : "no reason given");
    }
    struct qvm_libvirt *lv = xcalloc(1, sizeof *lv);
    lv->conn = c;
    lv->uri = xstrdup(uri);
    *ret = lv;
    return 0;
}

void qvm_libvirt_close(struct qvm_libvirt *lv)
{
    if (!lv)
        return;
    virConnectClose(lv->conn);
    free(lv->uri);
    free(lv);
}

static int lookup(struct qvm_libvirt *lv, const char *uuid, virDomainPtr *ret,
                  struct qvm_error *err)
{
    *ret = virDomainLookupByUUIDString(lv->conn, uuid);
    if (*ret)
        return 0;
    virErrorPtr e = virGetLastError();
    if (e && e->code == VIR_ERR_NO_DOMAIN)
        return qvm_err(err, ENOENT, "libvirt (%s) has no domain with UUID %s", lv->uri, uuid);
    return fail(err, "libvirt (%s): cannot look up domain %s", lv->uri, uuid);
}

int qvm_libvirt_define(struct qvm_libvirt *lv, const char *xml, struct qvm_error *err)
{
    virDomainPtr d = virDomainDefineXML(lv->conn, xml);
    if (!d)
        return fail(err, "libvirt (%s) refused the domain definition", lv->uri);
    virDomainFree(d);
    return 0;
}

int qvm_libvirt_lookup_name(struct qvm_libvirt *lv, const char *name, char *uuid,
                            struct qvm_error *err)
{
    virDomainPtr d = virDomainLookupByName(lv->conn, name);
    if (!d) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_DOMAIN)
            return qvm_err(err, ENOENT, "libvirt (%s) has no domain named '%s'", lv->uri, name);
        return fail(err, "libvirt (%s): cannot look up domain '%s'", lv->uri, name);
    }
    int r = virDomainGetUUIDString(d, uuid) < 0 ? fail(err, "cannot read the UUID of '%s'", name)
                                                : 0;
    virDomainFree(d);
    return r;
}

int qvm_libvirt_name(struct qvm_libvirt *lv, const char *uuid, char **ret, struct qvm_error *err)
{
    virDomainPtr d;
    *ret = NULL;
    int r = lookup(lv, uuid, &d, err);
    if (r < 0)
        return r;
    const char *name = virDomainGetName(d);
    *ret = xstrdup(name ? name : "");
    virDomainFree(d);
    return 0;
}

static const char *state_word(int state)
{
    switch (state) {
    case VIR_DOMAIN_RUNNING:
        return "running";
    case VIR_DOMAIN_BLOCKED:
        return "blocked";
    case VIR_DOMAIN_PAUSED:
        return "paused";
    case VIR_DOMAIN_SHUTDOWN:
        return "shutting-down";
    case VIR_DOMAIN_SHUTOFF:
        return "stopped";
    case VIR_DOMAIN_CRASHED:
        return "crashed";
    case VIR_DOMAIN_PMSUSPENDED:
        return "suspended";
    default:
        return "unknown";
    }
}

int qvm_libvirt_state(struct qvm_libvirt *lv, const char *uuid, char *buf, size_t size,
                      struct qvm_error *err)
{
    virDomainPtr d;
    int r = lookup(lv, uuid, &d, err);
    if (r < 0)
        return r;
    int state = 0, reason = 0;
    if (virDomainGetState(d, &state, &reason, 0) < 0)
        r = fail(err, "libvirt (%s): cannot read the state of domain %s", lv->uri, uuid);
    else
        snprintf(buf, size, "%s", state_word(state));
    virDomainFree(d);
    return r;
}

int qvm_libvirt_active(struct qvm_libvirt *lv, const char *uuid, bool *ret, struct qvm_error *err)
{
    virDomainPtr d;
    int r = lookup(lv, uuid, &d, err);
    if (r < 0)
        return r;
    int a = virDomainIsActive(d);
    if (a < 0)
        r = fail(err, "libvirt (%s): cannot tell whether domain %s runs", lv->uri, uuid);
    else
        *ret = a == 1;
    virDomainFree(d);
    return r;
}

/* Runs OP on domain UUID; WHAT names it in messages. */
static int domain_op(struct qvm_libvirt *lv, const char *uuid, int (*op)(virDomainPtr),
                     const char *what, struct qvm_error *err)
{
    virDomainPtr d;
    int r = lookup(lv, uuid, &d, err);
    if (r < 0)
        return r;
    /* Every libvirt call resets its last error: the name is read first. */
    const char *name = virDomainGetName(d);
    if (op(d) < 0)
        r = fail(err, "libvirt (%s) could not %s domain '%s'", lv->uri, what, name ? name : uuid);
    virDomainFree(d);
    return r;
}

int qvm_libvirt_start(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err)
{
    return domain_op(lv, uuid, virDomainCreate, "start", err);
}

static int acpi_shutdown(virDomainPtr d)
{
    return virDomainShutdownFlags(d, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN);
}

int qvm_libvirt_shutdown(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err)
{
    return domain_op(lv, uuid, acpi_shutdown, "power off (ACPI)", err);
}

int qvm_libvirt_destroy(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err)
{
    virDomainPtr d;
    struct qvm_error e = { 0 };
    int r = lookup(lv, uuid, &d, &e);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return qvm_err(err, -r, "%s", e.msg);
    if (virDomainIsActive(d) == 1 && virDomainDestroy(d) < 0) {
        virErrorPtr le = virSaveLastError();    /* IsActive resets it */
        if (virDomainIsActive(d) == 1)
            r = qvm_err(err, errno_of(le), "libvirt (%s) could not power off domain %s: %s",
                        lv->uri, uuid, le && le->message ? le->message : "libvirt failed");
        virFreeError(le);
    }
    virDomainFree(d);
    return r;
}

int qvm_libvirt_undefine(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err)
{
    virDomainPtr d;
    struct qvm_error e = { 0 };
    int r = lookup(lv, uuid, &d, &e);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return qvm_err(err, -r, "%s", e.msg);
    unsigned flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                     VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;
    if (virDomainUndefineFlags(d, flags) < 0) {
        virErrorPtr le = virGetLastError();
        if (!le || le->code != VIR_ERR_NO_DOMAIN)
            r = fail(err, "libvirt (%s) could not undefine domain %s", lv->uri, uuid);
    }
    virDomainFree(d);
    return r;
}

int qvm_libvirt_suspend(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err)
{
    return domain_op(lv, uuid, virDomainSuspend, "pause", err);
}

int qvm_libvirt_resume(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err)
{
    return domain_op(lv, uuid, virDomainResume, "resume", err);
}

int qvm_libvirt_fsfreeze(struct qvm_libvirt *lv, const char *uuid, int *ret_count,
                         struct qvm_error *err)
{
    virDomainPtr d;
    int r = lookup(lv, uuid, &d, err);
    if (r < 0)
        return r;
    int n = virDomainFSFreeze(d, NULL, 0, 0);
    if (n < 0)
        r = fail(err, "libvirt (%s): the guest agent of domain %s could not freeze its file "
                 "systems", lv->uri, uuid);
    else if (ret_count)
        *ret_count = n;
    virDomainFree(d);
    return r;
}

int qvm_libvirt_fsthaw(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err)
{
    virDomainPtr d;
    int r = lookup(lv, uuid, &d, err);
    if (r < 0)
        return r;
    if (virDomainFSThaw(d, NULL, 0, 0) < 0)
        r = fail(err, "libvirt (%s): the file systems of domain %s could not be thawed", lv->uri,
                 uuid);
    virDomainFree(d);
    return r;
}

int qvm_libvirt_xml(struct qvm_libvirt *lv, const char *uuid, bool inactive, char **ret,
                    struct qvm_error *err)
{
    virDomainPtr d;
    *ret = NULL;
    int r = lookup(lv, uuid, &d, err);
    if (r < 0)
        return r;
    char *xml = virDomainGetXMLDesc(d, inactive ? VIR_DOMAIN_XML_INACTIVE : 0);
    if (!xml)
        r = fail(err, "libvirt (%s): cannot read the XML of domain %s", lv->uri, uuid);
    else
        *ret = xstrdup(xml);
    free(xml);
    virDomainFree(d);
    return r;
}

int qvm_libvirt_set_autostart(struct qvm_libvirt *lv, const char *uuid, bool on,
                              struct qvm_error *err)
{
    virDomainPtr d;
    int r = lookup(lv, uuid, &d, err);
    if (r < 0)
        return r;
    if (virDomainSetAutostart(d, on ? 1 : 0) < 0)
        r = fail(err, "libvirt (%s): cannot set autostart of domain %s", lv->uri, uuid);
    virDomainFree(d);
    return r;
}

int qvm_libvirt_set_metadata(struct qvm_libvirt *lv, const char *uuid, const char *fragment,
                             struct qvm_error *err)
{
    virDomainPtr d;
    int r = lookup(lv, uuid, &d, err);
    if (r < 0)
        return r;
    /* The persistent definition, and the running domain's too, so that
     * virsh dumpxml shows it at once. */
    unsigned flags = VIR_DOMAIN_AFFECT_CONFIG |
                     (virDomainIsActive(d) == 1 ? VIR_DOMAIN_AFFECT_LIVE : 0);
    if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, fragment, "qvm", QVM_DOMAIN_XMLNS,
                             flags) < 0)
        r = fail(err, "libvirt (%s): cannot write qvm's metadata into domain %s", lv->uri, uuid);
    virDomainFree(d);
    return r;
}

int qvm_libvirt_monitor_command(struct qvm_libvirt *lv, const char *uuid, const char *cmd,
                                char **ret, struct qvm_error *err)
{
    virDomainPtr d;
    *ret = NULL;
    int r = lookup(lv, uuid, &d, err);
    if (r < 0)
        return r;
    char *reply = NULL;
    if (virDomainQemuMonitorCommand(d, cmd, &reply, 0) < 0)
        r = fail(err, "libvirt (%s): QMP command on domain %s failed", lv->uri, uuid);
    else
        *ret = xstrdup(reply ? reply : "");
    free(reply);
    virDomainFree(d);
    return r;
}

int qvm_libvirt_agent_command(struct qvm_libvirt *lv, const char *uuid, const char *cmd,
                              int timeout_s, char **ret, struct qvm_error *err)
{
    virDomainPtr d;
    *ret = NULL;
    int r = lookup(lv, uuid, &d, err);
    if (r < 0)
        return r;
    if (virDomainIsActive(d) != 1) {
        virDomainFree(d);
        return qvm_err(err, ESRCH, "domain %s is not running, so its guest agent cannot answer",
                       uuid);
    }
    char *reply = virDomainQemuAgentCommand(d, cmd, timeout_s > 0 ? timeout_s : 5, 0);
    if (!reply) {
        /* A copy: the next call (IsActive) resets libvirt's last error. */
        virErrorPtr e = virSaveLastError();
        /* The domain stopped meanwhile: say so, not "agent unresponsive". */
        if (virDomainIsActive(d) != 1)
            r = qvm_err(err, ESRCH, "domain %s stopped while qvm talked to its guest agent", uuid);
        else
            r = qvm_err(err, errno_of(e), "guest agent of domain %s: %s", uuid,
                        e && e->message ? e->message : "no answer");
        virFreeError(e);
    } else {
        *ret = reply;
    }
    virDomainFree(d);
    return r;
}

/* CMD (with ARGS, taken) to the agent; the "return" member into *ret. */
static int agent_call(struct qvm_libvirt *lv, const char *uuid, const char *cmd,
                      json_object *args, int timeout_s, json_object **ret, struct qvm_error *err)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "execute", json_object_new_string(cmd));
    if (args)
        json_object_object_add(o, "arguments", args);
    char *reply = NULL;
    int r = qvm_libvirt_agent_command(lv, uuid, json_object_to_json_string_ext(o,
                                      JSON_C_TO_STRING_PLAIN), timeout_s, &reply, err);
    json_object_put(o);
    if (r < 0)
        return r;
    json_object *rep = json_tokener_parse(reply);
    free(reply);
    json_object *v = NULL;
    if (!rep || !json_object_object_get_ex(rep, "return", &v)) {
        json_object_put(rep);
        return qvm_err(err, EPROTO, "%s: the guest agent's reply has no return value", cmd);
    }
    *ret = json_object_get(v);
    json_object_put(rep);
    return 0;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int decode(json_object *status, const char *key, char **ret, size_t *ret_len,
                  struct qvm_error *err)
{
    json_object *v;
    if (!json_object_object_get_ex(status, key, &v)) {
        *ret = xstrdup("");
        *ret_len = 0;
        return 0;
    }
    const char *s = json_object_get_string(v);
    if (!json_object_is_type(v, json_type_string) ||
        qvm_base64_decode(s, strlen(s), ret, ret_len) < 0)
        return qvm_err(err, EPROTO, "guest-exec-status: '%s' is not valid base64", key);
    return 0;
}

int qvm_libvirt_agent_exec(struct qvm_libvirt *lv, const char *uuid, const char *const argv[],
                           const char *input, int timeout_ms, int *ret_exit, char **ret_out,
                           size_t *ret_out_len, char **ret_err, size_t *ret_err_len,
                           struct qvm_error *err)
{
    if (!argv || !argv[0])
        return qvm_err(err, EINVAL, "guest-exec: no program given");
    if (timeout_ms <= 0)
        timeout_ms = 30000;
    long long deadline = now_ms() + timeout_ms;
    json_object *args = json_object_new_object();
    json_object_object_add(args, "path", json_object_new_string(argv[0]));
    json_object *arr = json_object_new_array();
    for (size_t i = 1; argv[i]; i++)
        json_object_array_add(arr, json_object_new_string(argv[i]));
    json_object_object_add(args, "arg", arr);
    if (input) {
        char *b64 = qvm_base64_encode(input, strlen(input));
        json_object_object_add(args, "input-data", json_object_new_string(b64));
        free(b64);
    }
    json_object_object_add(args, "capture-output", json_object_new_boolean(1));
    json_object *rep = NULL, *pid_v;
    int r = agent_call(lv, uuid, "guest-exec", args, (timeout_ms + 999) / 1000, &rep, err);
    if (r < 0)
        return r;
    if (!json_object_object_get_ex(rep, "pid", &pid_v) ||
        !json_object_is_type(pid_v, json_type_int)) {
        json_object_put(rep);
        return qvm_err(err, EPROTO, "guest-exec of %s: the reply has no pid", argv[0]);
    }
    int64_t pid = json_object_get_int64(pid_v);
    json_object_put(rep);
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return qvm_err(err, ETIMEDOUT, "%s is still running in the guest after %d ms "
                           "(guest pid %lld)", argv[0], timeout_ms, (long long)pid);
        json_object *sargs = json_object_new_object(), *st = NULL, *v;
        json_object_object_add(sargs, "pid", json_object_new_int64(pid));
        r = agent_call(lv, uuid, "guest-exec-status", sargs, (int)((left + 999) / 1000), &st, err);
        /* -EAGAIN means "try again later" to callers, which would run the
         * program twice: once it started, an agent that stops answering
         * is a failure. */
        if (r == -EAGAIN) {
            char msg[QVM_ERROR_MAX];
            snprintf(msg, sizeof msg, "%s", err ? err->msg : "the agent stopped answering");
            r = qvm_err(err, EIO, "%s", msg);
        }
        if (r < 0)
            return qvm_err_wrap(err, "cannot follow %s in the guest", argv[0]);
        if (!(json_object_object_get_ex(st, "exited", &v) && json_object_get_boolean(v))) {
            json_object_put(st);
            usleep(EXEC_POLL_MS * 1000);
            continue;
        }
        int code = -1;
        if (json_object_object_get_ex(st, "exitcode", &v))
            code = json_object_get_int(v);
        else if (json_object_object_get_ex(st, "signal", &v))
            code = 128 + json_object_get_int(v);
        char *out = NULL, *errs = NULL;
        size_t out_len = 0, errs_len = 0;
        r = decode(st, "out-data", &out, &out_len, err);
        if (r == 0)
            r = decode(st, "err-data", &errs, &errs_len, err);
        json_object_put(st);
        if (r == 0) {
            *ret_exit = code;
            *ret_out = out;
            *ret_out_len = out_len;
            *ret_err = errs;
            *ret_err_len = errs_len;
        } else {
            free(out);
            free(errs);
        }
        return r;
    }
}

/* ---- console ------------------------------------------------------------------ */

/* libvirt delivers a stream's data only while its event loop runs (the
 * remote driver reads the socket from there), so the console runs
 * libvirt's default event loop with two watches: the stream and IN_FD. */
struct console {
    virStreamPtr st;
    int in_fd, out_fd, escape;
    bool done;
    int r;
    struct qvm_error *err;
    const char *uuid;
};

static int write_all_fd(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void stream_ready(virStreamPtr st, int events, void *opaque)
{
    struct console *c = opaque;
    char buf[4096];
    if (events & VIR_STREAM_EVENT_READABLE) {
        for (;;) {
            int n = virStreamRecv(st, buf, sizeof buf);
            if (n == -2)
                break;
            if (n <= 0) {      /* 0: the console closed (the domain stopped) */
                if (n < 0)
                    c->r = fail(c->err, "the console of domain %s failed", c->uuid);
                c->done = true;
                return;
            }
            if (write_all_fd(c->out_fd, buf, (size_t)n) < 0) {
                c->done = true;
                return;
            }
        }
    }
    if (events & (VIR_STREAM_EVENT_HANGUP | VIR_STREAM_EVENT_ERROR))
        c->done = true;
}

static void input_ready(int watch, int fd, int events, void *opaque)
{
    struct console *c = opaque;
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
        return;
    if (n <= 0) {
        c->done = true;
        return;
    }
    char *esc = c->escape >= 0 ? memchr(buf, c->escape, (size_t)n) : NULL;
    if (esc) {
        n = esc - buf;
        c->done = true;
    }
    for (ssize_t off = 0; off < n;) {
        int s = virStreamSend(c->st, buf + off, (size_t)(n - off));
        if (s == -2) {          /* its buffer is full: typing outpaces the guest */
            usleep(5000);
            continue;
        }
        if (s < 0) {
            c->r = fail(c->err, "the console of domain %s closed", c->uuid);
            c->done = true;
            return;
        }
        off += s;
    }
}

int qvm_libvirt_console(struct qvm_libvirt *lv, const char *uuid, int in_fd, int out_fd,
                        int escape, struct qvm_error *err)
{
    virDomainPtr d;
    int r = lookup(lv, uuid, &d, err);
    if (r < 0)
        return r;
    virStreamPtr st = virStreamNew(lv->conn, VIR_STREAM_NONBLOCK);
    if (!st) {
        virDomainFree(d);
        return fail(err, "libvirt (%s): cannot create a stream", lv->uri);
    }
    /* SAFE: refuse, rather than steal, a console another client holds. */
    if (virDomainOpenConsole(d, NULL, st, VIR_DOMAIN_CONSOLE_SAFE) < 0) {
        r = fail(err, "libvirt (%s): cannot open the console of domain %s", lv->uri, uuid);
        if (err && err->code == EIO)
            err->code = EBUSY;   /* what SAFE refuses: another client holds it */
        virStreamFree(st);
        virDomainFree(d);
        return r;
    }
    struct console c = { .st = st, .in_fd = in_fd, .out_fd = out_fd, .escape = escape,
                         .err = err, .uuid = uuid };
    int watch = -1;
    if (virStreamEventAddCallback(st, VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_HANGUP |
                                  VIR_STREAM_EVENT_ERROR, stream_ready, &c, NULL) < 0 ||
        (watch = virEventAddHandle(in_fd, VIR_EVENT_HANDLE_READABLE | VIR_EVENT_HANDLE_HANGUP,
                                   input_ready, &c, NULL)) < 0) {
        c.r = fail(err, "libvirt: cannot watch the console of domain %s", uuid);
        c.done = true;
    }
    while (!c.done)
        if (virEventRunDefaultImpl() < 0)
            break;
    if (watch >= 0)
        virEventRemoveHandle(watch);
    virStreamEventRemoveCallback(st);
    virStreamAbort(st);
    virStreamFree(st);
    virDomainFree(d);
    return c.r;
}
