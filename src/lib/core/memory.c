/* memory.c - memory admission and the ARC as VMs start and stop (see
 * memory.h). The arithmetic is pure and unit-tested (tests/unit/
 * test_memory.c); the rest reads /proc/meminfo, qvm.conf and the running
 * VMs, and holds the host lock. */
#include "memory.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lifecycle.h"
#include "core/pools.h"
#include "core/process.h"
#include "runtime/accel.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/strbuf.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)
#define MAX_SIZE (UINT64_C(64) << 40)    /* 64 TiB */
#define MAX_NAMES_SHOWN 8                /* running VMs named in a refusal */

static bool force_admission;

void qvm_memory_set_force(bool force)
{
    force_admission = force;
}

/* ---- pure arithmetic and parsing ------------------------------------------- */

static int bad_size(const char *text, struct qvm_error *err)
{
    return qvm_err(err, EINVAL, "invalid size '%.40s': expected MiB as the qvm file's memory "
                   "writes it (2048) or a number with a unit (512M, 2G, 1.5G)", text);
}

int qvm_memory_parse_size(const char *text, uint64_t *ret_bytes, struct qvm_error *err)
{
    const char *p = text;
    size_t ni = strspn(p, "0123456789"), nf = 0;
    if (p[ni] == '.')
        nf = strspn(p + ni + 1, "0123456789");
    const char *unit = p + ni + (p[ni] == '.' ? 1 + nf : 0);
    if ((ni == 0 && nf == 0) || (p[ni] == '.' && nf == 0) || ni > 9 || nf > 9)
        return bad_size(text, err);
    uint64_t mult = MIB;
    if (*unit) {
        char u = (char)(*unit | 0x20);
        mult = u == 'm' ? MIB : u == 'g' ? GIB : u == 't' ? GIB << 10 : 0;
        const char *rest = unit + 1;
        if (!mult || !(*rest == '\0' || strcmp(rest, "iB") == 0 || strcmp(rest, "B") == 0))
            return bad_size(text, err);
    }
    uint64_t whole = 0, frac = 0, scale = 1;
    for (size_t i = 0; i < ni; i++)
        whole = whole * 10 + (uint64_t)(p[i] - '0');
    for (size_t i = 0; i < nf; i++) {
        frac = frac * 10 + (uint64_t)(p[ni + 1 + i] - '0');
        scale *= 10;
    }
    /* 10^9 * 2^40 fits in 128 bits with room to spare. */
    unsigned __int128 bytes = (unsigned __int128)whole * mult
                            + ((unsigned __int128)frac * mult + scale - 1) / scale;
    bytes = (bytes + MIB - 1) / MIB * MIB;
    if (bytes > MAX_SIZE)
        return qvm_err(err, ERANGE, "size '%.40s' is too large (at most 64 TiB)", text);
    *ret_bytes = (uint64_t)bytes;
    return 0;
}

int qvm_memory_parse_share(const char *text, unsigned *ret_pct, struct qvm_error *err)
{
    size_t n = strspn(text, "0123456789");
    const char *rest = text + n;
    if (n == 0 || n > 3 || !(*rest == '\0' || strcmp(rest, "%") == 0))
        return qvm_err(err, EINVAL, "invalid share '%.40s': expected a whole percentage "
                       "0%%..100%% (20%%)", text);
    unsigned v = (unsigned)strtoul(text, NULL, 10);
    if (v > 100)
        return qvm_err(err, ERANGE, "share '%.40s' is more than 100%%", text);
    *ret_pct = v;
    return 0;
}

void qvm_memory_format(uint64_t bytes, char *buf, size_t len)
{
    if (bytes < GIB) {
        snprintf(buf, len, "%" PRIu64 " MiB", bytes / MIB);
        return;
    }
    /* Tenths, rounded down: a budget never looks roomier than it is. */
    uint64_t tenths = (uint64_t)((unsigned __int128)bytes * 10 / GIB);
    if (tenths % 10)
        snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " GiB", tenths / 10, tenths % 10);
    else
        snprintf(buf, len, "%" PRIu64 " GiB", tenths / 10);
}

uint64_t qvm_memory_free(const struct qvm_mem_budget *b)
{
    uint64_t used = b->reserve + b->committed;
    if (used < b->reserve || used >= b->total)     /* overflow, or nothing left */
        return 0;
    return b->total - used;
}

uint64_t qvm_memory_overhead(const struct qvm_mem_budget *b, bool tcg)
{
    return b->overhead + (tcg ? b->tcg_overhead : 0);
}

