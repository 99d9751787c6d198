/* edit.c - qvm edit, qvm resize and the autostart flag (see edit.h).
 *
 * Journaled steps, in this order so that vm.json never claims a disk size
 * the disk does not have:
 *   disk-grown           the disk is larger (no undo: a larger disk loses
 *                        nothing, and the old vm.json claims less)
 *   staged               BUNDLE/.edit holds the new vm.yaml and vm.json and
 *                        copies of the old ones (undo: remove .edit)
 *   file-replaced        vm.yaml is the new one
 *   definition-replaced  vm.json is the new one
 * Each replacement journals "remove the new file" and "move the old copy
 * back if the file is missing", so a rollback at any point restores both
 * files; vm.json is only ever replaced by rename(2), never missing to a
 * reader. */
#include "edit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/journal.h"
#include "core/monitor.h"
#include "core/pools.h"
#include "core/vm.h"
#include "runtime/accel.h"
#include "spec/spec.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

#define QMP_TIMEOUT_MS 30000

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static double gib(uint64_t bytes)
{
    return (double)bytes / (double)(UINT64_C(1) << 30);
}

/* ---- the VM, locked ------------------------------------------------------------ */

struct edit_vm {
    int lock;
    struct qvm_vm vm;
    struct qvm_pool pool;
    char *yaml_path;
    char *old;                  /* the stored qvm file */
    size_t old_len;
    pid_t pid;                  /* its QEMU, or 0 */
};

static void edit_vm_release(struct edit_vm *e)
{
    qvm_vm_release(&e->vm);
    qvm_pool_release(&e->pool);
    free(e->yaml_path);
    free(e->old);
    qvm_unlock(e->lock);
    e->lock = -1;
}

static int read_stored(const struct qvm_vm *vm, char **ret_path, char **ret, size_t *ret_len,
                       struct qvm_error *err)
{
    *ret_path = xasprintf("%s/vm.yaml", vm->bundle_dir);
    int r = qvm_read_file(*ret_path, QVM_SPEC_MAX_FILE, ret, ret_len, err);
    if (r == -ENOENT)
        r = qvm_err(err, ENOENT, "VM '%s' has no stored qvm file (%s)", vm->spec.name, *ret_path);
    return r;
}

static int edit_vm_open(struct qvm_ctx *ctx, const char *name, struct edit_vm *e,
                        struct qvm_error *err)
{
    memset(e, 0, sizeof *e);
    e->lock = qvm_vm_lock(ctx, name, -1, err);
    if (e->lock < 0)
        return e->lock;
    int r = qvm_vm_load(ctx, name, &e->vm, err);
    if (r == 0)
        r = qvm_pool_get(ctx, e->vm.pool, &e->pool, err);
    if (r == 0)
        r = read_stored(&e->vm, &e->yaml_path, &e->old, &e->old_len, err);
    if (r == 0)
        e->pid = qvm_vm_pid(&e->vm);
    if (r < 0)
        edit_vm_release(e);
    return r;
}

int qvm_edit_load(struct qvm_ctx *ctx, const char *name, char **ret_text, size_t *ret_len,
                  struct qvm_error *err)
{
    struct qvm_vm vm;
    int r = qvm_vm_load(ctx, name, &vm, err);
    if (r < 0)
        return r;
    char *path;
    r = read_stored(&vm, &path, ret_text, ret_len, err);
    free(path);
    qvm_vm_release(&vm);
    return r;
}

/* ---- the disk ------------------------------------------------------------------- */

/* query-block returns, per drive:
 *   { "device": "disk0", "inserted": { "image": { "virtual-size": 2147483648,
 *     "filename": "...", "format": "qcow2", ... }, ... }, ... } */
