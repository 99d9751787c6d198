/* cmd_info.c - qvm info: one VM, as an aligned key: value list or --json */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/net.h"
#include "core/vm.h"
#include "core/info.h"
#include "core/monitor.h"
#include "util/strbuf.h"

#define STR(x) #x
#define XSTR(x) STR(x)

struct kv {
    const char *key;
    char *value;
};

struct kvs {
    struct kv v[64];
    size_t n;
};

static void add(struct kvs *l, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add(struct kvs *l, const char *key, const char *fmt, ...)
{
    if (l->n == sizeof l->v / sizeof l->v[0])
        return;
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vaddf(&sb, fmt, ap);
    va_end(ap);
    l->v[l->n++] = (struct kv){ key, strbuf_detach(&sb, NULL) };
}

static void print_kvs(struct kvs *l)
{
    int width = 0;
    for (size_t i = 0; i < l->n; i++)
        if ((int)strlen(l->v[i].key) > width)
            width = (int)strlen(l->v[i].key);
    for (size_t i = 0; i < l->n; i++) {
        printf("%s:%*s %s\n", l->v[i].key, width - (int)strlen(l->v[i].key), "", l->v[i].value);
        free(l->v[i].value);
    }
}

static void human_duration(long s, char *buf, size_t len)
{
    if (s >= 86400)
        snprintf(buf, len, "%ldd %ldh %02ldm", s / 86400, s % 86400 / 3600, s % 3600 / 60);
    else if (s >= 3600)
        snprintf(buf, len, "%ldh %02ldm %02lds", s / 3600, s % 3600 / 60, s % 60);
    else if (s >= 60)
        snprintf(buf, len, "%ldm %02lds", s / 60, s % 60);
    else
        snprintf(buf, len, "%lds", s);
}

static const char *size_or(int64_t v, char *buf, size_t len)
{
    if (v < 0)
        return "?";
    cli_human_size((unsigned long long)v, buf, len);
    return buf;
}

/* Each NIC as info shows it, with its lease on a qvm network. */
struct nic_view {
    const char *type;          /* user, none, network, bridge */
    const char *source;
    const char *model;
    const char *mac;
    char ip[16];               /* "" when none */
};

static size_t nic_views(struct qvm_ctx *ctx, struct qvm_vm *vm, struct nic_view *v)
{
    size_t n = qvm_spec_nic_count(&vm->spec);
    for (size_t i = 0; i < n; i++) {
        const struct qvm_net_spec *nic = qvm_spec_nic(&vm->spec, i);
        v[i] = (struct nic_view){
            .type = nic->type == QVM_NET_NONE ? "none" : nic->type == QVM_NET_NETWORK ? "network"
                  : nic->type == QVM_NET_BRIDGE ? "bridge" : "user",
            .source = nic->source, .model = nic->model, .mac = qvm_vm_nic_mac_of(vm, i),
        };
        struct qvm_network net;
        if (nic->type == QVM_NET_NETWORK && qvm_net_load(ctx, nic->source, &net, NULL) == 0) {
            if (!qvm_net_lease_of(&net, vm->spec.name, v[i].ip))
                v[i].ip[0] = '\0';
            qvm_net_release(&net);
        }
    }
    return n;
}

static void print_human(const struct qvm_vm_info *in, const struct nic_view *nics, size_t nnics)
{
    const struct qvm_vm_status *st = &in->st;
    const struct qvm_vm *vm = &st->vm;
    struct kvs l = { .n = 0 };
    char a[32], b[32];
    add(&l, "name", "%s", st->name);
    add(&l, "state", "%s%s", st->state, st->exited ? " (its QEMU exited without qvm stop)" : "");
    if (st->pid > 0)
        add(&l, "pid", "%d", (int)st->pid);
    if (st->uptime_s >= 0) {
        human_duration(st->uptime_s, a, sizeof a);
        add(&l, "uptime", "%s", a);
    }
    add(&l, "accelerator", "%s", in->accel);
    cli_human_size(vm->spec.memory_mib << 20, a, sizeof a);
    if (in->run_memory_mib && in->run_memory_mib != vm->spec.memory_mib) {
        cli_human_size(in->run_memory_mib << 20, b, sizeof b);
        add(&l, "memory", "%s (%s from the next start)", b, a);
    } else {
        add(&l, "memory", "%s", a);
    }
    if (in->run_vcpus && in->run_vcpus != vm->spec.vcpus)
        add(&l, "vcpus", "%u (%u from the next start)", in->run_vcpus, vm->spec.vcpus);
    else
        add(&l, "vcpus", "%u", vm->spec.vcpus);
    for (size_t i = 0; i < in->ndisks; i++) {
        const struct qvm_info_disk *d = &in->disks[i];
        char alloc[48];
        if (d->is_block)
            snprintf(alloc, sizeof alloc, "block device");
        else
            snprintf(alloc, sizeof alloc, "%s allocated", size_or(d->allocated, b, sizeof b));
        if (d->read_only)
            add(&l, "seed", "%s (%s, %s, read-only)", d->path, d->format,
                size_or(d->virtual_size, a, sizeof a));
        else
            add(&l, "disk", "%s %s (%s, %s virtual, %s)", d->name, d->path, d->format,
                size_or(d->virtual_size, a, sizeof a), alloc);
    }
    for (size_t i = 0; i < nnics; i++) {
        const struct nic_view *v = &nics[i];
        char what[96];
        snprintf(what, sizeof what, "%s%s%s", v->type, v->source ? " " : "", v->source ? v->source : "");
        if (v->ip[0])
            add(&l, i ? "nic" : "network", "%s (%s, lease %s)", what, v->model ? v->model : "virtio", v->ip);
        else if (i)
            add(&l, "nic", "%s (%s)", what, v->model ? v->model : "virtio");
        else
            add(&l, "network", "%s", what);
        if (v->mac && strcmp(v->type, "none") != 0)
            add(&l, "mac", "%s", v->mac);
    }
    for (size_t i = 0; i < in->nforwards; i++)
        add(&l, "forward", "%s %s:%d -> guest port %d%s", in->forwards[i].protocol,
            in->forwards[i].host_addr, in->forwards[i].host_port, in->forwards[i].guest_port,
            in->forwards[i].guest_port == 22 ? " (ssh)" : "");
    if (st->pid > 0) {
        for (size_t i = 0; i < in->naddrs; i++)
            add(&l, "address", "%s/%d (%s)", in->addrs[i].address, in->addrs[i].prefix,
                in->addrs[i].ifname);
        if (!in->naddrs)
            add(&l, "address", "- (%s)", in->agent_note ? in->agent_note
                                                          : "the guest reports none");
    }
    add(&l, "image", "%s@%s", vm->image ? vm->image : "?", vm->version ? vm->version : "?");
    add(&l, "pool", "%s", vm->pool);
    if (vm->created > 0) {
        time_t t = (time_t)vm->created;
        struct tm tm;
        strftime(a, sizeof a, "%Y-%m-%d %H:%M:%S %z", localtime_r(&t, &tm));
        add(&l, "created", "%s", a);
    }
    if (vm->uuid)
        add(&l, "uuid", "%s", vm->uuid);
    print_kvs(&l);
}

static json_object *int_or_null(int64_t v, bool valid)
{
    return valid ? json_object_new_int64(v) : NULL;
}

static json_object *to_json(const struct qvm_vm_info *in, const struct nic_view *nics, size_t nnics)
{
    const struct qvm_vm_status *st = &in->st;
    const struct qvm_vm *vm = &st->vm;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(st->name));
    json_object_object_add(o, "state", json_object_new_string(st->state));
    json_object_object_add(o, "exited", json_object_new_boolean(st->exited));
    json_object_object_add(o, "pid", int_or_null(st->pid, st->pid > 0));
    json_object_object_add(o, "uptime", int_or_null(st->uptime_s, st->uptime_s >= 0));
    json_object_object_add(o, "accelerator", json_object_new_string(in->accel));
    json_object_object_add(o, "memory_mib", json_object_new_int64((int64_t)vm->spec.memory_mib));
    json_object_object_add(o, "vcpus", json_object_new_int((int)vm->spec.vcpus));
    json_object_object_add(o, "running_memory_mib",
                           int_or_null((int64_t)in->run_memory_mib, in->run_memory_mib > 0));
    json_object_object_add(o, "running_vcpus", int_or_null(in->run_vcpus, in->run_vcpus > 0));
    json_object *disks = json_object_new_array();
    for (size_t i = 0; i < in->ndisks; i++) {
        const struct qvm_info_disk *d = &in->disks[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "name", json_object_new_string(d->name));
        json_object_object_add(j, "path", json_object_new_string(d->path));
        json_object_object_add(j, "format", json_object_new_string(d->format));
        json_object_object_add(j, "read_only", json_object_new_boolean(d->read_only));
        json_object_object_add(j, "block_device", json_object_new_boolean(d->is_block));
        json_object_object_add(j, "virtual_size", int_or_null(d->virtual_size, d->virtual_size >= 0));
        json_object_object_add(j, "allocated", int_or_null(d->allocated, d->allocated >= 0));
        json_object_array_add(disks, j);
    }
    json_object_object_add(o, "disks", disks);
    json_object *net = json_object_new_object();
    json_object_object_add(net, "type", json_object_new_string(nics[0].type));
    json_object_object_add(net, "source", nics[0].source ? json_object_new_string(nics[0].source) : NULL);
    json_object_object_add(net, "lease", nics[0].ip[0] ? json_object_new_string(nics[0].ip) : NULL);
    json_object_object_add(net, "model", vm->spec.net.model ?
                                             json_object_new_string(vm->spec.net.model) : NULL);
    json_object_object_add(net, "mac", vm->mac ? json_object_new_string(vm->mac) : NULL);
    json_object *fw = json_object_new_array();
    for (size_t i = 0; i < in->nforwards; i++) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "protocol", json_object_new_string(in->forwards[i].protocol));
        json_object_object_add(j, "host_address", json_object_new_string(in->forwards[i].host_addr));
        json_object_object_add(j, "host_port", json_object_new_int(in->forwards[i].host_port));
        json_object_object_add(j, "guest_port", json_object_new_int(in->forwards[i].guest_port));
        json_object_array_add(fw, j);
    }
    json_object_object_add(net, "forwards", fw);
    json_object *addrs = NULL;
    if (in->agent_answered) {
        addrs = json_object_new_array();
        for (size_t i = 0; i < in->naddrs; i++) {
            const struct qvm_info_addr *a = &in->addrs[i];
            json_object *j = json_object_new_object();
            json_object_object_add(j, "interface", json_object_new_string(a->ifname));
            json_object_object_add(j, "mac", a->mac ? json_object_new_string(a->mac) : NULL);
            json_object_object_add(j, "family", json_object_new_string(a->family));
            json_object_object_add(j, "address", json_object_new_string(a->address));
            json_object_object_add(j, "prefix", int_or_null(a->prefix, a->prefix >= 0));
            json_object_array_add(addrs, j);
        }
    }
    json_object_object_add(net, "guest_addresses", addrs);
    json_object_object_add(net, "guest_agent_note", in->agent_note ?
                                                        json_object_new_string(in->agent_note) : NULL);
    json_object_object_add(o, "network", net);
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < nnics; i++) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "type", json_object_new_string(nics[i].type));
        json_object_object_add(j, "source", nics[i].source ? json_object_new_string(nics[i].source) : NULL);
        json_object_object_add(j, "model", nics[i].model ? json_object_new_string(nics[i].model) : NULL);
        json_object_object_add(j, "mac", nics[i].mac ? json_object_new_string(nics[i].mac) : NULL);
        json_object_object_add(j, "lease", nics[i].ip[0] ? json_object_new_string(nics[i].ip) : NULL);
        json_object_array_add(arr, j);
    }
    json_object_object_add(o, "nics", arr);
    json_object_object_add(o, "pool", json_object_new_string(vm->pool));
    json_object_object_add(o, "image", vm->image ? json_object_new_string(vm->image) : NULL);
    json_object_object_add(o, "version", vm->version ? json_object_new_string(vm->version) : NULL);
    json_object_object_add(o, "uuid", vm->uuid ? json_object_new_string(vm->uuid) : NULL);
    json_object *created = NULL;
    if (vm->created > 0) {
        char buf[32];
        time_t t = (time_t)vm->created;
        struct tm tm;
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
        created = json_object_new_string(buf);
    }
    json_object_object_add(o, "created", created);
    return o;
}