uint64_t qvm_memory_tcg_default(uint64_t total)
{
    uint64_t eighth = (total / 8 + MIB - 1) / MIB * MIB;
    return eighth < QVM_MEM_TCG_CACHE_MAX ? eighth : QVM_MEM_TCG_CACHE_MAX;
}

int qvm_memory_check(const struct qvm_mem_budget *b, const char *name, uint64_t memory_mib,
                     bool tcg, struct qvm_error *err)
{
    uint64_t overhead = qvm_memory_overhead(b, tcg);
    uint64_t need = memory_mib * MIB + overhead;
    uint64_t free_b = qvm_memory_free(b);
    if (need <= free_b)
        return 0;
    char mem[32], ovh[32], total[32], reserve[32], used[32], freestr[32];
    snprintf(mem, sizeof mem, "%" PRIu64 " MiB", memory_mib);
    qvm_memory_format(overhead, ovh, sizeof ovh);
    qvm_memory_format(b->total, total, sizeof total);
    qvm_memory_format(b->reserve, reserve, sizeof reserve);
    qvm_memory_format(b->committed, used, sizeof used);
    qvm_memory_format(free_b, freestr, sizeof freestr);
    struct strbuf vms = STRBUF_INIT;
    if (b->nvms == 0) {
        strbuf_addstr(&vms, "no VMs running");
    } else {
        strbuf_addf(&vms, "running VMs use %s (", used);
        for (size_t i = 0; i < b->nvms && i < MAX_NAMES_SHOWN; i++)
            strbuf_addf(&vms, "%s%s", i ? ", " : "", b->vms[i].name);
        if (b->nvms > MAX_NAMES_SHOWN)
            strbuf_addf(&vms, " and %zu more", b->nvms - MAX_NAMES_SHOWN);
        strbuf_addstr(&vms, ")");
    }
    int r = qvm_err(err, ENOMEM, "cannot start '%s' (%s + %s QEMU overhead%s): host has %s, "
                    "reserve %s, %s; %s free (--force starts it anyway)", name, mem, ovh,
                    tcg ? " with TCG" : "", total, reserve, vms.buf, freestr);
    strbuf_release(&vms);
    return r;
}

int qvm_meminfo_total(const char *path, uint64_t *ret_bytes, struct qvm_error *err)
{
    char *data = NULL;
    size_t len;
    int r = qvm_read_file(path, 1u << 20, &data, &len, err);
    if (r < 0)
        return r;
    /* "MemTotal:       24684084 kB" */
    r = qvm_err(err, EINVAL, "%s has no MemTotal line in kB", path);
    for (char *line = data; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        unsigned long long kb;
        char unit[4];
        if (strncmp(line, "MemTotal:", 9) != 0)
            continue;
        if (sscanf(line + 9, " %llu %3s", &kb, unit) == 2 && strcmp(unit, "kB") == 0 &&
            kb > 0 && kb < (UINT64_MAX >> 10)) {
            *ret_bytes = (uint64_t)kb << 10;
            qvm_err_clear(err);
            r = 0;
        }
        break;
    }
    free(data);
    return r;
}

/* ---- the host ---------------------------------------------------------------- */

int qvm_host_config_load(const struct qvm_paths *paths, struct qvm_host_config *ret,
                         struct qvm_error *err)
{
    ret->reserve = QVM_MEM_RESERVE_DEFAULT;
    ret->arc_share = QVM_ARC_SHARE_DEFAULT;
    ret->vm_overhead = QVM_MEM_OVERHEAD_DEFAULT;
    ret->tcg_overhead = 0;
    ret->tcg_overhead_set = false;
    struct qvm_config cfg;
    int r = qvm_config_load(paths, &cfg, err);
    if (r < 0)
        return r;
    /* qvm_config_load checked these; a failure here cannot happen. */
    if (cfg.host_reserve)
        r = qvm_memory_parse_size(cfg.host_reserve, &ret->reserve, err);
    if (r == 0 && cfg.host_arc_share)
        r = qvm_memory_parse_share(cfg.host_arc_share, &ret->arc_share, err);
    if (r == 0 && cfg.host_vm_overhead)
        r = qvm_memory_parse_size(cfg.host_vm_overhead, &ret->vm_overhead, err);
    if (r == 0 && cfg.host_tcg_overhead) {
        r = qvm_memory_parse_size(cfg.host_tcg_overhead, &ret->tcg_overhead, err);
        ret->tcg_overhead_set = true;
    }
    qvm_config_release(&cfg);
    return r;
}