static int qmp_disk_size(const struct qvm_vm *vm, struct qvm_qmp *q, uint64_t *ret,
                         struct qvm_error *err)
{
    json_object *list = NULL;
    int r = qvm_vm_qmp_execute(vm, q, "query-block", NULL, QMP_TIMEOUT_MS, &list, err);
    if (r < 0)
        return r;
    r = qvm_err(err, EPROTO, "QEMU of VM '%s' reports no drive disk0 (query-block)",
                vm->spec.name);
    for (size_t i = 0; list && json_object_is_type(list, json_type_array) &&
                       i < json_object_array_length(list); i++) {
        json_object *d = json_object_array_get_idx(list, i), *dev, *ins, *img, *vs;
        if (json_object_object_get_ex(d, "device", &dev) &&
            strcmp(json_object_get_string(dev), "disk0") == 0 &&
            json_object_object_get_ex(d, "inserted", &ins) &&
            json_object_object_get_ex(ins, "image", &img) &&
            json_object_object_get_ex(img, "virtual-size", &vs) &&
            json_object_is_type(vs, json_type_int)) {
            *ret = (uint64_t)json_object_get_int64(vs);
            qvm_err_clear(err);
            r = 0;
        }
    }
    json_object_put(list);
    return r;
}

/* The disk's size now: QEMU's view while it runs, else the storage's. */
static int disk_size_now(struct edit_vm *e, uint64_t *ret, struct qvm_error *err)
{
    if (e->pid <= 0)
        return qvm_storage_disk_size(&e->pool, e->vm.spec.name, e->vm.disk_name, ret, err);
    struct qvm_qmp *q;
    int r = qvm_vm_qmp_open(&e->vm, &q, err);
    if (r < 0)
        return r;
    r = qmp_disk_size(&e->vm, q, ret, err);
    qvm_qmp_close(q);
    return r;
}

/* Grows the disk to SIZE: through the driver while the VM is stopped; while
 * it runs, QEMU grows a file itself (block_resize, so the guest sees the new
 * size at once), and a block device is grown by the driver first and then
 * announced to QEMU. *ret_size: the size it has now. */
static int grow_disk(struct edit_vm *e, uint64_t size, uint64_t *ret_size, struct qvm_error *err)
{
    const struct qvm_storage_driver *drv = e->pool.driver;
    if (!drv->disk_resize)
        return qvm_err(err, ENOTSUP, "pool '%s' (%s) cannot grow disks", e->pool.name, drv->name);
    if (e->pid <= 0 || e->vm.disk_is_block) {
        int r = drv->disk_resize(&e->pool, e->vm.spec.name, e->vm.disk_name, size, ret_size, err);
        if (r < 0 || e->pid <= 0)
            return r;
        size = *ret_size;
    }
    struct qvm_qmp *q;
    int r = qvm_vm_qmp_open(&e->vm, &q, err);
    if (r < 0)
        return r;
    json_object *args = json_object_new_object();
    json_object_object_add(args, "device", json_object_new_string("disk0"));
    json_object_object_add(args, "size", json_object_new_int64((int64_t)size));
    r = qvm_vm_qmp_execute(&e->vm, q, "block_resize", args, QMP_TIMEOUT_MS, NULL, err);
    json_object_put(args);
    if (r == 0)
        r = qmp_disk_size(&e->vm, q, ret_size, err);
    qvm_qmp_close(q);
    if (r < 0)
        return qvm_err_wrap(err, "cannot grow the disk of running VM '%s'", e->vm.spec.name);
    return 0;
}

/* ---- validation ------------------------------------------------------------------ */

/* A free TCP port on 127.0.0.1 (PORT 0: any), as qvm up chooses one. */
static int local_port(int port, int *ret, struct qvm_error *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot create a socket to find a free port");
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int r = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        r = port ? qvm_err(err, EADDRINUSE, "network ssh-port %d is already in use on 127.0.0.1", port)
                 : qvm_err_errno(err, errno, "cannot find a free port on 127.0.0.1");
    else if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        r = qvm_err_errno(err, errno, "cannot read the chosen port");
    else
        *ret = ntohs(sa.sin_port);
    close(fd);
    return r;
}

static bool props_same(const struct qvm_disk_spec *a, const struct qvm_disk_spec *b)
{
    if (a->nprops != b->nprops)
        return false;
    for (size_t i = 0; i < a->nprops; i++)
        if (!str_eq(a->props[i].key, b->props[i].key) || !str_eq(a->props[i].value, b->props[i].value))
            return false;
    return true;
}

/* A disk list stays as it was made (issue 5 leaves adding, removing and
 * changing data disks for later): the same data disks, in the same places,
 * with the same settings. The image disk's own keys are checked as ever. */
