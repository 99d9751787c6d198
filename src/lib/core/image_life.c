/* image_life.c - the life of image versions (seed 001): states, removal,
 * and never stranding data (seed 004): a version or image that VMs use is
 * not removed; a retired one gives its space back when its last VM goes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/image.h"
#include "core/journal.h"
#include "core/pools.h"
#include "core/vm.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/uuid.h"

int qvm_image_dependents(struct qvm_ctx *ctx, const char *pool, const char *image,
                         const char *version, char ***ret, size_t *ret_n, struct qvm_error *err)
{
    char **names;
    size_t n;
    *ret = NULL;
    *ret_n = 0;
    int r = qvm_vm_list_names(ctx, &names, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        struct qvm_vm vm;
        bool uses = false;
        if (qvm_vm_load(ctx, names[i], &vm, NULL) == 0) {
            uses = vm.image && !strcmp(vm.image, image) && !strcmp(vm.pool, pool) &&
                   (!version || (vm.version && !strcmp(vm.version, version)));
            qvm_vm_release(&vm);
        }
        if (uses) {
            *ret = xrealloc(*ret, (*ret_n + 1) * sizeof(char *));
            (*ret)[(*ret_n)++] = names[i];
        } else {
            free(names[i]);
        }
    }
    free(names);
    return 0;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static char *join_names(char **names, size_t n)
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < n && i < 20; i++)
        strbuf_addf(&sb, "%s%s", i ? ", " : "", names[i]);
    if (n > 20)
        strbuf_addf(&sb, " and %zu more", n - 20);
    return strbuf_detach(&sb, NULL);
}

/* The image named by REF, with its pool open and the image locked. */
struct held_image {
    struct qvm_pool pool;
    struct qvm_image img;
    struct qvm_image_version *ver;   /* NULL when REF names no version */
    int lock;
};

static int hold_image(struct qvm_ctx *ctx, const char *pool_name, const char *ref,
                      struct held_image *h, struct qvm_error *err)
{
    char name[QVM_NAME_MAX + 1], version[QVM_NAME_MAX + 1];
    memset(h, 0, sizeof *h);
    h->lock = -1;
    int r = qvm_image_ref_parse(ref, name, version, err);
    if (r < 0)
        return r;
    h->lock = qvm_lock_object(ctx->paths.lock_dir, "image", name, false, err);
    if (h->lock < 0)
        return h->lock;
    r = qvm_image_load(ctx, pool_name, name, &h->img, err);
    if (r == 0)
        r = qvm_pool_get(ctx, h->img.pool, &h->pool, err);
    if (r == 0 && version[0]) {
        for (size_t i = 0; i < h->img.nversions; i++)
            if (!strcmp(h->img.versions[i].name, version) && !h->img.versions[i].removed)
                h->ver = &h->img.versions[i];
        if (!h->ver)
            r = qvm_err(err, ENOENT, "image '%s' has no version %s", name, version);
    }
    return r;
}

static void release_image(struct held_image *h)
{
    qvm_image_release(&h->img);
    qvm_pool_release(&h->pool);
    qvm_unlock(h->lock);
}

/* Which state may follow which: retired is final. */
static bool transition_ok(const char *from, const char *to)
{
    if (!strcmp(from, "retired"))
        return false;
    if (!strcmp(to, "retired"))
        return true;
    if (!strcmp(to, "published"))
        return !strcmp(from, "draft") || !strcmp(from, "unpublished") || !strcmp(from, "deprecated");
    if (!strcmp(to, "unpublished"))
        return !strcmp(from, "draft") || !strcmp(from, "published");
    if (!strcmp(to, "deprecated"))
        return !strcmp(from, "published") || !strcmp(from, "unpublished");
    return false;
}

/* Frees one retired version's data if no VM uses it. Image held. */
static int reap_version(struct qvm_ctx *ctx, struct held_image *h, struct qvm_image_version *v,
                        struct qvm_error *err)
{
    char **deps;
    size_t n;
    int r = qvm_image_dependents(ctx, h->pool.name, h->img.name, v->name, &deps, &n, err);
    if (r < 0 || n) {
        free_names(deps, n);
        return r;
    }
    if (!h->pool.driver->version_destroy)
        return 0;       /* kept with the image; freed when the image goes */
    /* Mark first, then free: a crash in between leaves data without a
     * version entry, which doctor reports; never an entry without data. */
    v->removed = true;
    r = qvm_image_save(&h->pool, &h->img, err);
    if (r == 0 && h->pool.driver->version_destroy(&h->pool, h->img.name, v->name, err) < 0) {
        r = -err->code;
        v->removed = false;             /* the data is still there */
        qvm_image_save(&h->pool, &h->img, NULL);
    }
    if (r == 0)
        qvm_say(ctx->ui, "Retired version %s@%s had no VMs left: its space is freed", h->img.name,
                v->name);
    return r;
}

