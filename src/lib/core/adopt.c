/* adopt.c - `qvm adopt DOMAIN`: an existing libvirt domain becomes a qvm VM
 * (Ganeti's adoption of existing disks, seed 002), keeping the domain.
 *
 * Only a domain whose disk is a file in one of qvm's dir pools qualifies:
 * the disk then moves into a new bundle by a rename within the pool's file
 * system (never a copy), as `qvm up --reuse` does, and the domain is
 * redefined with the disk's new path and qvm's metadata. Every other
 * setting of the domain stays as its owner made it. Journaled: bundle
 * created, disk moved, domain redefined, definition written; any failure
 * moves the disk back and restores the domain's original definition. */
#include "runtime_libvirt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/monitor.h"
#include "core/pools.h"
#include "runtime/domain_xml.h"
#include "runtime/libvirt.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"

#define TASK "adopting libvirt domain"

static bool streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* The dir pool whose tree holds PATH (a real path), or NULL. */
static struct qvm_pool *pool_of(struct qvm_pool *pools, size_t n, const char *path,
                                const char *only)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(pools[i].driver->name, "dir") != 0 || !pools[i].driver->adopt_path)
            continue;
        if (only && strcmp(pools[i].name, only) != 0)
            continue;
        char *root = realpath(pools[i].path, NULL);
        size_t len = root ? strlen(root) : 0;
        bool inside = root && strncmp(path, root, len) == 0 && path[len] == '/';
        free(root);
        if (inside)
            return &pools[i];
    }
    return NULL;
}

/* What qvm records of the domain (vm.json), from its XML. */
static void fill_vm(struct qvm_vm *vm, const struct qvm_domain_info *d,
                    const struct qvm_domain_disk *disk, const char *format, uint64_t size,
                    const char *uri)
{
    struct qvm_vm_spec *s = &vm->spec;
    vm->uuid = xstrdup(d->uuid);
    vm->created = time(NULL);
    vm->disk_name = xstrdup("disk0");
    vm->disk_format = xstrdup(format);
    vm->disk_size = size;
    s->memory_mib = d->memory_kib / 1024 ? d->memory_kib / 1024 : 1;
    s->vcpus = d->vcpus ? d->vcpus : 1;
    s->cpu = xstrdup(streq(d->cpu_mode, "host-passthrough") ? "host-passthrough"
                     : streq(d->cpu_mode, "maximum") ? "max" : "host-model");
    s->accel = xstrdup(streq(d->type, "kvm") ? "kvm" : "tcg");
    s->machine = xstrdup(d->machine && strstr(d->machine, "q35") ? "q35" : "pc");
    s->boot = xstrdup("hd");
    s->graphics = d->graphics_vnc ? QVM_GRAPHICS_VNC : QVM_GRAPHICS_NONE;
    s->disk.bus = xstrdup(disk->bus ? disk->bus : "virtio");
    s->disk.cache = xstrdup("writeback");
    s->net.type = !d->net_type ? QVM_NET_NONE : streq(d->net_type, "network") ? QVM_NET_NETWORK
                : streq(d->net_type, "bridge") ? QVM_NET_BRIDGE : QVM_NET_USER;
    s->net.source = d->net_source ? xstrdup(d->net_source) : NULL;
    s->net.model = xstrdup(d->net_model ? d->net_model : "virtio");
    char mac[18];
    if (d->net_mac)
        snprintf(mac, sizeof mac, "%s", d->net_mac);
    else
        qvm_vm_mac(vm->pool, s->name, mac);
    vm->mac = xstrdup(mac);
    vm->ssh_port = 0;
    s->runtime = xstrdup("libvirt");
    s->runtime_uri = xstrdup(uri);
}

/* Checks the domain's disks: the one writable disk must be a file in a dir
 * pool (the pool is returned), read-only ones may stay where they are if
 * they are in that pool too, empty CD-ROMs are fine. Everything else is
 * named in the refusal. */