void qvm_memory_budget_release(struct qvm_mem_budget *b)
{
    for (size_t i = 0; i < b->nvms; i++)
        free(b->vms[i].name);
    free(b->vms);
    memset(b, 0, sizeof *b);
}

/* runtime/qemu.c gives the accelerator as "-machine TYPE,accel=tcg";
 * libvirt as "-accel tcg". */
static bool runs_tcg(pid_t pid)
{
    char *cmd = qvm_process_cmdline(pid, 64 << 10);
    bool tcg = cmd && (strstr(cmd, "accel=tcg") || strstr(cmd, "-accel tcg"));
    free(cmd);
    return tcg;
}

/* The accelerator VM will get, as qvm_vm_start_qemu resolves it. */
static bool will_run_tcg(const struct qvm_vm *vm)
{
    const char *accel = "kvm";
    struct qvm_accel_probe probe = { .sysfs_root = getenv("QVM_SYSFS_ROOT") };
    if (qvm_accel_resolve(vm->spec.accel ? vm->spec.accel : "auto", &probe, &accel, NULL, 0,
                          NULL) < 0)
        return false;       /* QEMU will not start anyway; the start says why */
    return strcmp(accel, "tcg") == 0;
}

int qvm_memory_budget(struct qvm_ctx *ctx, const char *exclude, struct qvm_mem_budget *ret,
                      struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    struct qvm_host_config hc;
    int r = qvm_meminfo_total(QVM_MEMINFO, &ret->total, err);
    if (r == 0)
        r = qvm_host_config_load(&ctx->paths, &hc, err);
    if (r < 0)
        return r;
    ret->reserve = hc.reserve;
    ret->overhead = hc.vm_overhead;
    ret->tcg_overhead = hc.tcg_overhead_set ? hc.tcg_overhead : qvm_memory_tcg_default(ret->total);
    ret->arc_share = hc.arc_share;
    char **names;
    size_t n;
    r = qvm_vm_list_names(ctx, &names, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        struct qvm_vm vm;
        struct qvm_error e = { 0 };
        if ((exclude && strcmp(names[i], exclude) == 0) || qvm_vm_load(ctx, names[i], &vm, &e) < 0) {
            free(names[i]);
            continue;
        }
        pid_t pid = qvm_vm_pid(&vm);
        if (pid > 0) {
            ret->vms = xrealloc(ret->vms, (ret->nvms + 1) * sizeof *ret->vms);
            struct qvm_mem_vm *v = &ret->vms[ret->nvms++];
            v->name = names[i];
            v->memory_mib = vm.spec.memory_mib;
            v->tcg = runs_tcg(pid);
            v->bytes = vm.spec.memory_mib * MIB + qvm_memory_overhead(ret, v->tcg);
            v->pid = pid;
            ret->committed += v->bytes;
        } else {
            free(names[i]);
        }
        qvm_vm_release(&vm);
    }
    free(names);
    return 0;
}

static const char *sysfs_root(void)
{
    const char *r = getenv("QVM_SYSFS_ROOT");
    return r ? r : "";
}

static char *state_file(struct qvm_ctx *ctx)
{
    return xasprintf("%s/arc.json", ctx->paths.state_dir);
}

static bool arc_present(void)
{
    char *p = qvm_arc_param_path(sysfs_root());
    bool present = qvm_path_exists(p);
    free(p);
    return present;
}

static int host_lock(struct qvm_ctx *ctx, struct qvm_error *err)
{
    char *path = xasprintf("%s/host-memory.lock", ctx->paths.lock_dir);
    int r = qvm_lock_path(path, true, "the host's memory budget", err);
    free(path);
    return r;
}

/* Sets the ARC for NVMS VMs using COMMITTED bytes; says what changed. */
static int arc_set(struct qvm_ctx *ctx, const struct qvm_mem_budget *b, uint64_t committed,
                   size_t nvms, struct qvm_error *err)
{
    struct qvm_arc_input in = {
        .total = b->total, .reserve = b->reserve, .committed = committed,
        .share_pct = b->arc_share,
    };
    char *sf = state_file(ctx);
    struct qvm_arc_status before, after;
    int r = qvm_arc_status(sysfs_root(), sf, &before, err);
    if (r == 0)
        r = qvm_arc_apply(sysfs_root(), sf, &in, nvms, &after, err);
    free(sf);
    if (r < 0 || !after.present || after.current == before.current)
        return r;
    char v[32];
    qvm_memory_format(after.current, v, sizeof v);
    if (nvms == 0)
        qvm_say(ctx->ui, "ZFS ARC limit (zfs_arc_max) restored to the administrator's %s",
                after.current ? v : "0 (ZFS's default)");
    else
        qvm_say(ctx->ui, "ZFS ARC limit (zfs_arc_max) set to %s for %zu running VM%s", v, nvms,
                nvms == 1 ? "" : "s");
    return 0;
}

