/* info.c - qvm info: one conversation with QEMU's monitor and, if the guest
 * is running, a short one with its agent, both under the VM lock; then the
 * disks' sizes from qemu-img, outside the lock (it reads files only). */
#include "info.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "core/monitor.h"
#include "core/process.h"
#include "core/runtime_libvirt.h"
#include "core/vm.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_object *member(json_object *o, const char *key, json_type type)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, type))
        return v;
    return NULL;
}

/* What the running QEMU says about itself. Failures leave the defaults:
 * info reports what it can. */
static void ask_qemu(const struct qvm_vm *vm, struct qvm_qmp *q, struct qvm_vm_info *ret)
{
    json_object *r = NULL, *v;
    /* {"enabled": false, "present": true} */
    if (qvm_vm_qmp_execute(vm, q, "query-kvm", NULL, 5000, &r, NULL) == 0 &&
        (v = member(r, "enabled", json_type_boolean)))
        ret->accel = xstrdup(json_object_get_boolean(v) ? "kvm" : "tcg");
    json_object_put(r);
    r = NULL;
    /* {"base-memory": 536870912} */
    if (qvm_vm_qmp_execute(vm, q, "query-memory-size-summary", NULL, 5000, &r, NULL) == 0 &&
        (v = member(r, "base-memory", json_type_int)))
        ret->run_memory_mib = (uint64_t)json_object_get_int64(v) >> 20;
    json_object_put(r);
    r = NULL;
    /* [{"cpu-index": 0, "qom-path": ..., "thread-id": 1234, ...}, ...] */
    if (qvm_vm_qmp_execute(vm, q, "query-cpus-fast", NULL, 5000, &r, NULL) == 0 &&
        json_object_is_type(r, json_type_array))
        ret->run_vcpus = (unsigned)json_object_array_length(r);
    json_object_put(r);
}

static bool loopback(const char *ifname, const char *addr)
{
    return strcmp(ifname, "lo") == 0 || strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0;
}

/* guest-network-get-interfaces returns, e.g.:
 *   [{"name": "eth0", "hardware-address": "52:54:00:12:34:56",
 *     "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.2.15",
 *                       "prefix": 24}, ...], "statistics": {...}}, ...] */
static void parse_addresses(json_object *arr, struct qvm_vm_info *ret)
{
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n && i < 64; i++) {
        json_object *ifc = json_object_array_get_idx(arr, i);
        json_object *name = member(ifc, "name", json_type_string);
        json_object *mac = member(ifc, "hardware-address", json_type_string);
        json_object *ips = member(ifc, "ip-addresses", json_type_array);
        if (!name || !ips)
            continue;
        size_t m = json_object_array_length(ips);
        for (size_t k = 0; k < m && k < 64; k++) {
            json_object *ip = json_object_array_get_idx(ips, k);
            json_object *a = member(ip, "ip-address", json_type_string);
            json_object *t = member(ip, "ip-address-type", json_type_string);
            json_object *p = member(ip, "prefix", json_type_int);
            if (!a || !t || loopback(json_object_get_string(name), json_object_get_string(a)))
                continue;
            ret->addrs = xrealloc(ret->addrs, (ret->naddrs + 1) * sizeof *ret->addrs);
            ret->addrs[ret->naddrs++] = (struct qvm_info_addr){
                .ifname = xstrdup(json_object_get_string(name)),
                .mac = mac ? xstrdup(json_object_get_string(mac)) : NULL,
                .family = xstrdup(json_object_get_string(t)),
                .address = xstrdup(json_object_get_string(a)),
                .prefix = p ? json_object_get_int(p) : -1,
            };
        }
    }
}

static void ask_agent(const struct qvm_vm *vm, struct qvm_vm_info *ret)
{
    long long deadline = now_ms() + QVM_INFO_AGENT_TIMEOUT_MS;
    struct qvm_qmp *q;
    struct qvm_error e = { 0 };
    if (qvm_vm_qga_open(vm, QVM_INFO_AGENT_TIMEOUT_MS, &q, &e) < 0) {
        ret->agent_note = xasprintf("the guest agent did not answer within %d s",
                                    QVM_INFO_AGENT_TIMEOUT_MS / 1000);
        return;
    }
    long long left = deadline - now_ms();
    json_object *r = NULL;
    if (qvm_qmp_execute(q, "guest-network-get-interfaces", NULL, left > 200 ? (int)left : 200,
                        &r, &e) == 0 && json_object_is_type(r, json_type_array)) {
        ret->agent_answered = true;
        parse_addresses(r, ret);
    } else {
        ret->agent_note = xasprintf("the guest agent could not list addresses: %s", e.msg);
    }
    json_object_put(r);
    qvm_qmp_close(q);
}

