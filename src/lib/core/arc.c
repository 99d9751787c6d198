/* arc.c - zfs_arc_max while VMs run (see arc.h). */
#include "arc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/fsutil.h"
#include "util/strbuf.h"

#define MIB (UINT64_C(1) << 20)
#define PARAM "/sys/module/zfs/parameters/zfs_arc_max"
#define ARCSTATS "/proc/spl/kstat/zfs/arcstats"
#define SMALL_FILE_MAX (1u << 16)

static uint64_t round_down_mib(uint64_t v)
{
    return v / MIB * MIB;
}

uint64_t qvm_arc_floor(uint64_t arc_min)
{
    /* OpenZFS applies a zfs_arc_max only if it is >= 64 MiB and > c_min;
     * anything lower would be silently ignored. */
    uint64_t f = QVM_ARC_MIN_MAX;
    if (arc_min >= f)
        f = (arc_min / MIB + 1) * MIB;
    return f;
}

uint64_t qvm_arc_target(const struct qvm_arc_input *in)
{
    uint64_t avail = in->total > in->committed ? in->total - in->committed : 0;
    uint64_t give = avail > in->reserve ? avail - in->reserve : 0;
    unsigned share = in->share_pct > 100 ? 100 : in->share_pct;
    uint64_t keep = (uint64_t)((unsigned __int128)avail * share / 100);
    uint64_t t = round_down_mib(give);
    if (round_down_mib(keep) > t)
        t = round_down_mib(keep);
    /* ZFS ignores a limit of all memory or more. */
    uint64_t cap = round_down_mib(in->total);
    cap = cap >= MIB ? cap - MIB : 0;
    if (t > cap)
        t = cap;
    uint64_t floor = qvm_arc_floor(in->arc_min);
    if (t < floor)
        t = floor;
    /* The administrator's own lower limit stands. */
    if (in->admin && in->admin < t)
        t = in->admin;
    return t;
}

char *qvm_arc_param_path(const char *root)
{
    return xasprintf("%s" PARAM, root ? root : "");
}

static int parse_u64(const char *s, uint64_t *ret)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || (*end && *end != '\n'))
        return -EINVAL;
    *ret = v;
    return 0;
}

/* "zfs_arc_max" holds one decimal number and a newline. */
static int read_param(const char *path, uint64_t *ret, struct qvm_error *err)
{
    char *data = NULL;
    size_t len;
    int r = qvm_read_file(path, SMALL_FILE_MAX, &data, &len, err);
    if (r < 0)
        return r;
    if (parse_u64(data, ret) < 0)
        r = qvm_err(err, EINVAL, "%s holds '%.40s', not a number of bytes", path, data);
    free(data);
    return r;
}

static int write_param(const char *path, uint64_t v, struct qvm_error *err)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%" PRIu64 "\n", v);
    /* O_TRUNC: sysfs ignores it; a test's plain file needs it. */
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot set zfs_arc_max to %" PRIu64 ": cannot open %s",
                             v, path);
    int r = qvm_write_all(fd, buf, (size_t)n, path, err);
    if (close(fd) < 0 && r == 0)
        r = qvm_err_errno(err, errno, "cannot set zfs_arc_max to %" PRIu64 " in %s", v, path);
    return r;
}

/* arcstats, after two header lines:
 *   name                            type data
 *   c_min                           4    1073741824
 *   c_max                           4    8341594112
 * A missing or odd file leaves the values 0 (unknown). */
static void read_arcstats(const char *root, uint64_t *ret_min, uint64_t *ret_max)
{
    *ret_min = *ret_max = 0;
    char *path = xasprintf("%s" ARCSTATS, root ? root : "");
    char *data = NULL;
    size_t len;
    int r = qvm_read_file(path, 1u << 20, &data, &len, NULL);
    free(path);
    if (r < 0)
        return;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[64];
        unsigned type;
        unsigned long long v;
        if (sscanf(line, "%63s %u %llu", name, &type, &v) != 3)
            continue;
        if (strcmp(name, "c_min") == 0)
            *ret_min = v;
        else if (strcmp(name, "c_max") == 0)
            *ret_max = v;
    }
    free(data);
}

/* STATE/arc.json: {"admin": N, "default_max": N, "set": N, "prev": N}.
 * admin: the administrator's zfs_arc_max; default_max: arcstats c_max when
 * qvm first changed it (what "0" meant then); set: what qvm wrote last;
 * prev: the value before that write (so a qvm killed between saving this
 * file and writing the parameter is not mistaken for the administrator). */