int qvm_image_set_state(struct qvm_ctx *ctx, const char *pool, const char *ref,
                        const char *state, struct qvm_error *err)
{
    static const char *const states[] = { "published", "unpublished", "deprecated", "retired" };
    bool known = false;
    for (size_t i = 0; i < 4; i++)
        known |= !strcmp(states[i], state);
    if (!known)
        return qvm_err(err, EINVAL, "unknown version state '%s'", state);
    if (!strchr(ref, '@'))
        return qvm_err(err, EINVAL, "name a version: %s@vN", ref);
    struct held_image h;
    int r = hold_image(ctx, pool, ref, &h, err);
    if (r == 0 && !strcmp(h.ver->state, state)) {
        qvm_say(ctx->ui, "%s@%s is already %s", h.img.name, h.ver->name, state);
    } else if (r == 0) {
        if (!transition_ok(h.ver->state, state)) {
            r = qvm_err(err, EINVAL, "%s@%s is %s and cannot become %s", h.img.name, h.ver->name,
                        h.ver->state, state);
        } else {
            free(h.ver->state);
            h.ver->state = xstrdup(state);
            r = qvm_image_save(&h.pool, &h.img, err);
            if (r == 0)
                qvm_say(ctx->ui, "%s@%s is now %s", h.img.name, h.ver->name, state);
            if (r == 0 && !strcmp(state, "retired"))
                r = reap_version(ctx, &h, h.ver, err);
        }
    }
    release_image(&h);
    return r;
}

int qvm_image_remove(struct qvm_ctx *ctx, const char *pool, const char *ref,
                     struct qvm_error *err)
{
    struct held_image h;
    int r = hold_image(ctx, pool, ref, &h, err);
    if (r < 0) {
        release_image(&h);
        return r;
    }
    char **deps;
    size_t n;
    r = qvm_image_dependents(ctx, h.pool.name, h.img.name, h.ver ? h.ver->name : NULL, &deps, &n,
                             err);
    if (r == 0 && n) {
        char *list = join_names(deps, n);
        r = qvm_err(err, EBUSY, "%s%s%s is used by VM%s %s; remove %s first (or retire the "
                    "version: its space comes back when the last VM goes)", h.img.name,
                    h.ver ? "@" : "", h.ver ? h.ver->name : "", n == 1 ? "" : "s", list,
                    n == 1 ? "it" : "them");
        free(list);
    }
    free_names(deps, n);
    if (r == 0 && h.ver) {
        if (!h.pool.driver->version_destroy) {
            r = qvm_err(err, ENOTSUP, "pool '%s' (%s) removes versions only with their image",
                        h.pool.name, h.pool.driver->name);
        } else {
            char *old_state = h.ver->state;
            h.ver->removed = true;
            h.ver->state = xstrdup("retired");
            r = qvm_image_save(&h.pool, &h.img, err);
            if (r == 0 && h.pool.driver->version_destroy(&h.pool, h.img.name, h.ver->name, err) < 0) {
                /* The driver refused (a clone outside qvm): the version stays,
                 * and so must its entry. */
                r = -err->code;
                free(h.ver->state);
                h.ver->state = old_state;
                old_state = NULL;
                h.ver->removed = false;
                qvm_image_save(&h.pool, &h.img, NULL);
            }
            free(old_state);
            if (r == 0)
                qvm_say(ctx->ui, "Version %s@%s removed", h.img.name, h.ver->name);
        }
    } else if (r == 0) {
        /* Detach the definition first (the image is gone for every other
         * command), then free the data; doctor --repair finishes a crash. */
        char *dir = h.pool.driver->image_dir(&h.pool, h.img.name);
        char *json = xasprintf("%s/image.json", dir);
        char *gone = xasprintf("%s/image.json.removed", dir);
        if (rename(json, gone) < 0)
            r = qvm_err_errno(err, errno, "cannot remove image '%s': rename of %s failed",
                              h.img.name, json);
        if (r == 0) {
            r = h.pool.driver->image_destroy(&h.pool, h.img.name, err);
            if (r < 0 && rename(gone, json) == 0)
                qvm_err_wrap(err, "image '%s' was kept", h.img.name);
        }
        if (r == 0)
            qvm_say(ctx->ui, "Image '%s' and its versions removed", h.img.name);
        free(json);
        free(gone);
        free(dir);
    }
    release_image(&h);
    return r;
}

