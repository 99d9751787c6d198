#include "vm.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <json-c/json.h>

#include "core/pools.h"
#include "core/process.h"
#include "core/runtime_libvirt.h"
#include "storage/disk_create.h"
#include "util/fsutil.h"
#include "util/names.h"
#include "util/strbuf.h"

/* Where each data disk is: in its pool's bundle of the VM. A recorded
 * format (vm.json) wins over the driver's guess. */
static int derive_data_disks(struct qvm_ctx *ctx, const struct qvm_pool *pool, struct qvm_vm *vm,
                             struct qvm_error *err)
{
    const struct qvm_vm_spec *s = &vm->spec;
    if (!s->ndata_disks)
        return 0;
    struct qvm_disk_info *info = xcalloc(s->ndata_disks, sizeof *info);
    int r = 0;
    for (size_t i = 0; i < s->ndata_disks && r == 0; i++) {
        const struct qvm_disk_spec *d = &s->data_disks[i];
        struct qvm_pool other = { 0 };
        bool own = !d->pool || strcmp(d->pool, pool->name) == 0;
        if (!own && (r = qvm_pool_get(ctx, d->pool, &other, err)) < 0) {
            qvm_err_wrap(err, "VM '%s': data disk %s", s->name, d->target_name);
            break;
        }
        char *format = vm->data_disk_info ? vm->data_disk_info[i].format : NULL;
        r = qvm_storage_data_disk_locate(own ? pool : &other, s->name, d->target_name, &info[i],
                                         err);
        if (r == 0 && format) {
            free(info[i].format);
            info[i].format = xstrdup(format);
        }
        qvm_pool_release(&other);
    }
    if (vm->data_disk_info)
        for (size_t i = 0; i < s->ndata_disks; i++)
            qvm_disk_info_release(&vm->data_disk_info[i]);
    free(vm->data_disk_info);
    vm->data_disk_info = info;
    free(vm->qemu_disks);
    vm->qemu_disks = xcalloc(s->ndata_disks, sizeof *vm->qemu_disks);
    for (size_t i = 0; i < s->ndata_disks; i++)
        vm->qemu_disks[i] = (struct qvm_qemu_disk){ info[i].path, info[i].format, info[i].is_block };
    return r;
}

size_t qvm_vm_other_pools(const struct qvm_vm *vm, const char ***ret)
{
    const char **v = xcalloc(vm->spec.ndata_disks + 1, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < vm->spec.ndata_disks; i++) {
        const char *p = vm->spec.data_disks[i].pool;
        bool seen = !p || (vm->pool && strcmp(p, vm->pool) == 0);
        for (size_t k = 0; k < n && !seen; k++)
            seen = strcmp(v[k], p) == 0;
        if (!seen)
            v[n++] = p;
    }
    *ret = v;
    return n;
}

int qvm_vm_single_disk(const struct qvm_vm *vm, const char *what, struct qvm_error *err)
{
    if (!vm->spec.ndata_disks)
        return 0;
    return qvm_err(err, ENOTSUP, "VM '%s' has %zu disks: %s of several disks are not supported yet",
                   vm->spec.name, vm->spec.ndata_disks + 1, what);
}

int qvm_vm_derive_paths(struct qvm_ctx *ctx, const struct qvm_pool *pool, struct qvm_vm *vm,
                        struct qvm_error *err)
{
    const char *name = vm->spec.name;
    vm->bundle_dir = pool->driver->vm_dir(pool, name);
    struct qvm_disk_info disk;
    int r = pool->driver->disk_locate(pool, name, vm->disk_name, &disk, err);
    if (r < 0)
        return r;
    vm->disk_path = disk.path;
    free(vm->disk_format);
    vm->disk_format = disk.format;
    vm->disk_is_block = disk.is_block;
    vm->seed_path = xasprintf("%s/seed.iso", vm->bundle_dir);
    vm->console_log = xasprintf("%s/console.log", vm->bundle_dir);
    vm->run_dir = qvm_paths_vm_run_dir(&ctx->paths, name);
    vm->qmp_socket = xasprintf("%s/qmp.sock", vm->run_dir);
    vm->console_socket = xasprintf("%s/console.sock", vm->run_dir);
    vm->qga_socket = xasprintf("%s/qga.sock", vm->run_dir);
    vm->vnc_socket = xasprintf("%s/vnc.sock", vm->run_dir);
    vm->pid_file = xasprintf("%s/qemu.pid", vm->run_dir);
    r = derive_data_disks(ctx, pool, vm, err);
    if (r < 0)
        return r;
    struct sockaddr_un sun;
    if (strlen(vm->console_socket) >= sizeof sun.sun_path)
        return qvm_err(err, ENAMETOOLONG,
                       "runtime directory %s is too long for UNIX socket paths (limit %zu bytes); "
                       "use a shorter QVM_ROOT", vm->run_dir, sizeof sun.sun_path - 1);
    return 0;
}