static int check_data_disks(const struct qvm_vm *vm, const struct qvm_vm_spec *ns,
                            struct qvm_error *err)
{
    const struct qvm_vm_spec *s = &vm->spec;
    bool same = ns->ndata_disks == s->ndata_disks && ns->image_disk_pos == s->image_disk_pos;
    for (size_t i = 0; same && i < ns->ndata_disks; i++) {
        const struct qvm_disk_spec *a = &s->data_disks[i], *b = &ns->data_disks[i];
        same = str_eq(a->target_name, b->target_name) && a->size_bytes == b->size_bytes &&
               str_eq(a->pool, b->pool ? b->pool : vm->pool) && str_eq(a->bus, b->bus) &&
               str_eq(a->cache, b->cache) && a->boot == b->boot;
    }
    if (same)
        return 0;
    return qvm_err(err, ENOTSUP, "VM '%s' has %zu disk%s: changing the disk list (data disks "
                   "added, removed, resized, moved or changed) is not supported yet",
                   s->name, s->ndata_disks + 1, s->ndata_disks ? "s" : "");
}

/* What cannot change on an existing VM, in the order a reader checks. */
static int check_fixed(const struct edit_vm *e, const struct qvm_vm_spec *ns,
                       const struct qvm_vm_spec *os, const char *text, size_t len,
                       struct qvm_error *err)
{
    const struct qvm_vm *vm = &e->vm;
    if (strcmp(ns->name, vm->spec.name) != 0)
        return qvm_err(err, EINVAL, "name cannot change ('%s' to '%s'): the name is the VM's "
                       "bundle, disks and runtime files; make a VM under another name with "
                       "qvm up or qvm clone", vm->spec.name, ns->name);
    if (ns->disk.pool && strcmp(ns->disk.pool, vm->pool) != 0 &&
        !(os && str_eq(os->disk.pool, ns->disk.pool)))
        return qvm_err(err, EINVAL, "disk.pool cannot change ('%s' to '%s'): the VM's disk "
                       "stays in the pool it was cloned in (export and import it to move it)",
                       vm->pool, ns->disk.pool);
    char ref[160] = "";
    if (vm->image)
        snprintf(ref, sizeof ref, "%s@%s", vm->image, vm->version ? vm->version : "");
    const char *old_base = os ? os->disk.base : vm->spec.disk.base;
    if (!str_eq(ns->disk.base, old_base) && strcmp(ns->disk.base, ref) != 0)
        return qvm_err(err, EINVAL, "disk.zvol.base cannot change ('%s' to '%s'): the disk "
                       "is a clone of %s and keeps its data; to start from another image, "
                       "make a new VM with qvm up", old_base ? old_base : ref, ns->disk.base,
                       ref[0] ? ref : "the disk it was provisioned with");
    const char *disk = ns->disk.target_name ? ns->disk.target_name : "disk0";
    if (strcmp(disk, vm->disk_name) != 0)
        return qvm_err(err, EINVAL, "disk.zvol.name cannot change ('%s' to '%s'): the disk "
                       "keeps its name", vm->disk_name, disk);
    int r = check_data_disks(vm, ns, err);
    if (r < 0)
        return r;
    if (os && !props_same(&os->disk, &ns->disk))
        return qvm_err(err, EINVAL, "disk.zvol properties cannot change: they are set when "
                       "the disk is cloned (change them on the dataset with zfs set)");
    if (os) {
        bool same;
        const char *kind = NULL;
        r = qvm_spec_same_cloud_init(e->old, e->old_len, text, len, &same, &kind, err);
        if (r < 0)
            return r;
        if (!same)
            return qvm_err(err, EINVAL, "the %s document cannot change: cloud-init configured "
                           "the VM from its seed when it was provisioned, and qvm edit "
                           "changes only the vm document", kind);
    }
    return 0;
}

/* One line of the summary, when the value changed. */
static void note(struct strbuf *sb, const char *what, const char *from, const char *to)
{
    if (str_eq(from, to))
        return;
    strbuf_addf(sb, "%s%s %s -> %s", sb->len ? ", " : "", what, from ? from : "-", to ? to : "-");
}

