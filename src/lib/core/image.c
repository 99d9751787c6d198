#include "image.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>

#include "core/journal.h"
#include "core/pools.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/uuid.h"

int qvm_image_save(const struct qvm_pool *pool, const struct qvm_image *img,
                      struct qvm_error *err)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "format", json_object_new_int(1));
    json_object_object_add(o, "name", json_object_new_string(img->name));
    if (img->source)
        json_object_object_add(o, "source", json_object_new_string(img->source));
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < img->nversions; i++) {
        const struct qvm_image_version *v = &img->versions[i];
        json_object *jv = json_object_new_object();
        json_object_object_add(jv, "name", json_object_new_string(v->name));
        json_object_object_add(jv, "uuid", json_object_new_string(v->uuid));
        json_object_object_add(jv, "created", json_object_new_int64(v->created));
        json_object_object_add(jv, "parent", v->parent ? json_object_new_string(v->parent) : NULL);
        json_object_object_add(jv, "size", json_object_new_int64((int64_t)v->size));
        json_object_object_add(jv, "state", json_object_new_string(v->state));
        if (v->removed)
            json_object_object_add(jv, "removed", json_object_new_boolean(1));
        json_object_array_add(arr, jv);
    }
    json_object_object_add(o, "versions", arr);
    char *dir = pool->driver->image_dir(pool, img->name);
    char *path = xasprintf("%s/image.json", dir);
    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
    strbuf_addch(&sb, '\n');
    int r = qvm_write_file_atomic(path, sb.buf, sb.len, 0644, err);
    strbuf_release(&sb);
    free(path);
    free(dir);
    json_object_put(o);
    return r;
}

void qvm_image_release(struct qvm_image *img)
{
    if (!img)
        return;
    for (size_t i = 0; i < img->nversions; i++) {
        free(img->versions[i].name);
        free(img->versions[i].uuid);
        free(img->versions[i].parent);
        free(img->versions[i].state);
    }
    free(img->versions);
    free(img->name);
    free(img->pool);
    free(img->source);
    memset(img, 0, sizeof *img);
}

static char *jstr(json_object *o, const char *k)
{
    json_object *v;
    if (json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string))
        return xstrdup(json_object_get_string(v));
    return NULL;
}

int qvm_image_load_from(const struct qvm_pool *pool, const char *name, struct qvm_image *ret,
                           struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    char *dir = pool->driver->image_dir(pool, name);
    char *path = xasprintf("%s/image.json", dir);
    free(dir);
    char *text = NULL;
    size_t len;
    int r = qvm_read_file(path, QVM_IMAGE_JSON_MAX, &text, &len, err);
    if (r < 0) {
        free(path);
        return r == -ENOENT ? qvm_err(err, ENOENT, "no image named '%s'", name) : r;
    }
    json_object *o = json_tokener_parse(text);
    free(text);
    json_object *arr = NULL;
    if (!o || !json_object_object_get_ex(o, "versions", &arr) ||
        !json_object_is_type(arr, json_type_array)) {
        json_object_put(o);
        r = qvm_err(err, EINVAL, "%s is damaged: no version list", path);
        free(path);
        return r;
    }
    free(path);
    ret->name = xstrdup(name);
    ret->pool = xstrdup(pool->name);
    ret->source = jstr(o, "source");
    size_t n = json_object_array_length(arr);
    ret->versions = xcalloc(n ? n : 1, sizeof *ret->versions);
    for (size_t i = 0; i < n; i++) {
        json_object *jv = json_object_array_get_idx(arr, i);
        struct qvm_image_version *v = &ret->versions[ret->nversions];
        v->name = jstr(jv, "name");
        v->uuid = jstr(jv, "uuid");
        v->parent = jstr(jv, "parent");
        v->state = jstr(jv, "state");
        json_object *x;
        v->created = json_object_object_get_ex(jv, "created", &x) ? json_object_get_int64(x) : 0;
        v->size = json_object_object_get_ex(jv, "size", &x) ? (uint64_t)json_object_get_int64(x) : 0;
        v->removed = json_object_object_get_ex(jv, "removed", &x) && json_object_get_boolean(x);
        if (!v->name || !v->uuid || !v->state) {
            free(v->name);
            free(v->uuid);
            free(v->parent);
            free(v->state);
            memset(v, 0, sizeof *v);
            continue;
        }
        ret->nversions++;
    }
    json_object_put(o);
    return 0;
}