void qvm_vm_nic_mac(const char *pool, const char *name, unsigned index, char *buf)
{
    /* FNV-1a over "pool/name" (and "#INDEX" past the first NIC): stable
     * across hosts, so a replicated bundle keeps its MACs. */
    uint32_t h = qvm_fnv1a(qvm_fnv1a(qvm_fnv1a(QVM_FNV1A_INIT, pool), "/"), name);
    if (index > 0) {
        char idx[16];
        snprintf(idx, sizeof idx, "#%u", index);
        h = qvm_fnv1a(h, idx);
    }
    snprintf(buf, 18, "52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff);
}

void qvm_vm_mac(const char *pool, const char *name, char *buf)
{
    qvm_vm_nic_mac(pool, name, 0, buf);
}

void qvm_vm_assign_nic_macs(struct qvm_vm_spec *s, const char *pool, bool fresh)
{
    for (size_t i = 0; i < s->nextra_nets; i++) {
        struct qvm_net_spec *n = &s->extra_nets[i];
        if (n->mac && !fresh)
            continue;
        char mac[18];
        qvm_vm_nic_mac(pool, s->name, (unsigned)i + 1, mac);
        free(n->mac);
        n->mac = xstrdup(mac);
    }
}

const char *qvm_vm_nic_mac_of(const struct qvm_vm *vm, size_t i)
{
    return i == 0 ? vm->mac : vm->spec.extra_nets[i - 1].mac;
}

static const char *net_type_name(enum qvm_net_type t)
{
    return t == QVM_NET_NONE ? "none" : t == QVM_NET_NETWORK ? "network"
         : t == QVM_NET_BRIDGE ? "bridge" : "user";
}

static enum qvm_net_type net_type_parse(const char *t)
{
    return !t ? QVM_NET_USER : !strcmp(t, "none") ? QVM_NET_NONE
         : !strcmp(t, "network") ? QVM_NET_NETWORK : !strcmp(t, "bridge") ? QVM_NET_BRIDGE
         : QVM_NET_USER;
}

static void add_str(json_object *o, const char *k, const char *v)
{
    if (v)
        json_object_object_add(o, k, json_object_new_string(v));
}

int qvm_vm_save(const struct qvm_vm *vm, struct qvm_error *err)
{
    const struct qvm_vm_spec *s = &vm->spec;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "format", json_object_new_int(1));
    add_str(o, "name", s->name);
    add_str(o, "uuid", vm->uuid);
    json_object_object_add(o, "created", json_object_new_int64(vm->created));
    add_str(o, "pool", vm->pool);
    add_str(o, "image", vm->image);
    add_str(o, "version", vm->version);
    json_object_object_add(o, "memory_mib", json_object_new_int64((int64_t)s->memory_mib));
    json_object_object_add(o, "vcpus", json_object_new_int((int)s->vcpus));
    add_str(o, "cpu", s->cpu);
    add_str(o, "accel", s->accel);
    add_str(o, "machine", s->machine);
    add_str(o, "os_variant", s->os_variant);
    add_str(o, "boot", s->boot);
    add_str(o, "graphics", s->graphics == QVM_GRAPHICS_VNC ? "vnc" : "none");
    add_str(o, "instance_id", s->instance_id);
    add_str(o, "hostname", s->hostname);
    json_object_object_add(o, "autostart", json_object_new_boolean(s->autostart));
    add_str(o, "runtime", s->runtime);           /* absent: qemu (core/runtime_libvirt.h) */
    add_str(o, "runtime_uri", s->runtime_uri);
    json_object *d = json_object_new_object();
    add_str(d, "name", vm->disk_name);
    add_str(d, "format", vm->disk_format);
    json_object_object_add(d, "size", json_object_new_int64((int64_t)vm->disk_size));
    add_str(d, "bus", s->disk.bus);
    add_str(d, "cache", s->disk.cache);
    add_str(d, "base", s->disk.base);
    if (s->ndata_disks && s->image_disk_pos)
        json_object_object_add(d, "position", json_object_new_int64((int64_t)s->image_disk_pos));
    json_object_object_add(o, "disk", d);
    if (s->ndata_disks) {
        json_object *list = json_object_new_array();
        for (size_t i = 0; i < s->ndata_disks; i++) {
            const struct qvm_disk_spec *dd = &s->data_disks[i];
            json_object *e = json_object_new_object();
            add_str(e, "name", dd->target_name);
            add_str(e, "pool", dd->pool ? dd->pool : vm->pool);
            add_str(e, "format", vm->data_disk_info ? vm->data_disk_info[i].format : "raw");
            json_object_object_add(e, "size", json_object_new_int64((int64_t)dd->size_bytes));
            add_str(e, "bus", dd->bus);
            add_str(e, "cache", dd->cache);
            if (dd->boot)
                json_object_object_add(e, "boot", json_object_new_boolean(true));
            json_object_array_add(list, e);
        }
        json_object_object_add(o, "data_disks", list);
    }
    json_object *n = json_object_new_object();
    add_str(n, "type", net_type_name(s->net.type));
    add_str(n, "source", s->net.source);
    add_str(n, "model", s->net.model);
    add_str(n, "mac", vm->mac);
    json_object_object_add(n, "ssh_port", json_object_new_int(vm->ssh_port));
    json_object_object_add(o, "network", n);
    if (s->nextra_nets) {
        /* NICs past the first, each with the MAC in use. */
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < s->nextra_nets; i++) {
            const struct qvm_net_spec *x = &s->extra_nets[i];
            json_object *e = json_object_new_object();
            add_str(e, "type", net_type_name(x->type));
            add_str(e, "source", x->source);
            add_str(e, "model", x->model);
            add_str(e, "mac", x->mac);
            json_object_array_add(arr, e);
        }
        json_object_object_add(o, "extra_networks", arr);
    }
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE);
    char *path = xasprintf("%s/vm.json", vm->bundle_dir);
    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, text);
    strbuf_addch(&sb, '\n');
    int r = qvm_write_file_atomic(path, sb.buf, sb.len, 0644, err);
    strbuf_release(&sb);
    free(path);
    json_object_put(o);
    return r;
}