static void note_num(struct strbuf *sb, const char *what, unsigned long long from,
                     unsigned long long to, const char *unit)
{
    if (from == to)
        return;
    strbuf_addf(sb, "%s%s %llu%s -> %llu%s", sb->len ? ", " : "", what, from, unit, to, unit);
}

/* "user", "none", "bridge=br0", "network=default" (BUF: 80 bytes). */
static const char *net_desc(const struct qvm_net_spec *n, char *buf, size_t size)
{
    static const char *const types[] = { "user", "none", "network", "bridge" };
    unsigned t = (unsigned)n->type < 4 ? (unsigned)n->type : 0;
    if (!n->source)
        return types[t];
    snprintf(buf, size, "%s=%s", types[t], n->source);
    return buf;
}

/* Moves the settings of NS that apply at the next start into E's VM, and
 * describes them in SB. */
static int take_settings(struct edit_vm *e, struct qvm_vm_spec *ns, const struct qvm_vm_spec *os,
                         struct strbuf *sb, struct qvm_error *err)
{
    struct qvm_vm *vm = &e->vm;
    struct qvm_vm_spec *s = &vm->spec;
    if (!str_eq(ns->accel, s->accel)) {
        const char *accel;
        char n[256];
        struct qvm_accel_probe probe = { .sysfs_root = getenv("QVM_SYSFS_ROOT") };
        int r = qvm_accel_resolve(ns->accel, &probe, &accel, n, sizeof n, err);
        if (r < 0)
            return r;
    }
    /* network: the MAC is the file's, or the one qvm derived; the SSH port
     * stays unless the file asks for another (checked free now). */
    char mac[18];
    if (ns->net.mac)
        snprintf(mac, sizeof mac, "%s", ns->net.mac);
    else if (os && os->net.mac)
        qvm_vm_mac(vm->pool, s->name, mac);
    else
        snprintf(mac, sizeof mac, "%s", vm->mac);
    int port = 0;
    if (ns->net.type == QVM_NET_USER && ns->net.ssh_port > 0)
        port = ns->net.ssh_port;
    else if (ns->net.type == QVM_NET_USER && ns->net.ssh_port == 0)
        port = vm->ssh_port;
    if ((port && port != vm->ssh_port) ||
        (ns->net.type == QVM_NET_USER && ns->net.ssh_port == 0 && !port)) {
        int r = local_port(port, &port, err);
        if (r < 0)
            return r;
    }
    note_num(sb, "memory", s->memory_mib, ns->memory_mib, " MiB");
    note_num(sb, "vcpus", s->vcpus, ns->vcpus, "");
    note(sb, "cpu", s->cpu, ns->cpu);
    note(sb, "accel", s->accel, ns->accel);
    note(sb, "machine", s->machine, ns->machine);
    note(sb, "boot", s->boot, ns->boot);
    note(sb, "graphics", s->graphics == QVM_GRAPHICS_VNC ? "vnc" : "none",
         ns->graphics == QVM_GRAPHICS_VNC ? "vnc" : "none");
    note(sb, "disk.bus", s->disk.bus, ns->disk.bus);
    note(sb, "disk.cache", s->disk.cache, ns->disk.cache);
    char was[80], is[80];
    note(sb, "network", net_desc(&s->net, was, sizeof was), net_desc(&ns->net, is, sizeof is));
    note(sb, "network.model", s->net.model, ns->net.model);
    note(sb, "mac", vm->mac, mac);
    note_num(sb, "ssh-port", (unsigned long long)vm->ssh_port, (unsigned long long)port, "");

