/* qga.c - running a program in the guest through the guest agent
 * (guest-exec, then guest-exec-status until it exits), and the base64 codec
 * the agent's input-data/out-data/err-data need. Built only on the public
 * qmp.h API; the stream and its synchronisation are qmp.c's. */
#include "qmp.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/strbuf.h"

#define STATUS_POLL_MS 100

/* Exported for tests/unit/test_seed.c; a util/base64.h would be their
 * natural home once another module needs them. */
char *qvm_base64_encode(const void *data, size_t len);
int qvm_base64_decode(const char *in, size_t in_len, char **ret, size_t *ret_len);

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard alphabet with '=' padding (RFC 4648, section 4), no line breaks:
 * what glib's g_base64_encode, which the agent uses, produces. */
char *qvm_base64_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out = xmalloc((len + 2) / 3 * 4 + 1);
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict: padded to a multiple of 4, '=' only at the end. The result is
 * NUL-terminated (not counted in *ret_len); -EINVAL on anything else. */
int qvm_base64_decode(const char *in, size_t in_len, char **ret, size_t *ret_len)
{
    if (in_len % 4)
        return -EINVAL;
    size_t pad = 0;
    if (in_len && in[in_len - 1] == '=')
        pad = in_len >= 2 && in[in_len - 2] == '=' ? 2 : 1;
    unsigned char *out = xmalloc(in_len / 4 * 3 + 1);
    size_t n = 0;
    for (size_t i = 0; i < in_len; i += 4) {
        bool last = i + 4 == in_len;
        int v[4];
        for (int k = 0; k < 4; k++) {
            bool padded = last && k >= 4 - (int)pad;
            v[k] = padded ? 0 : b64_value(in[i + k]);
            if (v[k] < 0) {
                free(out);
                return -EINVAL;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        out[n++] = (unsigned char)(w >> 16);
        if (!last || pad < 2)
            out[n++] = (unsigned char)(w >> 8);
        if (!last || pad < 1)
            out[n++] = (unsigned char)w;
    }
    out[n] = '\0';
    *ret = (char *)out;
    if (ret_len)
        *ret_len = n;
    return 0;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int decode_member(struct json_object *status, const char *key, char **ret,
                         size_t *ret_len, struct qvm_error *err)
{
    struct json_object *v;
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

int qvm_qga_exec(struct qvm_qmp *q, const char *const argv[], const char *input,
                 int timeout_ms, int *ret_exit, char **ret_out, size_t *ret_out_len,
                 char **ret_err, size_t *ret_err_len, struct qvm_error *err)
{
    if (!argv || !argv[0])
        return qvm_err(err, EINVAL, "guest-exec: no program given");
    if (timeout_ms <= 0)
        timeout_ms = 30000;
    long long deadline = now_ms() + timeout_ms;

    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "path", json_object_new_string(argv[0]));
    struct json_object *arr = json_object_new_array();
    for (size_t i = 1; argv[i]; i++)
        json_object_array_add(arr, json_object_new_string(argv[i]));
    json_object_object_add(args, "arg", arr);
    if (input) {
        char *b64 = qvm_base64_encode(input, strlen(input));
        json_object_object_add(args, "input-data", json_object_new_string(b64));
        free(b64);
    }
    json_object_object_add(args, "capture-output", json_object_new_boolean(1));
    struct json_object *reply = NULL;
    int r = qvm_qmp_execute(q, "guest-exec", args, timeout_ms, &reply, err);
    json_object_put(args);
    if (r < 0)
        return qvm_err_wrap(err, "cannot run %s in the guest", argv[0]);
    struct json_object *pid_v;
    if (!json_object_object_get_ex(reply, "pid", &pid_v) ||
        !json_object_is_type(pid_v, json_type_int)) {
        json_object_put(reply);
        return qvm_err(err, EPROTO, "guest-exec of %s: the reply has no pid", argv[0]);
    }
    int64_t pid = json_object_get_int64(pid_v);
    json_object_put(reply);

    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return qvm_err(err, ETIMEDOUT, "%s is still running in the guest after %d ms "
                           "(guest pid %lld)", argv[0], timeout_ms, (long long)pid);
        struct json_object *sargs = json_object_new_object();
        json_object_object_add(sargs, "pid", json_object_new_int64(pid));
        struct json_object *status = NULL;
        r = qvm_qmp_execute(q, "guest-exec-status", sargs, (int)left, &status, err);
        json_object_put(sargs);
        if (r < 0)
            return qvm_err_wrap(err, "cannot follow %s in the guest", argv[0]);

        struct json_object *v;
        bool exited = json_object_object_get_ex(status, "exited", &v) &&
                      json_object_get_boolean(v);
        if (!exited) {
            json_object_put(status);
            left = deadline - now_ms();
            usleep((useconds_t)(left < STATUS_POLL_MS ? (left > 0 ? left : 0) : STATUS_POLL_MS)
                   * 1000);
            continue;
        }
        int code = -1;
        if (json_object_object_get_ex(status, "exitcode", &v))
            code = json_object_get_int(v);
        else if (json_object_object_get_ex(status, "signal", &v))
            code = 128 + json_object_get_int(v);
        char *out = NULL, *errs = NULL;
        size_t out_len = 0, errs_len = 0;
        r = decode_member(status, "out-data", &out, &out_len, err);
        if (r == 0)
            r = decode_member(status, "err-data", &errs, &errs_len, err);
        json_object_put(status);
        if (r < 0) {
            free(out);
            return r;
        }
        if (ret_exit)
            *ret_exit = code;
        if (ret_out) {
            *ret_out = out;
            out = NULL;
        }
        if (ret_out_len)
            *ret_out_len = out_len;
        if (ret_err) {
            *ret_err = errs;
            errs = NULL;
        }
        if (ret_err_len)
            *ret_err_len = errs_len;
        free(out);
        free(errs);
        return 0;
    }
}
