/* cmd_host.c - qvm host: the memory budget, the ZFS ARC and the accelerator */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "core/memory.h"

static json_object *u64(uint64_t v)
{
    return json_object_new_int64((int64_t)v);
}

static void print_json(const struct qvm_host_info *h)
{
    const struct qvm_mem_budget *b = &h->budget;
    json_object *o = json_object_new_object();
    json_object *mem = json_object_new_object();
    json_object_object_add(mem, "total", u64(b->total));
    json_object_object_add(mem, "reserve", u64(b->reserve));
    json_object_object_add(mem, "vm_overhead", u64(b->overhead));
    json_object_object_add(mem, "tcg_overhead", u64(b->tcg_overhead));
    json_object_object_add(mem, "committed", u64(b->committed));
    json_object_object_add(mem, "free", u64(h->free));
    json_object *vms = json_object_new_array();
    for (size_t i = 0; i < b->nvms; i++) {
        json_object *v = json_object_new_object();
        json_object_object_add(v, "name", json_object_new_string(b->vms[i].name));
        json_object_object_add(v, "memory_mib", u64(b->vms[i].memory_mib));
        json_object_object_add(v, "bytes", u64(b->vms[i].bytes));
        json_object_object_add(v, "accel", json_object_new_string(b->vms[i].tcg ? "tcg" : "kvm"));
        json_object_object_add(v, "pid", json_object_new_int((int)b->vms[i].pid));
        json_object_array_add(vms, v);
    }
    json_object_object_add(mem, "vms", vms);
    json_object_object_add(o, "memory", mem);
    json_object *arc = json_object_new_object();
    json_object_object_add(arc, "present", json_object_new_boolean(h->arc.present));
    json_object_object_add(arc, "param", json_object_new_string(h->arc_param));
    json_object_object_add(arc, "share_pct", json_object_new_int((int)b->arc_share));
    if (h->arc.present) {
        json_object_object_add(arc, "current", u64(h->arc.current));
        json_object_object_add(arc, "admin", u64(h->arc.admin));
        json_object_object_add(arc, "managed", json_object_new_boolean(h->arc.managed));
        json_object_object_add(arc, "target", h->arc_target ? u64(h->arc_target) : NULL);
    }
    json_object_object_add(o, "arc", arc);
    json_object *acc = json_object_new_object();
    json_object_object_add(acc, "name", json_object_new_string(h->accel));
    json_object_object_add(acc, "note", h->accel_note[0] ? json_object_new_string(h->accel_note)
                                                         : NULL);
    json_object_object_add(o, "accelerator", acc);
    cli_print_json(o);
}

/* "24 GiB (25769803776 bytes)" for ARC values, which admins compare with
 * what they wrote in bytes. */
static void arc_value(uint64_t v, char *buf, size_t len)
{
    char h[32];
    qvm_memory_format(v, h, sizeof h);
    snprintf(buf, len, "%s (%" PRIu64 ")", h, v);
}

static void print_text(const struct qvm_host_info *h)
{
    const struct qvm_mem_budget *b = &h->budget;
    char t[32], r[32], ov[32], tov[32], c[32], f[32];
    qvm_memory_format(b->total, t, sizeof t);
    qvm_memory_format(b->reserve, r, sizeof r);
    qvm_memory_format(b->overhead, ov, sizeof ov);
    qvm_memory_format(b->tcg_overhead, tov, sizeof tov);
    qvm_memory_format(b->committed, c, sizeof c);
    qvm_memory_format(h->free, f, sizeof f);
    printf("Memory\n");
    printf("  total          %s (MemTotal)\n", t);
    printf("  host reserve   %s\n", r);
    printf("  QEMU overhead  %s per running VM, %s more under TCG\n", ov, tov);
    printf("  committed      %s by %zu running VM%s\n", c, b->nvms, b->nvms == 1 ? "" : "s");
    for (size_t i = 0; i < b->nvms; i++) {
        char v[32];
        qvm_memory_format(b->vms[i].bytes, v, sizeof v);
        printf("    %-20s %s (%" PRIu64 " MiB + overhead%s)\n", b->vms[i].name, v,
               b->vms[i].memory_mib, b->vms[i].tcg ? " with TCG" : "");
    }
    printf("  free for VMs   %s\n", f);
    printf("ZFS ARC\n");
    if (!h->arc.present) {
        printf("  no ZFS module (%s absent): qvm leaves the ARC alone\n", h->arc_param);
    } else {
        char cur[64], adm[64], tgt[96];
        arc_value(h->arc.current, cur, sizeof cur);
        arc_value(h->arc.admin, adm, sizeof adm);
        if (h->arc_target)
            arc_value(h->arc_target, tgt, sizeof tgt);
        else
            snprintf(tgt, sizeof tgt, "none (no VM runs: the administrator's value applies)");
        printf("  zfs_arc_max    %s%s\n", h->arc.current ? cur : "0 (ZFS's default)",
               h->arc.managed ? ", set by qvm" : "");
        printf("  administrator  %s\n", h->arc.admin ? adm : "0 (ZFS's default)");
        printf("  qvm's target   %s\n", tgt);
        printf("  kept for ARC   at least %u%% of the memory not given to VMs\n", b->arc_share);
    }
    printf("Accelerator      %s%s%s\n", h->accel, h->accel_note[0] ? ": " : "", h->accel_note);
}