/* The runtime part, under the VM lock. */
static void ask_running(struct qvm_vm_info *ret)
{
    struct qvm_vm_status *st = &ret->st;
    struct qvm_vm *vm = &st->vm;
    st->uptime_s = -1;
    snprintf(st->state, sizeof st->state, "stopped");
    st->pid = qvm_vm_pid(vm);
    if (st->pid <= 0) {
        st->pid = 0;
        st->exited = qvm_vm_qemu_exited(vm);
        return;
    }
    st->uptime_s = qvm_process_uptime(st->pid);
    if (qvm_vm_libvirt(vm)) {                   /* libvirt's word; no QMP socket of ours */
        qvm_lv_state(NULL, vm, st->state, sizeof st->state);
        ret->agent_note = xasprintf("VM under libvirt: virsh domifaddr --source agent %s",
                                    vm->spec.name);
        return;
    }
    struct qvm_qmp *q;
    struct qvm_error e = { 0 };
    char state[32];
    if (qvm_vm_qmp_open(vm, &q, &e) == 0) {
        if (qvm_vm_qmp_status(vm, q, state, sizeof state, &e) == 0) {
            snprintf(st->state, sizeof st->state, "%s", state);
            ask_qemu(vm, q, ret);
        }
        qvm_qmp_close(q);
    }
    if (e.code && qvm_vm_pid(vm) <= 0) {
        st->pid = 0;
        st->uptime_s = -1;
        st->exited = true;
        return;
    }
    if (e.code) {
        snprintf(st->state, sizeof st->state, "unknown");
        ret->agent_note = xasprintf("QEMU's monitor did not answer: %s", e.msg);
        return;
    }
    if (strcmp(st->state, "running") == 0)
        ask_agent(vm, ret);
    else
        ret->agent_note = xasprintf("the VM is %s", st->state);
}

/* qemu-img info -U --output=json (-U: the running QEMU holds the image's
 * write lock; info only reads), e.g.
 *   {"virtual-size": 4294967296, "filename": "disk0.qcow2", "format": "qcow2",
 *    "actual-size": 2166784, "backing-filename": "...", ...} */
static void probe_disk(struct qvm_info_disk *d)
{
    d->virtual_size = -1;
    d->allocated = -1;
    const char *argv[] = { "qemu-img", "info", "-U", "--output=json", "-f", d->format, d->path,
                           NULL };
    struct qvm_run_opts opts = { .timeout_ms = 30000 };
    struct qvm_run_result res;
    if (qvm_run(argv, &opts, &res, NULL) == 0) {
        json_object *root = json_tokener_parse(res.out), *v;
        if ((v = member(root, "virtual-size", json_type_int)))
            d->virtual_size = json_object_get_int64(v);
        /* A block device reports 0: its allocation is the backend's. */
        if (!d->is_block && (v = member(root, "actual-size", json_type_int)))
            d->allocated = json_object_get_int64(v);
        json_object_put(root);
    }
    qvm_run_result_release(&res);
}

static void add_disk(struct qvm_vm_info *ret, const char *name, const char *path,
                     const char *format, bool read_only, bool is_block)
{
    if (!path)
        return;
    ret->disks = xrealloc(ret->disks, (ret->ndisks + 1) * sizeof *ret->disks);
    struct qvm_info_disk *d = &ret->disks[ret->ndisks++];
    *d = (struct qvm_info_disk){ .name = xstrdup(name), .path = xstrdup(path),
                                 .format = xstrdup(format ? format : "raw"),
                                 .read_only = read_only, .is_block = is_block };
    probe_disk(d);
}

int qvm_vm_info(struct qvm_ctx *ctx, const char *name, struct qvm_vm_info *ret,
                struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    int lock = qvm_vm_lock(ctx, name, -1, err);
    if (lock < 0)
        return lock;
    struct qvm_vm_status *st = &ret->st;
    int r = qvm_vm_load(ctx, name, &st->vm, err);
    if (r < 0) {
        qvm_unlock(lock);
        return r;
    }
    st->name = xstrdup(name);
    ask_running(ret);
    qvm_unlock(lock);

    const struct qvm_vm *vm = &st->vm;
    if (!ret->accel)
        ret->accel = xstrdup(vm->spec.accel ? vm->spec.accel : "auto");
    /* In the order of the qvm file's disk list. */
    for (size_t pos = 0, k = 0; pos <= vm->spec.ndata_disks; pos++) {
        if (pos == vm->spec.image_disk_pos) {
            add_disk(ret, vm->disk_name, vm->disk_path, vm->disk_format, false, vm->disk_is_block);
            continue;
        }
        const struct qvm_disk_info *di = &vm->data_disk_info[k];
        add_disk(ret, vm->spec.data_disks[k++].target_name, di->path, di->format, false,
                 di->is_block);
    }
    add_disk(ret, "seed", vm->seed_path, "raw", true, false);
    if (vm->ssh_port > 0)
        ret->forwards[ret->nforwards++] = (struct qvm_info_forward){
            .protocol = "tcp", .host_addr = "127.0.0.1", .host_port = vm->ssh_port,
            .guest_port = 22 };
    return 0;
}

void qvm_vm_info_release(struct qvm_vm_info *info)
{
    if (!info)
        return;
    qvm_status_release(&info->st);
    free(info->accel);
    for (size_t i = 0; i < info->ndisks; i++) {
        free(info->disks[i].name);
        free(info->disks[i].path);
        free(info->disks[i].format);
    }
    free(info->disks);
    for (size_t i = 0; i < info->naddrs; i++) {
        free(info->addrs[i].ifname);
        free(info->addrs[i].mac);
        free(info->addrs[i].family);
        free(info->addrs[i].address);
    }
    free(info->addrs);
    free(info->agent_note);
    memset(info, 0, sizeof *info);
}