static int run_info(struct cli *cli, int argc, char **argv)
{
    int nargs = cli_operand_count(cli, argc, argv);
    if (nargs < 0)
        return cli_usage(&cmd_info, "unknown option");
    if (nargs != 1)
        return cli_usage(&cmd_info, "expected one VM name");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    struct qvm_vm_info info;
    int r = qvm_vm_info(&cli->ctx, argv[optind], &info, &err);
    struct nic_view nics[QVM_SPEC_MAX_NICS];
    size_t nnics = r == 0 ? nic_views(&cli->ctx, &info.st.vm, nics) : 0;
    cli_close(cli);
    if (r < 0)
        return cli_fail("showing virtual machine", &err);
    if (cli->json)
        cli_print_json(to_json(&info, nics, nnics));
    else
        print_human(&info, nics, nnics);
    qvm_vm_info_release(&info);
    return 0;
}

const struct cli_command cmd_info = {
    .name = "info",
    .run = run_info,
    .summary = "show one VM: state, resources, disks, network, addresses",
    .help =
        "Usage: qvm info [--json] NAME\n"
        "\n"
        "Shows VM NAME as an aligned 'key: value' list:\n"
        "  state        stopped, or what QEMU's monitor reports: running, paused, ...\n"
        "  pid, uptime  of its QEMU process\n"
        "  accelerator  kvm or tcg as the running QEMU reports it; when stopped, as\n"
        "               defined (auto: KVM where usable)\n"
        "  memory,      as defined; for a running VM what QEMU has, with the defined\n"
        "  vcpus        value in brackets when an edit applies from the next start\n"
        "  disk, seed   each disk: path, format, virtual size, bytes allocated on\n"
        "               the host (for an overlay, its own blocks only)\n"
        "  network,     the first NIC: user, none, network NAME or bridge NAME, its\n"
        "  mac, forward lease on a qvm network, the MAC address, the ports forwarded\n"
        "               from the host (SSH: 127.0.0.1:PORT -> 22)\n"
        "  nic          each further NIC, as network\n"
        "  address      the guest's addresses, from its guest agent if it answers\n"
        "               within " XSTR(QVM_INFO_AGENT_TIMEOUT_MS) " ms (loopback left out)\n"
        "  image, pool, the image version its disk was cloned from, where it lives,\n"
        "  created,     when it was provisioned, its identity\n"
        "  uuid\n"
        "\n"
        "If another qvm command is working on the VM, waits up to " XSTR(QVM_LOCK_TIMEOUT_S) " s for it\n"
        "(QVM_LOCK_TIMEOUT=SECONDS changes that), then fails naming that command.\n"
        "\n"
        "Options:\n"
        "  --json   one object: name, state, exited, pid, uptime, accelerator,\n"
        "           memory_mib, vcpus, running_memory_mib, running_vcpus, disks[]\n"
        "           (name, path, format, read_only, block_device, virtual_size,\n"
        "           allocated), network (the first NIC: type, source, lease, model, mac,\n"
        "           forwards[], guest_addresses[] or null when the agent did not\n"
        "           answer, guest_agent_note), nics[] (type, source, model, mac,\n"
        "           lease), pool, image, version, uuid, created (ISO 8601, UTC)\n",
};