static int run_host(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "settle", no_argument, NULL, 's' }, CLI_COMMON_OPTIONS, { 0 },
    };
    bool settle = false;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's')
            settle = true;
        else if (!cli_common_option(cli, c, optarg))
            return cli_usage(&cmd_host, "unknown option");
    }
    if (argc - optind != 0)
        return cli_usage(&cmd_host, "host takes no arguments");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    if (settle && qvm_memory_settle_now(&cli->ctx, &err) < 0) {
        cli_close(cli);
        return cli_fail("setting the ZFS ARC limit", &err);
    }
    struct qvm_host_info h;
    int r = qvm_host_info(&cli->ctx, &h, &err);
    cli_close(cli);
    if (r < 0)
        return cli_fail("reading the host's memory budget", &err);
    if (cli->json)
        print_json(&h);
    else
        print_text(&h);
    qvm_host_info_release(&h);
    return 0;
}

const struct cli_command cmd_host = {
    .name = "host",
    .run = run_host,
    .summary = "the host's memory budget, ZFS ARC limit and accelerator",
    .help =
        "Usage: qvm host [--settle] [--json]\n"
        "\n"
        "Shows what qvm knows about this host: the memory budget that 'qvm start'\n"
        "and 'qvm up' admit VMs against, the ZFS ARC limit, and the accelerator.\n"
        "\n"
        "Memory admission. A VM starts only if\n"
        "    MemTotal - reserve - (memory + overhead of each running VM)\n"
        "leaves room for its own memory plus the overhead; otherwise the command\n"
        "fails with the numbers, and --force starts it anyway. MemTotal comes from\n"
        "/proc/meminfo. The overhead stands for QEMU's own memory: vm-overhead\n"
        "(default 192 MiB: device emulation, I/O buffers, allocator arenas) for\n"
        "every VM, and tcg-overhead more for a VM run under TCG, whose translation\n"
        "cache QEMU sizes min(1 GiB, host RAM / 8) and fills as the guest runs\n"
        "(846 MiB of it after a Debian boot to cloud-init). The check holds a\n"
        "host-wide lock until QEMU runs, so two starts are never admitted into\n"
        "the same free memory.\n"
        "\n"
        "ZFS ARC. Where the zfs module is loaded, qvm sets its zfs_arc_max as VMs\n"
        "start and stop, so that the ARC gives the VMs and the host reserve their\n"
        "memory but keeps at least arc-share (default 20%) of the memory not given\n"
        "to VMs:\n"
        "    max(total - VMs - reserve, arc-share x (total - VMs))\n"
        "rounded down to a MiB, at least what ZFS accepts (64 MiB, above c_min),\n"
        "and never above the administrator's own lower limit. The limit is lowered\n"
        "before a VM's QEMU starts and raised after one stops. When no VM runs,\n"
        "the administrator's own value is restored: qvm remembers it in\n"
        "/var/lib/qvm/arc.json the first time it changes the limit, and a value\n"
        "someone writes meanwhile becomes the administrator's value. Without the\n"
        "zfs module, qvm touches nothing and says so here.\n"
        "\n"
        "Configuration, in /etc/qvm/qvm.conf (sizes in MiB as the qvm file's memory,\n"
        "or with a unit: 512M, 2G, 1.5G):\n"
        "    host:\n"
        "      reserve: 2G         # kept for the host (default 1G)\n"
        "      arc-share: 20%      # default 20%\n"
        "      vm-overhead: 192M   # per running VM (default 192M)\n"
        "      tcg-overhead: 1G    # more per VM under TCG (default min(1G, RAM/8))\n"
        "\n"
        "Options:\n"
        "  --settle  set the ARC limit for the VMs running now first (after a VM's\n"
        "            QEMU died on its own, or qvm was killed during a start)\n"
        "  --json    an object: memory {total, reserve, vm_overhead, tcg_overhead,\n"
        "            committed, free (bytes), vms [{name, memory_mib, bytes, accel,\n"
        "            pid}]}, arc\n"
        "            {present, param, share_pct, and when present: current, admin,\n"
        "            managed, target (null when no VM runs)}, accelerator {name,\n"
        "            note}\n"
        "\n"
        "Environment:\n"
        "  QVM_SYSFS_ROOT  look for /sys and /proc/spl under this directory (tests)\n"
        "\n"
        "Examples:\n"
        "  qvm host\n"
        "  qvm host --json | jq .memory.free\n",
};
