/* bundle_scan.c - `qvm scan`: the bundles already in the pools.
 *
 * qvm keeps no registry apart from the bundles: a VM is known to this host
 * when a configured pool's vms/NAME holds its vm.json (core/vm.c finds VMs
 * by walking the pools). So a bundle that arrives by other means (a zfs
 * dataset replicated in, a btrfs subvolume received, a directory moved) is
 * seen at once, but its vm.json still describes the host it came from.
 * Registering it means making vm.json true here: the pool it is in, the
 * format its disk has in this pool; the runtime paths (sockets, pid file)
 * are derived from the name on every load, never stored. Bundles whose
 * name or uuid is also in another pool are ambiguous: reported, and neither
 * is touched. */
#include "bundle.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/pools.h"
#include "core/vm.h"
#include "storage/storage.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

struct found {
    size_t pool;              /* index into the pools */
    char *name;
    json_object *json;        /* NULL: unreadable */
    char *problem;
    bool duplicate;
};

static const char *jstr(json_object *o, const char *k)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static void add_entry(struct qvm_scan_entry **v, size_t *n, const char *pool, const char *name,
                      const char *uuid, const char *status, char *detail)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    struct qvm_scan_entry *e = &(*v)[(*n)++];
    e->pool = xstrdup(pool);
    e->name = xstrdup(name);
    e->uuid = uuid ? xstrdup(uuid) : NULL;
    e->status = status;
    e->detail = detail;
}

/* The missing backing file of a qcow2 disk, or NULL. */
static char *missing_backing(const char *path)
{
    const char *argv[] = { "qemu-img", "info", "--output=json", "-U", "-f", "qcow2", path, NULL };
    struct qvm_run_opts opts = { .timeout_ms = 60000 };
    struct qvm_run_result res;
    if (qvm_run(argv, &opts, &res, NULL) < 0) {
        qvm_run_result_release(&res);
        return NULL;
    }
    json_object *root = json_tokener_parse(res.out);
    qvm_run_result_release(&res);
    const char *b = jstr(root, "full-backing-filename");
    if (!b)
        b = jstr(root, "backing-filename");
    char *missing = NULL;
    if (b) {
        char *dir = xstrdup(path), *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        char *full = b[0] == '/' ? xstrdup(b) : xasprintf("%s/%s", dir, b);
        if (!qvm_path_exists(full))
            missing = full;
        else
            free(full);
        free(dir);
    }
    json_object_put(root);
    return missing;
}

/* Checks one bundle in POOL; fills *RET_FIX with the corrected vm.json when
 * something must change, or returns a problem (caller frees). */
static char *check_bundle(const struct qvm_pool *pool, struct found *f, json_object **ret_fix,
                          struct strbuf *what)
{
    json_object *o = f->json, *disk = NULL;
    const char *name = jstr(o, "name"), *uuid = jstr(o, "uuid"), *vpool = jstr(o, "pool");
    *ret_fix = NULL;
    if (!o)
        return xstrdup("its vm.json is unreadable or not JSON");
    if (!name || strcmp(name, f->name))
        return xasprintf("its vm.json names VM '%s', but its directory is '%s': rename the "
                         "directory back, or make a copy under a new name (qvm export, "
                         "qvm import --name)", name ? name : "", f->name);
    if (!uuid || strlen(uuid) != 36)
        return xstrdup("its vm.json has no uuid");
    json_object_object_get_ex(o, "disk", &disk);
    const char *dname = jstr(disk, "name"), *dformat = jstr(disk, "format");
    if (!dname || !qvm_name_valid(dname) || !dformat)
        return xstrdup("its vm.json names no valid disk");
    struct qvm_disk_info loc;
    if (pool->driver->disk_locate(pool, f->name, dname, &loc, NULL) < 0)
        return xasprintf("pool '%s' cannot locate its disk %s", pool->name, dname);
    char *problem = NULL;
    const char *format = loc.format;
    if (!qvm_path_exists(loc.path)) {
        problem = xasprintf("its disk %s is missing", loc.path);
    } else if (!loc.is_block && qvm_image_file_format(loc.path, &format, NULL) < 0) {
        problem = xasprintf("its disk %s is neither raw nor qcow2", loc.path);
    } else if (!strcmp(format, "qcow2")) {
        char *b = missing_backing(loc.path);
        if (b)
            problem = xasprintf("its disk %s is an overlay of %s, which this host does not "
                                "have", loc.path, b);
        free(b);
    }
    char *dir = pool->driver->vm_dir(pool, f->name);
    char *seed = xasprintf("%s/seed.iso", dir);
    if (!problem && !qvm_path_exists(seed))
        problem = xasprintf("its seed %s is missing", seed);
    free(seed);
    free(dir);
    if (!problem && (!vpool || strcmp(vpool, pool->name) || strcmp(dformat, format))) {
        json_object_deep_copy(o, ret_fix, NULL);
        json_object *d2 = NULL;
        json_object_object_get_ex(*ret_fix, "disk", &d2);
        if (!vpool || strcmp(vpool, pool->name)) {
            strbuf_addf(what, "pool '%s' -> '%s'", vpool ? vpool : "", pool->name);
            json_object_object_add(*ret_fix, "pool", json_object_new_string(pool->name));
        }
        if (strcmp(dformat, format)) {
            strbuf_addf(what, "%sdisk format %s -> %s", what->len ? "; " : "", dformat, format);
            json_object_object_add(d2, "format", json_object_new_string(format));
        }
    }
    qvm_disk_info_release(&loc);
    return problem;
}