static int check_disks(const struct qvm_domain_info *d, struct qvm_pool *pools, size_t npools,
                       const char *only_pool, struct qvm_pool **ret_pool, size_t *ret_disk,
                       char **ret_real, struct qvm_error *err)
{
    struct strbuf elsewhere = STRBUF_INIT;
    int writable = -1, nwritable = 0;
    char *real = NULL;
    for (size_t i = 0; i < d->ndisks; i++) {
        const struct qvm_domain_disk *k = &d->disks[i];
        if (!k->path)
            continue;                       /* an empty CD-ROM */
        char *rp = realpath(k->path, NULL);
        struct qvm_pool *p = streq(k->type, "file") && rp ? pool_of(pools, npools, rp, only_pool)
                                                          : NULL;
        if (!p)
            strbuf_addf(&elsewhere, "%s%s (%s %s)", elsewhere.len ? ", " : "", k->path,
                        k->type ? k->type : "?", k->device ? k->device : "disk");
        if (p && !k->readonly && streq(k->device, "disk")) {
            nwritable++;
            writable = (int)i;
            free(real);
            real = rp;
            rp = NULL;
            *ret_pool = p;
        }
        free(rp);
    }
    int r = 0;
    if (elsewhere.len)
        r = qvm_err(err, EXDEV, "domain '%s' has disks outside qvm's dir pools%s%s: %s; move "
                    "them into a dir pool (or give the disk's pool with --pool) first", d->name,
                    only_pool ? " (pool " : "", only_pool ? only_pool : "", elsewhere.buf);
    else if (nwritable == 0)
        r = qvm_err(err, EINVAL, "domain '%s' has no writable disk to adopt", d->name);
    else if (nwritable > 1)
        r = qvm_err(err, ENOTSUP, "domain '%s' has %d writable disks; a qvm VM has one",
                    d->name, nwritable);
    strbuf_release(&elsewhere);
    if (r < 0) {
        free(real);
        return r;
    }
    *ret_disk = (size_t)writable;
    *ret_real = real;
    return 0;
}