    s->memory_mib = ns->memory_mib;
    s->vcpus = ns->vcpus;
    s->graphics = ns->graphics;
    s->net.type = ns->net.type;
    char **moves[][2] = {
        { &s->cpu, &ns->cpu }, { &s->accel, &ns->accel }, { &s->machine, &ns->machine },
        { &s->os_variant, &ns->os_variant }, { &s->boot, &ns->boot },
        { &s->disk.bus, &ns->disk.bus }, { &s->disk.cache, &ns->disk.cache },
        { &s->net.model, &ns->net.model }, { &s->net.source, &ns->net.source },
    };
    for (size_t i = 0; i < sizeof moves / sizeof moves[0]; i++) {
        free(*moves[i][0]);
        *moves[i][0] = *moves[i][1];
        *moves[i][1] = NULL;
    }
    free(vm->mac);
    vm->mac = xstrdup(mac);
    vm->ssh_port = port;
    /* NICs past the first: as the file has them, MACs derived where none is given. */
    note_num(sb, "NICs", qvm_spec_nic_count(s), qvm_spec_nic_count(ns), "");
    for (size_t i = 0; i < s->nextra_nets; i++) {
        free(s->extra_nets[i].model);
        free(s->extra_nets[i].mac);
        free(s->extra_nets[i].source);
    }
    memcpy(s->extra_nets, ns->extra_nets, sizeof s->extra_nets);
    s->nextra_nets = ns->nextra_nets;
    memset(ns->extra_nets, 0, sizeof ns->extra_nets);
    ns->nextra_nets = 0;
    qvm_vm_assign_nic_macs(s, vm->pool, false);
    return 0;
}

/* ---- replacing the definition ---------------------------------------------------- */

/* Journals and replaces BUNDLE/NAME by STAGE/NAME, the old one kept as
 * STAGE/NAME.old for the rollback. */
static int swap_in(struct qvm_journal *j, const char *bundle, const char *stage,
                   const char *name, struct qvm_error *err)
{
    char *live = xasprintf("%s/%s", bundle, name);
    char *fresh = xasprintf("%s/%s", stage, name);
    char *old = xasprintf("%s/%s.old", stage, name);
    int r = qvm_journal_undo_rename(j, live, old, err);
    if (r == 0)
        r = qvm_journal_undo_rm_rf(j, live, err);
    if (r == 0 && rename(fresh, live) < 0)
        r = qvm_err_errno(err, errno, "cannot replace %s", live);
    if (r == 0)
        r = qvm_fsync_dir(bundle, err);
    free(live);
    free(fresh);
    free(old);
    return r;
}

static int copy_file(const char *from, const char *to, mode_t mode, struct qvm_error *err)
{
    char *data;
    size_t len;
    int r = qvm_read_file(from, QVM_VM_JSON_MAX, &data, &len, err);
    if (r == 0)
        r = qvm_write_file_atomic(to, data, len, mode, err);
    free(data);
    return r;
}

static int stage_files(struct qvm_journal *j, const struct edit_vm *e, const char *stage,
                       const char *text, size_t len, struct qvm_error *err)
{
    int r = qvm_journal_undo_rm_rf(j, stage, err);
    if (r == 0)
        r = qvm_rm_rf(stage, err);      /* left by an edit killed after it committed */
    if (r == 0 && mkdir(stage, 0700) < 0)
        r = qvm_err_errno(err, errno, "cannot create %s", stage);
    char *p = xasprintf("%s/vm.yaml", stage);
    if (r == 0)
        r = qvm_write_file_atomic(p, text, len, 0600, err);
    free(p);
    p = xasprintf("%s/vm.yaml.old", stage);
    if (r == 0)
        r = qvm_write_file_atomic(p, e->old, e->old_len, 0600, err);
    free(p);
    char *json = xasprintf("%s/vm.json", e->vm.bundle_dir);
    p = xasprintf("%s/vm.json.old", stage);
    if (r == 0)
        r = copy_file(json, p, 0644, err);
    free(p);
    free(json);
    if (r == 0) {
        struct qvm_vm staged = e->vm;          /* vm.json written into the stage */
        staged.bundle_dir = (char *)stage;
        r = qvm_vm_save(&staged, err);
    }
    return r;
}

/* ---- the one path every change takes ---------------------------------------------- */

struct change {
    const char *op;             /* the journal's operation: edit, resize, autostart */
    const char *text;
    size_t len;
    const char *filename;
};