/* The ARC for the VMs running now; host lock held. */
static int settle_locked(struct qvm_ctx *ctx, struct qvm_error *err)
{
    struct qvm_mem_budget b;
    int r = qvm_memory_budget(ctx, NULL, &b, err);
    if (r == 0)
        r = arc_set(ctx, &b, b.committed, b.nvms, err);
    qvm_memory_budget_release(&b);
    return r;
}

int qvm_memory_start_qemu(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_journal *j,
                          struct qvm_error *err)
{
    int lock = host_lock(ctx, err);
    if (lock < 0)
        return lock;
    struct qvm_mem_budget b;
    bool tcg = false;
    int r = qvm_memory_budget(ctx, vm->spec.name, &b, err);
    if (r == 0) {
        struct qvm_error e = { 0 };
        tcg = will_run_tcg(vm);
        if (qvm_memory_check(&b, vm->spec.name, vm->spec.memory_mib, tcg, &e) < 0) {
            if (force_admission)
                qvm_warn(ctx->ui, "memory admission overridden (--force): %s", e.msg);
            else
                r = qvm_err(err, e.code, "%s", e.msg);
        }
    }
    bool arc = r == 0 && arc_present();
    if (arc) {
        /* Make room before QEMU asks for it: the ARC as if the VM ran. */
        struct qvm_error e = { 0 };
        uint64_t need = vm->spec.memory_mib * MIB + qvm_memory_overhead(&b, tcg);
        if (arc_set(ctx, &b, b.committed + need, b.nvms + 1, &e) < 0)
            qvm_warn(ctx->ui, "%s", e.msg);
    }
    if (r == 0)
        r = qvm_vm_start_qemu(ctx, vm, j, err);
    if (arc) {
        struct qvm_error e = { 0 };
        if (settle_locked(ctx, &e) < 0)
            qvm_warn(ctx->ui, "%s", e.msg);
    }
    qvm_memory_budget_release(&b);
    qvm_unlock(lock);
    return r;
}

int qvm_memory_settle_now(struct qvm_ctx *ctx, struct qvm_error *err)
{
    if (!arc_present())
        return 0;
    int lock = host_lock(ctx, err);
    if (lock < 0)
        return lock;
    int r = settle_locked(ctx, err);
    qvm_unlock(lock);
    return r;
}

void qvm_memory_settle(struct qvm_ctx *ctx)
{
    struct qvm_error e = { 0 };
    if (qvm_memory_settle_now(ctx, &e) < 0)
        qvm_warn(ctx->ui, "the ZFS ARC limit could not be raised again: %s", e.msg);
}

int qvm_host_info(struct qvm_ctx *ctx, struct qvm_host_info *ret, struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    int r = qvm_memory_budget(ctx, NULL, &ret->budget, err);
    if (r < 0)
        return r;
    ret->free = qvm_memory_free(&ret->budget);
    ret->arc_param = qvm_arc_param_path(sysfs_root());
    char *sf = state_file(ctx);
    r = qvm_arc_status(sysfs_root(), sf, &ret->arc, err);
    free(sf);
    if (r == 0 && ret->arc.present && ret->budget.nvms > 0) {
        struct qvm_arc_input in = {
            .total = ret->budget.total, .reserve = ret->budget.reserve,
            .committed = ret->budget.committed, .share_pct = ret->budget.arc_share,
            .admin = ret->arc.admin, .arc_min = ret->arc.arc_min,
        };
        ret->arc_target = qvm_arc_target(&in);
    }
    struct qvm_accel_probe probe = { .sysfs_root = getenv("QVM_SYSFS_ROOT") };
    if (r == 0)
        r = qvm_accel_resolve("auto", &probe, &ret->accel, ret->accel_note,
                              sizeof ret->accel_note, err);
    if (r < 0)
        qvm_host_info_release(ret);
    return r;
}

void qvm_host_info_release(struct qvm_host_info *h)
{
    qvm_memory_budget_release(&h->budget);
    free(h->arc_param);
    h->arc_param = NULL;
}