static char *get_str(json_object *o, const char *k)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string))
        return xstrdup(json_object_get_string(v));
    return NULL;
}

static int64_t get_int(json_object *o, const char *k, int64_t dflt)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    return dflt;
}

/* vm.json's data_disks (in list order) and the image disk's position. */
static int load_data_disks(json_object *o, json_object *disk, struct qvm_vm *vm)
{
    json_object *list;
    struct qvm_vm_spec *s = &vm->spec;
    if (!json_object_object_get_ex(o, "data_disks", &list))
        return 0;
    size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
    if (n == 0 || n >= QVM_SPEC_MAX_DISKS)
        return -EINVAL;
    int64_t pos = get_int(disk, "position", 0);
    if (pos < 0 || pos > (int64_t)n)
        return -EINVAL;
    s->image_disk_pos = (size_t)pos;
    s->data_disks = xcalloc(n, sizeof *s->data_disks);
    vm->data_disk_info = xcalloc(n, sizeof *vm->data_disk_info);
    s->ndata_disks = n;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(list, i), *b;
        struct qvm_disk_spec *d = &s->data_disks[i];
        d->target_name = get_str(e, "name");
        d->pool = get_str(e, "pool");
        d->bus = get_str(e, "bus");
        d->cache = get_str(e, "cache");
        int64_t size = get_int(e, "size", 0);
        d->size_bytes = size > 0 ? (uint64_t)size : 0;
        d->boot = json_object_object_get_ex(e, "boot", &b) &&
                  json_object_is_type(b, json_type_boolean) && json_object_get_boolean(b);
        vm->data_disk_info[i].format = get_str(e, "format");
        const char *f = vm->data_disk_info[i].format;
        if (!d->target_name || !qvm_name_valid(d->target_name) || !d->pool ||
            !qvm_name_valid(d->pool) || !d->bus || !d->cache || !d->size_bytes || !f ||
            (strcmp(f, "raw") != 0 && strcmp(f, "qcow2") != 0))
            return -EINVAL;
    }
    return 0;
}