static int apply_locked(struct qvm_ctx *ctx, struct edit_vm *e, const struct change *c,
                        struct qvm_edit_result *res, struct qvm_error *err)
{
    struct qvm_vm_spec ns = { 0 }, os = { 0 };
    struct qvm_journal *j = NULL;
    struct strbuf sb = STRBUF_INIT;
    char *stage = NULL;
    const char *name = e->vm.spec.name;
    uint64_t now = 0, size = 0;
    int r = qvm_spec_parse(c->filename, c->text, c->len, &ns, err);
    if (r < 0) {
        res->invalid = true;
        return r;
    }
    struct qvm_error oe = { 0 };
    bool have_old = qvm_spec_parse(e->yaml_path, e->old, e->old_len, &os, &oe) == 0;
    r = check_fixed(e, &ns, have_old ? &os : NULL, c->text, c->len, err);
    if (r == 0)
        r = disk_size_now(e, &now, err);
    if (r < 0) {
        res->invalid = r == -EINVAL;
        goto out;
    }
    /* A disk.size left out or left as it was keeps the disk as it is (even
     * if a grow rolled back after a crash made the disk larger than it
     * says); a larger one grows it. */
    bool keep_size = !ns.disk.size_bytes || (have_old && ns.disk.size_bytes == os.disk.size_bytes);
    size = keep_size ? now : ns.disk.size_bytes;
    if (size < now) {
        char have[32], want[32];
        qvm_spec_format_gib(now, have, sizeof have);
        qvm_spec_format_gib(size, want, sizeof want);
        r = qvm_err(err, EINVAL, "disk.size %s GiB (%llu bytes) is smaller than %s now (%s GiB, "
                    "%llu bytes): disks only grow, a smaller one would cut off the guest's file "
                    "system", want, (unsigned long long)size, e->vm.disk_name, have,
                    (unsigned long long)now);
        res->invalid = true;
        goto out;
    }
    bool grow = !keep_size && (size > now || size > e->vm.disk_size);
    bool autostart = e->vm.spec.autostart;
    uint64_t old_size = e->vm.disk_size;
    r = take_settings(e, &ns, have_old ? &os : NULL, &sb, err);
    if (r < 0) {
        res->invalid = true;        /* what the file asks for cannot be had */
        goto out;
    }
    bool restart = sb.len > 0;      /* everything so far applies at the next start */
    e->vm.spec.autostart = ns.autostart;
    if (c->len == e->old_len && memcmp(c->text, e->old, c->len) == 0 && !grow) {
        qvm_say(ctx->ui, "No changes to VM '%s'", name);
        goto out;
    }