int qvm_adopt(struct qvm_ctx *ctx, const char *domain, const struct qvm_adopt_opts *opts,
              struct qvm_error *err)
{
    int r = qvm_name_check("VM", domain, err);
    if (r < 0)
        return qvm_err_wrap(err, "domain '%s' needs a qvm name to be adopted (rename it with "
                            "virsh domrename)", domain);
    const char *uri = opts->uri ? opts->uri : QVM_LIBVIRT_DEFAULT_URI;
    int lock = qvm_vm_lock(ctx, domain, -1, err);
    if (lock < 0)
        return lock;
    struct qvm_vm vm = { 0 }, existing;
    struct qvm_libvirt *lv = NULL;
    struct qvm_domain_info d = { 0 };
    struct qvm_pool *pools = NULL;
    size_t npools = 0, di = 0;
    struct qvm_journal *j = NULL;
    char *xml = NULL, *moved = NULL, *real = NULL, *saved = NULL, *dst = NULL;
    struct qvm_error e = { 0 };
    if (qvm_vm_load(ctx, domain, &existing, &e) == 0) {
        r = qvm_err(err, EEXIST, "VM '%s' already exists (pool '%s')", domain, existing.pool);
        qvm_vm_release(&existing);
        goto out;
    }
    char uuid[40];
    r = qvm_libvirt_open(uri, &lv, err);
    if (r == 0)
        r = qvm_libvirt_lookup_name(lv, domain, uuid, err);
    if (r == 0)
        r = qvm_libvirt_xml(lv, uuid, true, &xml, err);
    if (r == 0)
        r = qvm_domain_xml_parse(xml, &d, err);
    if (r < 0)
        goto out;
    bool active = false;
    if (qvm_libvirt_active(lv, uuid, &active, err) == 0 && active) {
        r = qvm_err(err, EBUSY, "domain '%s' is running; shut it down first (virsh shutdown %s): "
                    "its disk moves into a qvm bundle", domain, domain);
        goto out;
    }
    if ((r = qvm_pools_all(ctx, &pools, &npools, err)) < 0)
        goto out;
    struct qvm_pool *pool = NULL;
    r = check_disks(&d, pools, npools, opts->pool, &pool, &di, &real, err);
    if (r < 0)
        goto out;
    const struct qvm_domain_disk *disk = &d.disks[di];
    const char *format;
    uint64_t size = 0;
    bool backing = false;
    struct stat st, pst;
    r = qvm_image_file_format(real, &format, err);
    if (r == 0)
        r = qvm_image_file_probe(real, format, &size, &backing, err);
    if (r == 0 && backing)
        r = qvm_err(err, EINVAL, "the disk %s of domain '%s' is a qcow2 overlay with a backing "
                    "file; flatten it first (qemu-img convert)", disk->path, domain);
    if (r == 0 && disk->format && !streq(disk->format, format))
        r = qvm_err(err, EINVAL, "domain '%s' says its disk %s is %s, but it is %s", domain,
                    disk->path, disk->format, format);
    if (r == 0 && (stat(real, &st) < 0 || stat(pool->path, &pst) < 0 || st.st_dev != pst.st_dev))
        r = qvm_err(err, EXDEV, "the disk %s is not on the file system of pool '%s' (%s); it "
                    "is adopted by a rename, never copied", disk->path, pool->name, pool->path);
    if (r < 0)
        goto out;
    vm.spec.name = xstrdup(domain);
    vm.pool = xstrdup(pool->name);
    vm.bundle_dir = pool->driver->vm_dir(pool, domain);
    dst = pool->driver->adopt_path(pool, domain, "disk0", format);
    fill_vm(&vm, &d, disk, format, size, uri);
    if (opts->dry_run) {
        qvm_say(ctx->ui, "Dry run: nothing was changed. qvm adopt would:");
        qvm_say(ctx->ui, "  create bundle %s in %s pool '%s'", vm.bundle_dir,
                pool->driver->name, pool->name);
        qvm_say(ctx->ui, "  move %s (%s, %.2f GiB) to %s, by a rename", disk->path, format,
                (double)size / (1 << 30), dst);
        qvm_say(ctx->ui, "  redefine domain '%s' (UUID %s) at %s with that path and qvm's "
                "metadata, every other setting kept", domain, uuid, uri);
        goto out;
    }
    saved = xasprintf("%s/domain.xml.before-adopt", vm.bundle_dir);
    r = qvm_journal_begin(ctx, "adopt", "vm", domain, &j, err);
    if (r == 0)
        r = qvm_journal_undo_vm_destroy(j, pool->name, domain, err);
    if (r == 0)
        r = pool->driver->vm_create(pool, domain, err);
    if (r == 0)
        r = qvm_fault_point("bundle-created", err);
    /* The domain's definition as it was, for the undo to restore. */
    if (r == 0)
        r = qvm_write_file_atomic(saved, xml, strlen(xml), 0600, err);
    if (r == 0 && strcmp(real, dst) != 0) {
        qvm_say(ctx->ui, "Moving %s to %s (renamed, not copied)", disk->path, dst);
        r = qvm_journal_undo_rename(j, real, dst, err);
        if (r == 0 && renameat2(AT_FDCWD, real, AT_FDCWD, dst, RENAME_NOREPLACE) < 0)
            r = qvm_err_errno(err, errno, "cannot move %s to %s", real, dst);
    }
    if (r == 0)
        r = qvm_fault_point("disk-moved", err);
    if (r == 0)
        r = qvm_domain_xml_move_disk(xml, disk->path, dst, &moved, err);
    if (r == 0)
        r = qvm_journal_undo_libvirt_define(j, uri, saved, err);
    if (r == 0) {
        qvm_say(ctx->ui, "Redefining libvirt domain '%s' with the disk at %s", domain, dst);
        r = qvm_libvirt_define(lv, moved, err);
    }
    if (r == 0) {
        char *frag = xasprintf("<vm><uuid>%s</uuid><pool>%s</pool></vm>", vm.uuid, vm.pool);
        r = qvm_libvirt_set_metadata(lv, vm.uuid, frag, err);
        free(frag);
    }
    if (r == 0)
        r = qvm_fault_point("domain-redefined", err);
    if (r == 0)
        r = qvm_vm_save(&vm, err);
    if (r == 0)
        r = qvm_fault_point("definition-written", err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    if (r == 0) {
        unlink(saved);
        qvm_say(ctx->ui, "Domain '%s' is now qvm VM '%s' in pool '%s' (runtime libvirt at %s)",
                domain, domain, pool->name, uri);
    }
out:
    if (j) {
        struct qvm_error rb = { 0 };
        qvm_say(ctx->ui, "Rolling back");
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    if (r < 0)
        qvm_err_task(err, TASK);
    free(saved);
    free(dst);
    free(real);
    free(moved);
    free(xml);
    qvm_domain_info_release(&d);
    qvm_pools_free(pools, npools);
    qvm_libvirt_close(lv);
    qvm_vm_release(&vm);
    qvm_unlock(lock);
    return r;
}