int qvm_image_load(struct qvm_ctx *ctx, const char *pool_name, const char *name,
                   struct qvm_image *ret, struct qvm_error *err)
{
    int r = qvm_name_check("image", name, err);
    if (r < 0)
        return r;
    if (pool_name) {
        struct qvm_pool pool;
        r = qvm_pool_get(ctx, pool_name, &pool, err);
        if (r < 0)
            return r;
        r = qvm_image_load_from(&pool, name, ret, err);
        qvm_pool_release(&pool);
        return r;
    }
    /* No pool named: the default pool first, then the others. */
    struct qvm_pool *pools;
    size_t n;
    r = qvm_pools_all(ctx, &pools, &n, err);
    if (r < 0)
        return r;
    r = qvm_err(err, ENOENT, "no image named '%s'", name);
    for (size_t i = 0; i < n; i++) {
        struct qvm_error e2 = { 0 };
        if (qvm_image_load_from(&pools[i], name, ret, &e2) == 0) {
            qvm_err_clear(err);
            r = 0;
            break;
        }
    }
    qvm_pools_free(pools, n);
    return r;
}

int qvm_image_resolve(struct qvm_ctx *ctx, const char *pool, const char *ref,
                      struct qvm_image *ret_image, const struct qvm_image_version **ret_version,
                      struct qvm_error *err)
{
    return qvm_image_resolve_for(ctx, pool, ref, false, ret_image, ret_version, err);
}

int qvm_image_resolve_for(struct qvm_ctx *ctx, const char *pool, const char *ref, bool editing,
                          struct qvm_image *ret_image,
                          const struct qvm_image_version **ret_version, struct qvm_error *err)
{
    char name[QVM_NAME_MAX + 1], version[QVM_NAME_MAX + 1];
    int r = qvm_image_ref_parse(ref, name, version, err);
    if (r < 0)
        return r;
    r = qvm_image_load(ctx, pool, name, ret_image, err);
    if (r < 0)
        return r;
    const struct qvm_image_version *found = NULL;
    for (size_t i = 0; i < ret_image->nversions; i++) {
        const struct qvm_image_version *v = &ret_image->versions[i];
        if (version[0] ? strcmp(v->name, version) == 0 : strcmp(v->state, "published") == 0)
            found = v;      /* the last match is the newest */
    }
    if (!found || (found->removed && version[0])) {
        r = version[0] ? qvm_err(err, ENOENT, "image '%s' has no version %s", name, version)
                       : qvm_err(err, ENOENT, "image '%s' has no published version", name);
        qvm_image_release(ret_image);
        return r;
    }
    /* Seed 001's life cycle: deprecated and retired versions take no new
     * VMs; a draft is still being administered. */
    if (found->removed || !strcmp(found->state, "retired") ||
        (!editing && (!strcmp(found->state, "deprecated") || !strcmp(found->state, "draft")))) {
        r = qvm_err(err, EPERM, "image '%s@%s' is %s: it takes no new VMs%s", name, found->name,
                    found->state, strcmp(found->state, "draft") ? " (existing ones keep running)"
                                                                : "");
        qvm_image_release(ret_image);
        return r;
    }
    *ret_version = found;
    return 0;
}