    r = qvm_journal_begin(ctx, c->op, "vm", name, &j, err);
    if (r == 0 && grow) {
        uint64_t got = size;
        if (size > now)
            qvm_say(ctx->ui, "Growing %s of VM '%s' from %.2f to %.2f GiB%s", e->vm.disk_name,
                    name, gib(now), gib(size), e->pid > 0 ? " (live, QMP block_resize)" : "");
        r = size > now ? grow_disk(e, size, &got, err) : 0;
        if (r == 0)
            e->vm.disk_size = got;
        if (r == 0)
            r = qvm_fault_point("disk-grown", err);
    }
    stage = xasprintf("%s/.edit", e->vm.bundle_dir);
    if (r == 0)
        r = stage_files(j, e, stage, c->text, c->len, err);
    if (r == 0)
        r = qvm_fault_point("staged", err);
    if (r == 0)
        r = swap_in(j, e->vm.bundle_dir, stage, "vm.yaml", err);
    if (r == 0)
        r = qvm_fault_point("file-replaced", err);
    if (r == 0)
        r = swap_in(j, e->vm.bundle_dir, stage, "vm.json", err);
    if (r == 0)
        r = qvm_fault_point("definition-replaced", err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    if (r < 0)
        goto out;
    qvm_rm_rf(stage, NULL);
    res->changed = true;
    if (e->vm.disk_size != old_size) {
        char from[32], to[32];
        qvm_spec_format_gib(old_size, from, sizeof from);
        qvm_spec_format_gib(e->vm.disk_size, to, sizeof to);
        strbuf_addf(&sb, "%s%s %s -> %s GiB", sb.len ? ", " : "", e->vm.disk_name, from, to);
    }
    if (autostart != e->vm.spec.autostart)
        strbuf_addf(&sb, "%sautostart %s -> %s", sb.len ? ", " : "", autostart ? "on" : "off",
                    e->vm.spec.autostart ? "on" : "off");
    qvm_say(ctx->ui, "VM '%s' updated%s%s", name, sb.len ? ": " : " (its qvm file; no setting changed)",
            sb.buf);
    if (e->vm.disk_size > old_size)
        qvm_say(ctx->ui, "  %s is %.2f GiB%s; cloud-init's growpart grows the guest's partition "
                "and file system at its next boot", e->vm.disk_name, gib(e->vm.disk_size),
                e->pid > 0 ? " (the running guest sees it now)" : "");
    if (restart && e->pid > 0)
        qvm_say(ctx->ui, "  VM '%s' is running: the new settings apply at its next start "
                "(qvm restart %s)", name, name);
    else if (restart)
        qvm_say(ctx->ui, "  the new settings apply when it starts (qvm start %s)", name);
out:
    if (j) {
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    free(stage);
    strbuf_release(&sb);
    qvm_spec_release(&ns);
    qvm_spec_release(&os);
    return r;
}

static int apply_sets(const char *filename, char **text, size_t *len, const char *const *sets,
                      size_t nsets, struct qvm_error *err)
{
    for (size_t i = 0; i < nsets; i++) {
        const char *eq = strchr(sets[i], '=');
        if (!eq || eq == sets[i])
            return qvm_err(err, EINVAL, "--set '%s': expected KEY=VALUE, such as memory=2048",
                           sets[i]);
        char *key = strndup(sets[i], (size_t)(eq - sets[i]));
        char *out;
        size_t outlen;
        int r = qvm_spec_set_key(filename, *text, *len, key, eq + 1, &out, &outlen, err);
        free(key);
        if (r < 0)
            return r;
        free(*text);
        *text = out;
        *len = outlen;
    }
    return 0;
}

int qvm_edit_apply(struct qvm_ctx *ctx, const char *name, const struct qvm_edit_req *req,
                   struct qvm_edit_result *ret, struct qvm_error *err)
{
    struct edit_vm e;
    memset(ret, 0, sizeof *ret);
    int r = edit_vm_open(ctx, name, &e, err);
    if (r < 0)
        return r;
    if (req->expect && (req->expect_len != e.old_len || memcmp(req->expect, e.old, e.old_len))) {
        r = qvm_err(err, EAGAIN, "the stored qvm file of VM '%s' (%s) changed while you were "
                    "editing it", name, e.yaml_path);
        edit_vm_release(&e);
        return r;
    }
    const char *filename = req->text ? (req->filename ? req->filename : "<input>") : e.yaml_path;
    size_t len = req->text ? req->len : e.old_len;
    char *text = xmalloc(len + 1);
    memcpy(text, req->text ? req->text : e.old, len);
    text[len] = '\0';
    r = apply_sets(filename, &text, &len, req->sets, req->nsets, err);
    if (r < 0) {
        ret->invalid = true;
    } else {
        struct change c = { .op = "edit", .text = text, .len = len, .filename = filename };
        r = apply_locked(ctx, &e, &c, ret, err);
    }
    free(text);
    edit_vm_release(&e);
    return r;
}

int qvm_resize(struct qvm_ctx *ctx, const char *name, const char *disk, const char *size,
               struct qvm_error *err)
{
    uint64_t want;
    bool relative;
    int r = qvm_spec_parse_size(size, &want, &relative, err);
    if (r < 0)
        return r;
    struct edit_vm e;
    r = edit_vm_open(ctx, name, &e, err);
    if (r < 0)
        return r;
    uint64_t now = 0;
    /* disk.size of a list entry is not a dotted key qvm_spec_set_key writes. */
    if (e.vm.spec.ndata_disks)
        r = qvm_err(err, ENOTSUP, "VM '%s' has %zu disks: resizes of several disks are not "
                    "supported yet (grow the image disk %s with qvm edit: its size in the list)",
                    name, e.vm.spec.ndata_disks + 1, e.vm.disk_name);
    else if (strcmp(disk, e.vm.disk_name) != 0)
        r = qvm_err(err, ENOENT, "VM '%s' has no disk '%s' (its disk is %s)", name, disk,
                    e.vm.disk_name);
    if (r == 0)
        r = disk_size_now(&e, &now, err);
    if (r == 0 && relative)
        want = (now + want + (UINT64_C(1) << 20) - 1) >> 20 << 20;
    if (r == 0 && want < now) {
        char have[32], asked[32];
        qvm_spec_format_gib(now, have, sizeof have);
        qvm_spec_format_gib(want, asked, sizeof asked);
        r = qvm_err(err, EINVAL, "%s of VM '%s' is %s GiB (%llu bytes); %s GiB (%llu bytes) is "
                    "smaller: qvm resize only grows disks (shrinking would cut off the guest's "
                    "file system)", disk, name, have, (unsigned long long)now, asked,
                    (unsigned long long)want);
    }
    if (r == 0 && want == now && want == e.vm.disk_size) {
        char have[32];
        qvm_spec_format_gib(now, have, sizeof have);
        qvm_say(ctx->ui, "%s of VM '%s' is already %s GiB; nothing to do", disk, name, have);
    } else if (r == 0) {
        char value[32], *text = NULL;
        size_t len;
        qvm_spec_format_gib(want, value, sizeof value);
        r = qvm_spec_set_key(e.yaml_path, e.old, e.old_len, "disk.size", value, &text, &len, err);
        struct qvm_edit_result res = { 0 };
        struct change c = { .op = "resize", .text = text, .len = len, .filename = e.yaml_path };
        if (r == 0)
            r = apply_locked(ctx, &e, &c, &res, err);
        free(text);
    }
    edit_vm_release(&e);
    return r;
}

int qvm_autostart_set(struct qvm_ctx *ctx, const char *name, bool on, struct qvm_error *err)
{
    const char *set = on ? "autostart=true" : "autostart=false";
    struct qvm_edit_req req = { .sets = &set, .nsets = 1 };
    struct qvm_edit_result res;
    return qvm_edit_apply(ctx, name, &req, &res, err);
}

/* ---- the editor ------------------------------------------------------------------- */

int qvm_edit_tempfile(const char *name, const char *text, size_t len, char **ret_path,
                      struct qvm_error *err)
{
    const char *tmp = getenv("TMPDIR");
    char *path = xasprintf("%s/qvm-edit-%s-XXXXXX.yaml", tmp && *tmp ? tmp : "/tmp", name);
    int fd = mkostemps(path, 5, O_CLOEXEC);      /* mode 0600 */
    if (fd < 0) {
        int r = qvm_err_errno(err, errno, "cannot create a file to edit in %s",
                              tmp && *tmp ? tmp : "/tmp");
        free(path);
        return r;
    }
    int r = qvm_write_all(fd, text, len, path, err);
    if (r == 0 && fsync(fd) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", path);
    close(fd);
    if (r < 0) {
        unlink(path);
        free(path);
        return r;
    }
    *ret_path = path;
    return 0;
}

int qvm_edit_run_editor(const char *path, struct qvm_error *err)
{
    const char *ed = getenv("VISUAL");
    if (!ed || !*ed)
        ed = getenv("EDITOR");
    if (!ed || !*ed)
        ed = "vi";
    /* "code --wait" and the like: words, no shell, no quoting. */
    char *copy = xstrdup(ed), *save = NULL;
    const char *argv[34];
    size_t n = 0;
    for (char *w = strtok_r(copy, " \t", &save); w && n < 32; w = strtok_r(NULL, " \t", &save))
        argv[n++] = w;
    int r = 0;
    if (n == 0 || n == 32)
        r = qvm_err(err, EINVAL, "cannot run the editor '%s' (from $VISUAL or $EDITOR)", ed);
    if (r == 0) {
        argv[n++] = path;
        argv[n] = NULL;
        /* The editor has the terminal; a person may take their time. */
        struct qvm_run_opts opts = { .timeout_ms = INT_MAX, .use_stdin_fd = true, .stdin_fd = 0,
                                     .inherit_stdout = true, .inherit_stderr = true };
        r = qvm_run(argv, &opts, NULL, err);
        if (r < 0)
            qvm_err_wrap(err, "the editor failed");
    }
    free(copy);
    return r;
}