static int write_fix(struct qvm_ctx *ctx, const struct qvm_pool *pool, const char *name,
                     json_object *fix, struct qvm_error *err)
{
    int lock = qvm_lock_object(ctx->paths.lock_dir, "vm", name, false, err);
    if (lock < 0)
        return lock;
    char *dir = pool->driver->vm_dir(pool, name);
    char *path = xasprintf("%s/vm.json", dir);
    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, json_object_to_json_string_ext(fix, JSON_C_TO_STRING_PRETTY |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
    strbuf_addch(&sb, '\n');
    int r = qvm_write_file_atomic(path, sb.buf, sb.len, 0644, err);
    strbuf_release(&sb);
    free(path);
    free(dir);
    /* Loading it derives the runtime paths: a name too long for a socket
     * path under this host's runtime directory shows here. */
    struct qvm_vm vm;
    if (r == 0 && (r = qvm_vm_load(ctx, name, &vm, err)) == 0)
        qvm_vm_release(&vm);
    qvm_unlock(lock);
    return r;
}

int qvm_scan(struct qvm_ctx *ctx, const char *pool_name, struct qvm_scan_entry **ret,
             size_t *ret_n, struct qvm_error *err)
{
    *ret = NULL;
    *ret_n = 0;
    struct qvm_pool *pools, only = { 0 };
    size_t npools;
    int r = qvm_pools_all(ctx, &pools, &npools, err);
    if (r < 0)
        return r;
    if (pool_name && (r = qvm_pool_get(ctx, pool_name, &only, err)) < 0) {
        qvm_pools_free(pools, npools);
        return r;
    }
    /* Every bundle of every pool: duplicates are judged host-wide. */
    struct found *fs = NULL;
    size_t nf = 0;
    for (size_t p = 0; p < npools; p++) {
        char *vms = xasprintf("%s/vms", pools[p].path);
        DIR *d = opendir(vms);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (!qvm_name_valid(de->d_name))
                continue;
            char *json = xasprintf("%s/%s/vm.json", vms, de->d_name);
            if (qvm_path_exists(json)) {
                fs = xrealloc(fs, (nf + 1) * sizeof *fs);
                struct found *f = &fs[nf++];
                memset(f, 0, sizeof *f);
                f->pool = p;
                f->name = xstrdup(de->d_name);
                char *text = NULL;
                size_t len;
                if (qvm_read_file(json, QVM_VM_JSON_MAX, &text, &len, NULL) == 0)
                    f->json = json_tokener_parse(text);
                free(text);
            }
            free(json);
        }
        if (d)
            closedir(d);
        free(vms);
    }
    for (size_t i = 0; i < nf; i++) {
        for (size_t k = 0; k < nf; k++) {
            if (k == i)
                continue;
            const char *ui = jstr(fs[i].json, "uuid"), *uk = jstr(fs[k].json, "uuid");
            if (!strcmp(fs[i].name, fs[k].name)) {
                fs[i].duplicate = true;
                fs[i].problem = xasprintf("VM '%s' is in pools '%s' and '%s': neither is "
                                          "touched; remove or rename one", fs[i].name,
                                          pools[fs[i].pool].name, pools[fs[k].pool].name);
                break;
            }
            if (ui && uk && !strcmp(ui, uk)) {
                fs[i].duplicate = true;
                fs[i].problem = xasprintf("it is the same VM (uuid %s) as '%s' in pool '%s': "
                                          "neither is touched; remove one, or make a copy "
                                          "with qvm export and qvm import --name", ui,
                                          fs[k].name, pools[fs[k].pool].name);
                break;
            }
        }
    }
    for (size_t i = 0; i < nf; i++) {
        const struct qvm_pool *pool = &pools[fs[i].pool];
        if (pool_name && strcmp(pool->name, only.name))
            continue;
        const char *uuid = jstr(fs[i].json, "uuid");
        if (fs[i].duplicate) {
            add_entry(ret, ret_n, pool->name, fs[i].name, uuid, "duplicate", fs[i].problem);
            fs[i].problem = NULL;
            continue;
        }
        json_object *fix = NULL;
        struct strbuf what = STRBUF_INIT;
        char *problem = check_bundle(pool, &fs[i], &fix, &what);
        if (problem) {
            add_entry(ret, ret_n, pool->name, fs[i].name, uuid, "invalid", problem);
        } else if (fix) {
            struct qvm_error e = { 0 };
            if (write_fix(ctx, pool, fs[i].name, fix, &e) < 0)
                add_entry(ret, ret_n, pool->name, fs[i].name, uuid, "invalid",
                          xasprintf("could not register it: %s", e.msg));
            else
                add_entry(ret, ret_n, pool->name, fs[i].name, uuid, "registered",
                          strbuf_detach(&what, NULL));
        } else {
            add_entry(ret, ret_n, pool->name, fs[i].name, uuid, "ok", NULL);
        }
        strbuf_release(&what);
        json_object_put(fix);
    }
    for (size_t i = 0; i < nf; i++) {
        free(fs[i].name);
        free(fs[i].problem);
        json_object_put(fs[i].json);
    }
    free(fs);
    qvm_pool_release(&only);
    qvm_pools_free(pools, npools);
    return 0;
}

void qvm_scan_free(struct qvm_scan_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].pool);
        free(e[i].name);
        free(e[i].uuid);
        free(e[i].detail);
    }
    free(e);
}