int qvm_image_import(struct qvm_ctx *ctx, const char *pool_name, const char *name,
                     const char *file, struct qvm_error *err)
{
    int r = qvm_name_check("image", name, err);
    if (r < 0)
        return r;
    struct stat st;
    if (stat(file, &st) < 0)
        return qvm_err_errno(err, errno, "image %s could not be found", file);
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return qvm_err(err, EINVAL, "image %s is not a regular file or block device", file);
    const char *format;
    r = qvm_image_file_format(file, &format, err);
    if (r < 0)
        return r;
    uint64_t size;
    bool has_backing = false;
    r = qvm_image_file_probe(file, format, &size, &has_backing, err);
    if (r < 0)
        return r;
    if (has_backing)
        return qvm_err(err, EINVAL, "image %s is a qcow2 overlay with a backing file; "
                       "flatten it first (qemu-img convert -O qcow2)", file);
    char *abs = realpath(file, NULL);
    if (!abs)
        return qvm_err_errno(err, errno, "cannot resolve path %s", file);

    struct qvm_pool pool;
    r = qvm_pool_get(ctx, pool_name, &pool, err);
    if (r < 0) {
        free(abs);
        return r;
    }
    struct qvm_journal *j = NULL;
    char *dir = pool.driver->image_dir(&pool, name);
    int lock = qvm_lock_object(ctx->paths.lock_dir, "image", name, false, err);
    if (lock < 0) {
        r = lock;
        goto out;
    }
    if (qvm_path_exists(dir)) {
        r = qvm_err(err, EEXIST, "image '%s' already exists in pool '%s'", name, pool.name);
        goto out;
    }
    qvm_say(ctx->ui, "Importing %s (%s, %.1f GiB) as image '%s' in pool '%s'", file, format,
            (double)size / (1024.0 * 1024 * 1024), name, pool.name);
    r = qvm_journal_begin(ctx, "image import", "image", name, &j, err);
    if (r < 0)
        goto out;
    r = qvm_journal_undo_image_destroy(j, pool.name, name, err);
    if (r == 0)
        r = pool.driver->image_create(&pool, name, err);
    if (r == 0)
        r = qvm_fault_point("image-created", err);
    if (r == 0) {
        qvm_say(ctx->ui, "Copying image data (sparse)");
        r = pool.driver->version_import(&pool, name, "v1", abs, format, ctx->ui, err);
    }
    if (r == 0)
        r = qvm_fault_point("version-written", err);
    if (r == 0) {
        struct qvm_image_version v = { .name = "v1", .created = time(NULL), .size = size,
                                       .state = "published" };
        v.uuid = qvm_uuid_new();
        struct qvm_image img = { .name = (char *)name, .source = abs, .versions = &v,
                                 .nversions = 1 };
        r = qvm_image_save(&pool, &img, err);
        free(v.uuid);
    }
    if (r == 0)
        r = qvm_fault_point("metadata-written", err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    if (r == 0)
        qvm_say(ctx->ui, "Image '%s' imported: version v1 (also '%s@base') is ready", name, name);
out:
    if (j) {
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    qvm_unlock(lock);
    free(dir);
    free(abs);
    qvm_pool_release(&pool);
    return r;
}

static int cmp_image(const void *a, const void *b)
{
    return strcmp(((const struct qvm_image *)a)->name, ((const struct qvm_image *)b)->name);
}

int qvm_image_list(struct qvm_ctx *ctx, struct qvm_image **ret, size_t *ret_n,
                   struct qvm_error *err)
{
    *ret = NULL;
    *ret_n = 0;
    struct qvm_pool *pools;
    size_t npools;
    int r = qvm_pools_all(ctx, &pools, &npools, err);
    if (r < 0)
        return r;
    for (size_t p = 0; p < npools; p++) {
        char *images = xasprintf("%s/images", pools[p].path);
        DIR *id = opendir(images);
        struct dirent *ie;
        while (id && (ie = readdir(id))) {
            if (!qvm_name_valid(ie->d_name))
                continue;
            struct qvm_image img;
            if (qvm_image_load_from(&pools[p], ie->d_name, &img, NULL) == 0) {
                *ret = xrealloc(*ret, (*ret_n + 1) * sizeof **ret);
                (*ret)[(*ret_n)++] = img;
            }
        }
        if (id)
            closedir(id);
        free(images);
    }
    qvm_pools_free(pools, npools);
    if (*ret_n)
        qsort(*ret, *ret_n, sizeof **ret, cmp_image);
    return 0;
}