void qvm_image_reap_retired(struct qvm_ctx *ctx, const char *pool, const char *image)
{
    struct held_image h;
    struct qvm_error e = { 0 };
    if (hold_image(ctx, pool, image, &h, &e) == 0) {
        for (size_t i = 0; i < h.img.nversions; i++) {
            struct qvm_image_version *v = &h.img.versions[i];
            if (!strcmp(v->state, "retired") && !v->removed && reap_version(ctx, &h, v, &e) < 0)
                qvm_warn(ctx->ui, "could not free retired version %s@%s: %s", image, v->name, e.msg);
        }
    }
    release_image(&h);
}

int qvm_image_commit(struct qvm_ctx *ctx, const char *image, const char *vm_name,
                     struct qvm_error *err)
{
    int vm_lock = qvm_name_check("VM", vm_name, err);
    if (vm_lock < 0)
        return vm_lock;
    vm_lock = qvm_lock_object(ctx->paths.lock_dir, "vm", vm_name, false, err);
    if (vm_lock < 0)
        return vm_lock;
    struct qvm_vm vm;
    struct held_image h;
    struct qvm_journal *j = NULL;
    int r = qvm_vm_load(ctx, vm_name, &vm, err);
    if (r < 0) {
        qvm_unlock(vm_lock);
        return r;
    }
    r = hold_image(ctx, vm.pool, image, &h, err);
    if (r < 0)
        goto out;
    if ((r = qvm_vm_single_disk(&vm, "image commits", err)) < 0)
        goto out;
    if (qvm_vm_pid(&vm) > 0) {
        r = qvm_err(err, EBUSY, "VM '%s' is running; stop it first (qvm stop %s) so its disk "
                    "is consistent", vm_name, vm_name);
        goto out;
    }
    if (!h.pool.driver->version_from_disk) {
        r = qvm_err(err, ENOTSUP, "pool '%s' (%s) cannot make versions from VM disks",
                    h.pool.name, h.pool.driver->name);
        goto out;
    }
    unsigned next = 1;
    for (size_t i = 0; i < h.img.nversions; i++) {
        unsigned n = (unsigned)strtoul(h.img.versions[i].name + 1, NULL, 10);
        if (n >= next)
            next = n + 1;
    }
    char version[16];
    snprintf(version, sizeof version, "v%u", next);
    qvm_say(ctx->ui, "Making %s@%s from the disk of VM '%s'", h.img.name, version, vm_name);
    r = qvm_journal_begin(ctx, "image commit", "image", h.img.name, &j, err);
    if (r == 0)
        r = qvm_journal_undo_version_destroy(j, h.pool.name, h.img.name, version, err);
    if (r == 0)
        r = h.pool.driver->version_from_disk(&h.pool, h.img.name, version, vm_name, vm.disk_name,
                                             ctx->ui, err);
    if (r == 0)
        r = qvm_fault_point("version-written", err);
    if (r == 0) {
        h.img.versions = xrealloc(h.img.versions, (h.img.nversions + 1) * sizeof *h.img.versions);
        struct qvm_image_version *v = &h.img.versions[h.img.nversions++];
        memset(v, 0, sizeof *v);
        v->name = xstrdup(version);
        v->uuid = qvm_uuid_new();
        v->created = (long long)time(NULL);
        v->parent = vm.image && !strcmp(vm.image, h.img.name) && vm.version ? xstrdup(vm.version)
                                                                          : NULL;
        v->size = vm.disk_size;
        v->state = xstrdup("unpublished");
        r = qvm_image_save(&h.pool, &h.img, err);
    }
    if (r == 0)
        r = qvm_fault_point("metadata-written", err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    if (r == 0)
        qvm_say(ctx->ui, "%s@%s is ready (unpublished); publish it with: qvm image publish %s@%s",
                h.img.name, version, h.img.name, version);
out:
    if (j) {
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    release_image(&h);
    qvm_vm_release(&vm);
    qvm_unlock(vm_lock);
    return r;
}
