#include "doctor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/journal.h"
#include "core/net.h"
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

/* NAME.tmp.PID: an atomic write (util/fsutil.c) whose writer died before
 * its rename. */
static bool dead_temp(const char *name)
{
    const char *t = strstr(name, ".tmp.");
    if (!t || t == name)
        return false;
    char *end;
    long pid = strtol(t + 5, &end, 10);
    return *end == '\0' && pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static void check_temps(const char *dir, bool repair, struct findings *f)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!dead_temp(de->d_name))
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        bool fixed = repair && unlink(p) == 0;
        add(f, "leftover-temp", fixed,
            xasprintf("%s was left by an interrupted write (its process is gone)", p));
        free(p);
    }
    if (d)
        closedir(d);
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
        } else if (qvm_name_valid(de->d_name)) {
            check_temps(path, repair, f);
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
        check_temps(idir, repair, f);
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

/* Sockets QEMU made and left when it died (kill -9, a host crash). */
static void check_sockets(const char *dir, const char *vm, bool repair, struct findings *f)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".sock"))
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISSOCK(st.st_mode)) {
            bool fixed = repair && unlink(p) == 0;
            add(f, "stale-runtime", fixed,
                xasprintf("stale socket %s (QEMU of VM '%s' is not running)", p, vm));
        }
        free(p);
    }
    if (d)
        closedir(d);
}

/* A VM whose disk is gone (deleted by hand, a pool that lost data). qvm
 * cannot make it up: it says so and how to remove the VM. */
static void check_disks(struct qvm_ctx *ctx, struct findings *f)
{
    char **names;
    size_t n;
    if (qvm_vm_list_names(ctx, &names, &n, NULL) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct qvm_vm vm;
        if (!vm_busy(ctx, names[i]) && qvm_vm_load(ctx, names[i], &vm, NULL) == 0) {
            struct stat st;
            if (vm.disk_path && stat(vm.disk_path, &st) < 0 && errno == ENOENT)
                add(f, "missing-disk", false,
                    xasprintf("VM '%s' has no disk: %s is missing (remove the VM with "
                              "qvm rm %s, or put the disk back)", names[i], vm.disk_path,
                              names[i]));
            qvm_vm_release(&vm);
        }
        free(names[i]);
    }
    free(names);
}

/* The value of QEMU's -pidfile argument in /proc/PID/cmdline, if any. */
static char *cmdline_pidfile(const char *pid)
{
    char *path = xasprintf("/proc/%s/cmdline", pid), *data = NULL, *ret = NULL;
    size_t len;
    if (qvm_read_file(path, 1u << 20, &data, &len, NULL) == 0) {
        for (size_t off = 0; off < len;) {
            const char *arg = data + off;
            size_t l = strnlen(arg, len - off);
            if (!strcmp(arg, "-pidfile") && off + l + 1 < len) {
                ret = xstrdup(arg + l + 1);
                break;
            }
            off += l + 1;
        }
    }
    free(data);
    free(path);
    return ret;
}

/* QEMU processes started for this root (their -pidfile is under its run
 * directory) that no pid file names: qvm cannot stop or see them. */
static void check_processes(struct qvm_ctx *ctx, bool repair, struct findings *f)
{
    char *prefix = xasprintf("%s/vms/", ctx->paths.run_dir);
    size_t plen = strlen(prefix);
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid())
            continue;
        char *pf = cmdline_pidfile(de->d_name);
        if (!pf || strncmp(pf, prefix, plen)) {
            free(pf);
            continue;
        }
        char vm[QVM_NAME_MAX + 1];
        const char *slash = strchr(pf + plen, '/');
        size_t vl = slash ? (size_t)(slash - (pf + plen)) : 0;
        if (vl && vl <= QVM_NAME_MAX) {
            memcpy(vm, pf + plen, vl);
            vm[vl] = '\0';
            /* A VM being started or stopped right now is left alone. */
            /* A pid file naming it is check_runtime's case (a known VM, or
             * one that no longer exists). */
            if (qvm_name_valid(vm) && !vm_busy(ctx, vm) && qvm_qemu_pid(pf) != (pid_t)pid) {
                bool fixed = repair && qvm_process_kill_wait((pid_t)pid, 5000);
                add(f, "unknown-qemu", fixed,
                    xasprintf("QEMU process %ld runs as VM '%s', but no pid file names it%s",
                              pid, vm, bundle_exists(ctx, vm) ? "" : " (and the VM does not exist)"));
            }
        }
        free(pf);
    }
    if (d)
        closedir(d);
    free(prefix);
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
        if (pid <= 0)
            check_sockets(dir, de->d_name, repair, f);
        free(pidfile);
        free(dir);
    }
    if (d)
        closedir(d);
    free(vms);
}

/* qvm networks whose host side is not all there (after a reboot, or a
 * bridge or table removed by hand), and leases of VMs that are gone. */
static void check_networks(struct qvm_ctx *ctx, bool repair, struct findings *f)
{
    char **names;
    size_t nn;
    if (qvm_net_list_names(ctx, &names, &nn, NULL) < 0)
        return;
    for (size_t i = 0; i < nn; i++) {
        struct qvm_network n;
        if (qvm_net_load(ctx, names[i], &n, NULL) == 0) {
            struct qvm_net_status st;
            qvm_net_status(ctx, &n, &st);
            if (!st.bridge || !st.nat || !st.dnsmasq) {
                struct qvm_error e = { 0 };
                bool fixed = repair && qvm_net_start(ctx, n.name, &e) == 0;
                add(f, "network-down", fixed,
                    xasprintf("network '%s' is not fully up (bridge %s, NAT %s, dnsmasq %s)%s%s",
                              n.name, st.bridge ? "yes" : "no", st.nat ? "yes" : "no",
                              st.dnsmasq ? "yes" : "no", repair && !fixed ? ": " : "",
                              repair && !fixed ? e.msg : ""));
            }
            char **vms;
            size_t nv;
            if (qvm_net_leased_vms(&n, &vms, &nv, NULL) == 0) {
                for (size_t k = 0; k < nv; k++) {
                    if (!bundle_exists(ctx, vms[k]))
                        add(f, "stale-lease", repair && qvm_net_forget_vm(ctx, vms[k], NULL) == 0,
                            xasprintf("network '%s' holds a lease for VM '%s', which does not exist",
                                      n.name, vms[k]));
                    free(vms[k]);
                }
                free(vms);
            }
            qvm_net_release(&n);
        }
        free(names[i]);
    }
    free(names);
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
    check_processes(ctx, repair, &f);
    check_disks(ctx, &f);
    check_networks(ctx, repair, &f);
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