struct arc_state {
    uint64_t admin, default_max, set, prev;
};

static uint64_t get_u64(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return 0;
    int64_t n = json_object_get_int64(v);
    return n > 0 ? (uint64_t)n : 0;
}

/* 1 if loaded, 0 if there is none. */
static int state_load(const char *file, struct arc_state *ret, struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    char *data = NULL;
    size_t len;
    int r = qvm_read_file(file, SMALL_FILE_MAX, &data, &len, err);
    if (r == -ENOENT) {
        qvm_err_clear(err);
        return 0;
    }
    if (r < 0)
        return r;
    json_object *o = json_tokener_parse(data);
    free(data);
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return qvm_err(err, EINVAL, "%s is not a JSON object; remove it after setting "
                       "zfs_arc_max by hand", file);
    }
    ret->admin = get_u64(o, "admin");
    ret->default_max = get_u64(o, "default_max");
    ret->set = get_u64(o, "set");
    ret->prev = get_u64(o, "prev");
    json_object_put(o);
    return 1;
}

static int state_save(const char *file, const struct arc_state *s, struct qvm_error *err)
{
    char *text = xasprintf("{\"admin\": %" PRIu64 ", \"default_max\": %" PRIu64
                           ", \"set\": %" PRIu64 ", \"prev\": %" PRIu64 "}\n",
                           s->admin, s->default_max, s->set, s->prev);
    int r = qvm_write_file_atomic(file, text, strlen(text), 0644, err);
    free(text);
    return r;
}

int qvm_arc_status(const char *root, const char *state_file, struct qvm_arc_status *ret,
                   struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    char *param = qvm_arc_param_path(root);
    int r = 0;
    if (!qvm_path_exists(param))
        goto out;
    ret->present = true;
    r = read_param(param, &ret->current, err);
    if (r < 0)
        goto out;
    read_arcstats(root, &ret->arc_min, &ret->arc_c_max);
    struct arc_state s;
    r = state_load(state_file, &s, err);
    if (r < 0)
        goto out;
    ret->managed = r == 1;
    /* Someone set it since qvm did: that is the administrator's value now. */
    ret->admin = ret->managed && (ret->current == s.set || ret->current == s.prev) ? s.admin
               : ret->current;
    r = 0;
out:
    free(param);
    return r;
}

int qvm_arc_apply(const char *root, const char *state_file, const struct qvm_arc_input *in,
                  size_t nvms, struct qvm_arc_status *ret, struct qvm_error *err)
{
    struct qvm_arc_status st;
    int r = qvm_arc_status(root, state_file, &st, err);
    if (r < 0 || !st.present) {
        if (ret)
            *ret = st;
        return r;
    }
    char *param = qvm_arc_param_path(root);
    struct arc_state s;
    r = state_load(state_file, &s, err);
    if (r < 0)
        goto out;
    bool had_state = r == 1;
    if (!had_state)
        s.default_max = st.arc_c_max;
    s.admin = st.admin;
    r = 0;
    if (nvms == 0) {
        if (!had_state)
            goto out;          /* qvm never changed it: nothing to restore */
        /* Writing 0 does not bring back ZFS's default limit (OpenZFS
         * ignores a 0 there), so the limit that was in effect goes first. */
        if (s.admin == 0 && s.default_max >= QVM_ARC_MIN_MAX && s.default_max != st.current)
            r = write_param(param, s.default_max, err);
        if (r == 0 && (s.admin != st.current || s.admin == 0))
            r = write_param(param, s.admin, err);
        if (r == 0 && unlink(state_file) < 0 && errno != ENOENT)
            r = qvm_err_errno(err, errno, "cannot remove %s", state_file);
        if (r == 0) {
            st.current = s.admin;
            st.managed = false;
        }
        goto out;
    }
    struct qvm_arc_input x = *in;
    x.admin = s.admin;
    x.arc_min = st.arc_min;
    uint64_t t = qvm_arc_target(&x);
    s.prev = st.current;
    s.set = t;
    r = state_save(state_file, &s, err);
    if (r == 0 && t != st.current)
        r = write_param(param, t, err);
    if (r == 0) {
        st.current = t;
        st.managed = true;
    }
out:
    free(param);
    if (ret)
        *ret = st;
    return r;
}
