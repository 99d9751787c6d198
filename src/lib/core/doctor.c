#include "doctor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/journal.h"
#include "core/pools.h"
#include "core/vm.h"
#include "core/process.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"

struct findings {
    struct qvm_finding *v;
    size_t n;
};

static void add(struct findings *f, const char *kind, bool fixed, char *what)
{
    f->v = xrealloc(f->v, (f->n + 1) * sizeof *f->v);
    f->v[f->n++] = (struct qvm_finding){ .kind = xstrdup(kind), .what = what, .fixed = fixed };
}

static bool vm_busy(struct qvm_ctx *ctx, const char *name)
{
    int fd = qvm_lock_object(ctx->paths.lock_dir, "vm", name, false, NULL);
    if (fd < 0)
        return true;
    qvm_unlock(fd);
    return false;
}

static bool bundle_exists(struct qvm_ctx *ctx, const char *vm)
{
    struct qvm_vm v;
    if (qvm_vm_load(ctx, vm, &v, NULL) < 0)
        return false;
    qvm_vm_release(&v);
    return true;
}

static void check_pool(struct qvm_ctx *ctx, const struct qvm_pool *pool, bool repair,
                       struct findings *f)
{
    char *vms = xasprintf("%s/vms", pool->path);
    DIR *d = opendir(vms);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char *path = xasprintf("%s/%s", vms, de->d_name);
        if (qvm_name_valid(de->d_name) && !bundle_exists(ctx, de->d_name) &&
            !vm_busy(ctx, de->d_name)) {
            /* A removed VM whose space was not freed yet (qvm rm detaches
             * vm.json first), or disks left by hand. */
            bool fixed = repair && pool->driver->vm_destroy(pool, de->d_name, NULL) == 0;
            add(f, "orphan-bundle", fixed,
                xasprintf("%s holds disks but no VM definition (vm.json)", path));
        }
        free(path);
    }
    if (d)
        closedir(d);
    free(vms);

    char *images = xasprintf("%s/images", pool->path);
    d = opendir(images);
    while (d && (de = readdir(d))) {
        if (!qvm_name_valid(de->d_name))
            continue;
        char *idir = xasprintf("%s/%s", images, de->d_name);
        DIR *id = opendir(idir);
        struct dirent *ie;
        while (id && (ie = readdir(id))) {
            size_t n = strlen(ie->d_name);
            if (n > 5 && strcmp(ie->d_name + n - 5, ".part") == 0) {
                char *p = xasprintf("%s/%s", idir, ie->d_name);
                bool fixed = repair && unlink(p) == 0;
                add(f, "partial", fixed, xasprintf("partial image copy %s", p));
                free(p);
            }
        }
        if (id)
            closedir(id);
        char *meta = xasprintf("%s/image.json", idir);
        int lock = qvm_lock_object(ctx->paths.lock_dir, "image", de->d_name, false, NULL);
        if (lock >= 0 && !qvm_path_exists(meta)) {
            bool fixed = repair && pool->driver->image_destroy(pool, de->d_name, NULL) == 0;
            add(f, "orphan-image", fixed, xasprintf("%s holds image data but no image.json", idir));
        }
        qvm_unlock(lock);
        free(meta);
        free(idir);
    }
    if (d)
        closedir(d);
    free(images);
}

static void check_runtime(struct qvm_ctx *ctx, bool repair, struct findings *f)
{
    char *vms = xasprintf("%s/vms", ctx->paths.run_dir);
    DIR *d = opendir(vms);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!qvm_name_valid(de->d_name) || vm_busy(ctx, de->d_name))
            continue;
        char *dir = xasprintf("%s/%s", vms, de->d_name);
        char *pidfile = xasprintf("%s/qemu.pid", dir);
        pid_t pid = qvm_qemu_pid(pidfile);
        if (!bundle_exists(ctx, de->d_name)) {
            bool fixed = repair;
            if (repair && pid > 0)
                fixed = qvm_process_kill_wait(pid, 5000);
            if (fixed)
                fixed = qvm_rm_rf(dir, NULL) == 0;
            if (pid > 0)
                add(f, "orphan-qemu", fixed,
                    xasprintf("QEMU process %d runs for VM '%s', which does not exist",
                              (int)pid, de->d_name));
            else
                add(f, "orphan-runtime", fixed,
                    xasprintf("runtime directory %s belongs to no VM", dir));
        } else if (pid <= 0 && qvm_path_exists(pidfile)) {
            bool fixed = repair && unlink(pidfile) == 0;
            add(f, "stale-runtime", fixed,
                xasprintf("stale pid file %s (QEMU of VM '%s' is not running)", pidfile,
                          de->d_name));
        }
        free(pidfile);
        free(dir);
    }
    if (d)
        closedir(d);
    free(vms);
}

int qvm_doctor(struct qvm_ctx *ctx, bool repair, struct qvm_finding **ret, size_t *ret_n,
               struct qvm_error *err)
{
    struct findings f = { 0 };
    if (repair)
        qvm_journal_recover(ctx, NULL);
    char **stale;
    size_t nstale;
    int r = qvm_journal_list_stale(ctx, &stale, &nstale, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < nstale; i++) {
        add(&f, "journal", false,
            xasprintf("interrupted operation %s could not be rolled back completely", stale[i]));
        free(stale[i]);
    }
    free(stale);
    struct qvm_pool *pools;
    size_t npools;
    if (qvm_pools_all(ctx, &pools, &npools, NULL) == 0) {
        for (size_t i = 0; i < npools; i++)
            check_pool(ctx, &pools[i], repair, &f);
        qvm_pools_free(pools, npools);
    }
    check_runtime(ctx, repair, &f);
    *ret = f.v;
    *ret_n = f.n;
    return 0;
}

void qvm_findings_free(struct qvm_finding *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].kind);
        free(v[i].what);
    }
    free(v);
}