/* Opens the pool whose vms/NAME holds a vm.json into *RET. */
static int find_bundle_pool(struct qvm_ctx *ctx, const char *name, struct qvm_pool *ret)
{
    struct qvm_pool *pools;
    size_t n;
    if (qvm_pools_all(ctx, &pools, &n, NULL) < 0)
        return -ENOENT;
    int r = -ENOENT;
    for (size_t i = 0; i < n && r < 0; i++) {
        char *p = xasprintf("%s/vms/%s/vm.json", pools[i].path, name);
        if (qvm_path_exists(p)) {
            *ret = pools[i];
            memset(&pools[i], 0, sizeof pools[i]);
            r = 0;
        }
        free(p);
    }
    qvm_pools_free(pools, n);
    return r;
}

int qvm_vm_load(struct qvm_ctx *ctx, const char *name, struct qvm_vm *ret, struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    int r = qvm_name_check("VM", name, err);
    if (r < 0)
        return r;
    struct qvm_pool pool;
    if (find_bundle_pool(ctx, name, &pool) < 0)
        return qvm_err(err, ENOENT, "no VM named '%s'", name);
    char *dir = pool.driver->vm_dir(&pool, name);
    char *path = xasprintf("%s/vm.json", dir);
    free(dir);
    char *text = NULL;
    size_t len;
    r = qvm_read_file(path, QVM_VM_JSON_MAX, &text, &len, err);
    json_object *o = r == 0 ? json_tokener_parse(text) : NULL;
    free(text);
    if (r == 0 && !o)
        r = qvm_err(err, EINVAL, "%s is not valid JSON", path);
    free(path);
    if (r < 0) {
        qvm_pool_release(&pool);
        return r;
    }
    struct qvm_vm_spec *s = &ret->spec;
    s->name = xstrdup(name);
    ret->uuid = get_str(o, "uuid");
    ret->created = get_int(o, "created", 0);
    ret->pool = xstrdup(pool.name);
    ret->image = get_str(o, "image");
    ret->version = get_str(o, "version");
    s->memory_mib = (uint64_t)get_int(o, "memory_mib", 1024);
    s->vcpus = (unsigned)get_int(o, "vcpus", 1);
    s->cpu = get_str(o, "cpu");
    s->accel = get_str(o, "accel");
    s->machine = get_str(o, "machine");
    s->os_variant = get_str(o, "os_variant");
    s->boot = get_str(o, "boot");
    char *g = get_str(o, "graphics");
    s->graphics = g && strcmp(g, "vnc") == 0 ? QVM_GRAPHICS_VNC : QVM_GRAPHICS_NONE;
    free(g);
    s->instance_id = get_str(o, "instance_id");
    s->hostname = get_str(o, "hostname");
    json_object *as = NULL;
    s->autostart = json_object_object_get_ex(o, "autostart", &as) &&
                   json_object_is_type(as, json_type_boolean) && json_object_get_boolean(as);
    s->runtime = get_str(o, "runtime");
    s->runtime_uri = get_str(o, "runtime_uri");
    json_object *d = NULL, *n = NULL;
    json_object_object_get_ex(o, "disk", &d);
    json_object_object_get_ex(o, "network", &n);
    ret->disk_name = get_str(d, "name");
    ret->disk_format = get_str(d, "format");
    ret->disk_size = (uint64_t)get_int(d, "size", 0);
    r = load_data_disks(o, d, ret);
    s->disk.bus = get_str(d, "bus");
    s->disk.cache = get_str(d, "cache");
    s->disk.base = get_str(d, "base");
    char *nt = get_str(n, "type");
    s->net.type = net_type_parse(nt);
    s->net.source = get_str(n, "source");
    free(nt);
    json_object *xn = NULL;
    bool extra_ok = true;
    if (json_object_object_get_ex(o, "extra_networks", &xn) && json_object_is_type(xn, json_type_array)) {
        size_t cnt = json_object_array_length(xn);
        if (cnt > QVM_SPEC_MAX_NICS - 1)
            extra_ok = false;
        for (size_t i = 0; i < cnt && i < QVM_SPEC_MAX_NICS - 1; i++) {
            json_object *e = json_object_array_get_idx(xn, i);
            struct qvm_net_spec *x = &s->extra_nets[s->nextra_nets++];
            char *t = get_str(e, "type");
            x->type = net_type_parse(t);
            free(t);
            x->source = get_str(e, "source");
            x->model = get_str(e, "model");
            x->mac = get_str(e, "mac");
            x->ssh_port = -1;
            if (!x->model || !qvm_mac_valid(x->mac) ||
                ((x->type == QVM_NET_NETWORK || x->type == QVM_NET_BRIDGE) &&
                 !qvm_netsource_valid(x->source)))
                extra_ok = false;
        }
    }
    s->net.model = get_str(n, "model");
    ret->mac = get_str(n, "mac");
    ret->ssh_port = (int)get_int(n, "ssh_port", 0);
    json_object_put(o);
    if (r < 0) {
        r = qvm_err(err, EINVAL, "VM '%s': the data_disks of its vm.json in pool '%s' are "
                    "invalid", name, pool.name);
    } else if (!ret->disk_name || !qvm_name_valid(ret->disk_name) || !ret->disk_format ||
        !s->cpu || !s->machine || !s->boot || !s->disk.bus || !s->disk.cache || !s->net.model ||
        !qvm_mac_valid(ret->mac) || !extra_ok ||
        ((s->net.type == QVM_NET_NETWORK || s->net.type == QVM_NET_BRIDGE) &&
         !qvm_netsource_valid(s->net.source))) {
        r = qvm_err(err, EINVAL, "VM '%s': its vm.json in pool '%s' is incomplete", name, pool.name);
    } else {
        if (!s->accel)
            s->accel = xstrdup("auto");
        r = qvm_vm_derive_paths(ctx, &pool, ret, err);
    }
    qvm_pool_release(&pool);
    if (r < 0)
        qvm_vm_release(ret);
    return r;
}

void qvm_vm_release(struct qvm_vm *vm)
{
    if (!vm)
        return;
    if (vm->data_disk_info)
        for (size_t i = 0; i < vm->spec.ndata_disks; i++)
            qvm_disk_info_release(&vm->data_disk_info[i]);
    free(vm->data_disk_info);
    vm->data_disk_info = NULL;
    free(vm->qemu_disks);
    vm->qemu_disks = NULL;
    qvm_spec_release(&vm->spec);
    char **strs[] = { &vm->uuid, &vm->pool, &vm->image, &vm->version, &vm->disk_name,
                      &vm->disk_format, &vm->mac, &vm->bundle_dir, &vm->disk_path,
                      &vm->seed_path, &vm->console_log, &vm->run_dir, &vm->qmp_socket,
                      &vm->console_socket, &vm->qga_socket, &vm->vnc_socket, &vm->pid_file };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}

pid_t qvm_vm_pid(const struct qvm_vm *vm)
{
    if (qvm_vm_libvirt(vm))
        return qvm_lv_qemu_pid(vm);     /* the QEMU libvirt runs for it */
    return vm->pid_file ? qvm_qemu_pid(vm->pid_file) : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int qvm_vm_list_names(struct qvm_ctx *ctx, char ***ret, size_t *ret_n, struct qvm_error *err)
{
    *ret = NULL;
    *ret_n = 0;
    struct qvm_pool *pools;
    size_t npools;
    int r = qvm_pools_all(ctx, &pools, &npools, err);
    if (r < 0)
        return r;
    for (size_t p = 0; p < npools; p++) {
        char *vms = xasprintf("%s/vms", pools[p].path);
        DIR *vd = opendir(vms);
        struct dirent *ve;
        while (vd && (ve = readdir(vd))) {
            if (!qvm_name_valid(ve->d_name))
                continue;
            char *json = xasprintf("%s/%s/vm.json", vms, ve->d_name);
            if (qvm_path_exists(json)) {
                *ret = xrealloc(*ret, (*ret_n + 1) * sizeof(char *));
                (*ret)[(*ret_n)++] = xstrdup(ve->d_name);
            }
            free(json);
        }
        if (vd)
            closedir(vd);
        free(vms);
    }
    qvm_pools_free(pools, npools);
    if (*ret_n)
        qsort(*ret, *ret_n, sizeof(char *), cmp_str);
    return 0;
}
