/* runtime_libvirt.c - provisioning and the verbs for VMs under libvirt (see
 * runtime_libvirt.h). qvm adopt is in adopt.c. */
#include "runtime_libvirt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/monitor.h"
#include "core/memory.h"
#include "core/net.h"
#include "core/pools.h"
#include "core/process.h"
#include "runtime/accel.h"
#include "runtime/domain_xml.h"
#include "runtime/libvirt.h"
#include "runtime/qemu.h"
#include "runtime/virt_install.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/subprocess.h"

#define VIRT_INSTALL_TIMEOUT_MS (5 * 60 * 1000)
#define STATE_POLL_MS 200

static bool streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

bool qvm_vm_libvirt(const struct qvm_vm *vm)
{
    return streq(vm->spec.runtime, "libvirt") || streq(vm->spec.runtime, "virt-install");
}

bool qvm_vm_name_libvirt(struct qvm_ctx *ctx, const char *name)
{
    struct qvm_vm vm;
    if (qvm_vm_load(ctx, name, &vm, NULL) < 0)
        return false;
    bool lv = qvm_vm_libvirt(&vm);
    qvm_vm_release(&vm);
    return lv;
}

static const char *uri_of(const struct qvm_vm *vm)
{
    return vm->spec.runtime_uri ? vm->spec.runtime_uri : QVM_LIBVIRT_DEFAULT_URI;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool program_in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char *copy = xstrdup(path ? path : "/usr/bin:/bin"), *save = NULL;
    bool found = false;
    for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/%s", d, prog);
        found = access(p, X_OK) == 0;
        free(p);
    }
    free(copy);
    return found;
}

static bool runtime_known(const char *rt)
{
    return streq(rt, "qemu") || streq(rt, "libvirt") || streq(rt, "virt-install");
}

int qvm_runtime_choose(struct qvm_ctx *ctx, const char *pool, const char *opt_runtime,
                       struct qvm_vm_spec *spec, struct qvm_error *err)
{
    if (opt_runtime && !runtime_known(opt_runtime))
        return qvm_err(err, EINVAL, "--runtime %s is not supported (expected qemu, libvirt or "
                       "virt-install)", opt_runtime);
    struct qvm_config cfg;
    int r = qvm_config_load(&ctx->paths, &cfg, err);
    if (r < 0)
        return r;
    const char *want = pool ? pool : cfg.default_pool;
    const struct qvm_pool_config *pc = NULL;
    for (size_t i = 0; i < cfg.npools; i++)
        if (streq(cfg.pools[i].name, want))
            pc = &cfg.pools[i];
    const char *rt = opt_runtime ? opt_runtime : spec->runtime ? spec->runtime
                   : pc && pc->runtime ? pc->runtime : "qemu";
    const char *uri = spec->runtime_uri ? spec->runtime_uri
                    : pc && pc->runtime_uri ? pc->runtime_uri : QVM_LIBVIRT_DEFAULT_URI;
    bool libvirt = !streq(rt, "qemu");
    const struct qvm_net_spec *n = &spec->net;
    if (!libvirt && spec->runtime_uri)
        r = qvm_err(err, EINVAL, "vm.runtime-uri %s is for the libvirt runtime, and VM '%s' "
                    "runs on qemu (set runtime: libvirt)", spec->runtime_uri, spec->name);
    else if (libvirt && spec->nextra_nets)
        r = qvm_err(err, ENOTSUP, "vm.network: several NICs run on qvm's own QEMU only for now "
                    "(runtime %s takes one)", rt);
    else if (!streq(rt, "virt-install") && spec->nvi_opts)
        r = qvm_err(err, EINVAL, "the qvm file's virt-install options (--%s, ...) need runtime "
                    "virt-install, not %s", spec->vi_opts[0].key, rt);
    else if (!libvirt)
        r = qvm_net_check_spec(ctx, spec, err);
    /* virt-install cannot carry the forwarded port (virt_install.c). */
    if (r == 0 && streq(rt, "virt-install") && n->type == QVM_NET_USER) {
        if (spec->net.ssh_port > 0)
            r = qvm_err(err, ENOTSUP, "vm.network.ssh-port: runtime virt-install forwards no "
                        "port (use runtime libvirt for that)");
        spec->net.ssh_port = -1;
    }
    if (r == 0) {
        /* qemu is recorded as no runtime at all: vm.json stays as before.
         * (RT and URI may point into SPEC: copied before freeing.) */
        char *new_rt = libvirt ? xstrdup(rt) : NULL, *new_uri = libvirt ? xstrdup(uri) : NULL;
        free(spec->runtime);
        free(spec->runtime_uri);
        spec->runtime = new_rt;
        spec->runtime_uri = new_uri;
    }
    qvm_config_release(&cfg);
    return r;
}

int qvm_lv_validate(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_error *err)
{
    if (streq(vm->spec.runtime, "virt-install") && !program_in_path("virt-install"))
        return qvm_err(err, ENOENT, "virt-install not found; install the virtinst package");
    struct qvm_libvirt *lv;
    int r = qvm_libvirt_open(uri_of(vm), &lv, err);
    if (r < 0)
        return r;
    char uuid[40];
    struct qvm_error e = { 0 };
    r = qvm_libvirt_lookup_name(lv, vm->spec.name, uuid, &e);
    if (r == 0)
        r = qvm_err(err, EEXIST, "libvirt (%s) already has a domain named '%s'; take it over "
                    "with: qvm adopt %s", uri_of(vm), vm->spec.name, vm->spec.name);
    else if (r == -ENOENT)
        r = 0;
    else
        r = qvm_err(err, -r, "%s", e.msg);
    qvm_libvirt_close(lv);
    return r;
}

static int resolve_accel(struct qvm_ctx *ctx, const struct qvm_vm *vm, bool say,
                         const char **ret, struct qvm_error *err)
{
    char note[256] = "";
    struct qvm_accel_probe probe = { .sysfs_root = getenv("QVM_SYSFS_ROOT") };
    int r = qvm_accel_resolve(vm->spec.accel ? vm->spec.accel : "auto", &probe, ret, note,
                              sizeof note, err);
    if (r == 0 && say && note[0])
        qvm_warn(ctx->ui, "%s", note);
    return r;
}

static struct qvm_domain_config domain_config(struct qvm_ctx *ctx, const struct qvm_vm *vm,
                                              const char *accel)
{
    struct qvm_domain_config c = {
        .spec = &vm->spec, .uuid = vm->uuid, .accel = accel, .pool = vm->pool,
        .image = vm->image, .version = vm->version, .disk_path = vm->disk_path,
        .disk_format = vm->disk_format, .disk_is_block = vm->disk_is_block,
        .data_disks = vm->qemu_disks,
        /* An adopted VM has no seed. */
        .seed_path = qvm_path_exists(vm->seed_path) ? vm->seed_path : NULL,
        .console_log = vm->console_log, .mac = vm->mac, .ssh_port = vm->ssh_port,
    };
    /* A qvm network of that name wins over a libvirt network: the domain
     * joins its bridge, where qvm's dnsmasq has the VM's lease. */
    if (vm->spec.net.type == QVM_NET_NETWORK && qvm_net_exists(ctx, vm->spec.net.source))
        snprintf(c.net_bridge, sizeof c.net_bridge, "qvm-%s", vm->spec.net.source);
    return c;
}

/* The --osinfo virt-install gets: the file's os-variant if this host's
 * osinfo-db knows it (virt-install 4.1 refuses names it does not). */
static const char *osinfo_for(struct qvm_ctx *ctx, const struct qvm_vm *vm, bool say)
{
    const char *os = vm->spec.os_variant;
    if (os && qvm_osinfo_known(os, NULL))
        return os;
    if (os && say)
        qvm_warn(ctx->ui, "os-variant '%s' is not in this host's osinfo-db; virt-install gets "
                 "--osinfo detect=on,require=off", os);
    return NULL;
}

void qvm_lv_plan(struct qvm_ctx *ctx, const struct qvm_vm *vm, bool start)
{
    const char *accel = "tcg";
    struct qvm_error e = { 0 };
    resolve_accel(ctx, vm, false, &accel, &e);
    struct qvm_domain_config c = domain_config(ctx, vm, accel);
    if (streq(vm->spec.runtime, "virt-install")) {
        char **argv;
        if (qvm_virt_install_argv(&c, uri_of(vm), osinfo_for(ctx, vm, true), QVM_VI_DRY_RUN,
                                  &argv, &e) < 0) {
            qvm_say(ctx->ui, "  (cannot build the virt-install command: %s)", e.msg);
            return;
        }
        char *line = qvm_argv_to_string((const char *const *)argv);
        qvm_say(ctx->ui, "  check with virt-install at %s: %s", uri_of(vm), line);
        qvm_say(ctx->ui, "  then run it without --dry-run%s", start ? "" :
                " (with --print-xml, defining the domain without starting it)");
        free(line);
        qvm_argv_free(argv);
        return;
    }
    char *xml = NULL;
    if (qvm_domain_xml(&c, &xml, &e) < 0) {
        qvm_say(ctx->ui, "  (cannot build the domain XML: %s)", e.msg);
        return;
    }
    qvm_say(ctx->ui, "  define libvirt domain '%s' at %s%s:\n%s", vm->spec.name, uri_of(vm),
            start ? " and start it" : " (not started: --no-start)", xml);
    free(xml);
}

static int save_bundle_file(const struct qvm_vm *vm, const char *name, const char *text,
                            struct qvm_error *err)
{
    char *path = xasprintf("%s/%s", vm->bundle_dir, name);
    int r = qvm_write_file_atomic(path, text, strlen(text), 0600, err);
    free(path);
    return r;
}

/* qvm's <metadata> element for a domain virt-install or someone else
 * defined. Every value is a checked name or a UUID: nothing to escape. */
static char *metadata_fragment(const struct qvm_vm *vm)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_addf(&sb, "<vm><uuid>%s</uuid><pool>%s</pool>", vm->uuid, vm->pool);
    if (vm->image && vm->version)
        strbuf_addf(&sb, "<image>%s</image><version>%s</version>", vm->image, vm->version);
    strbuf_addstr(&sb, "</vm>");
    return strbuf_detach(&sb, NULL);
}

static int run_virt_install(struct qvm_ctx *ctx, const struct qvm_domain_config *c,
                            const struct qvm_vm *vm, const char *osinfo, enum qvm_vi_mode mode,
                            char **ret_out, struct qvm_error *err)
{
    char **argv;
    int r = qvm_virt_install_argv(c, uri_of(vm), osinfo, mode, &argv, err);
    if (r < 0)
        return r;
    struct qvm_run_opts opts = { .timeout_ms = VIRT_INSTALL_TIMEOUT_MS };
    struct qvm_run_result res = { 0 };
    r = qvm_run((const char *const *)argv, &opts, &res, err);
    qvm_argv_free(argv);
    if (r == 0 && ret_out) {
        *ret_out = res.out;
        res.out = NULL;
    }
    if (r < 0 && res.err && *res.err) {
        /* virt-install says what is wrong on its ERROR line. */
        const char *line = strstr(res.err, "ERROR");
        qvm_err(err, -r, "virt-install%s failed: %s", mode == QVM_VI_DRY_RUN ? " --dry-run" : "",
                qvm_last_line(line ? line : res.err));
    }
    qvm_run_result_release(&res);
    return r;
}

/* Seed 6.5: virt-install --dry-run validates every option, then the real
 * run defines and starts the domain (or --print-xml gives the XML for qvm
 * to define unstarted: virt-install cannot define without starting). */
static int provision_virt_install(struct qvm_ctx *ctx, struct qvm_libvirt *lv, struct qvm_vm *vm,
                                  const char *accel, struct qvm_journal *j, bool start,
                                  struct qvm_error *err)
{
    struct qvm_domain_config c = domain_config(ctx, vm, accel);
    const char *osinfo = osinfo_for(ctx, vm, true);
    qvm_say(ctx->ui, "Checking the options with virt-install --dry-run");
    int r = run_virt_install(ctx, &c, vm, osinfo, QVM_VI_DRY_RUN, NULL, err);
    if (r == 0)
        r = qvm_fault_point("virt-install-checked", err);
    if (r == 0)
        r = qvm_journal_undo_libvirt_undefine(j, uri_of(vm), vm->uuid, err);
    if (r < 0)
        return r;
    if (start) {
        qvm_say(ctx->ui, "Running virt-install (%s, %s)", uri_of(vm),
                streq(accel, "kvm") ? "kvm" : "qemu");
        r = run_virt_install(ctx, &c, vm, osinfo, QVM_VI_INSTALL, NULL, err);
        if (r == 0)
            r = qvm_fault_point("virt-install-ran", err);
    } else {
        char *xml = NULL;
        r = run_virt_install(ctx, &c, vm, osinfo, QVM_VI_PRINT_XML, &xml, err);
        if (r == 0) {
            qvm_say(ctx->ui, "Defining libvirt domain '%s' from virt-install --print-xml",
                    vm->spec.name);
            r = qvm_libvirt_define(lv, xml, err);
        }
        free(xml);
        if (r == 0)
            r = qvm_fault_point("domain-defined", err);
    }
    char *frag = metadata_fragment(vm), *xml = NULL;
    if (r == 0)
        r = qvm_libvirt_set_metadata(lv, vm->uuid, frag, err);
    free(frag);
    if (r == 0 && qvm_libvirt_xml(lv, vm->uuid, true, &xml, err) == 0)
        r = save_bundle_file(vm, "domain.xml", xml, err);
    free(xml);
    return r;
}

int qvm_lv_provision(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_journal *j, bool start,
                     struct qvm_error *err)
{
    const char *accel;
    int r = resolve_accel(ctx, vm, true, &accel, err);
    if (r < 0)
        return r;
    struct qvm_libvirt *lv;
    r = qvm_libvirt_open(uri_of(vm), &lv, err);
    if (r < 0)
        return r;
    if (streq(vm->spec.runtime, "virt-install")) {
        r = provision_virt_install(ctx, lv, vm, accel, j, start, err);
        qvm_libvirt_close(lv);
        return r;
    }
    struct qvm_domain_config c = domain_config(ctx, vm, accel);
    char *xml = NULL;
    r = qvm_domain_xml(&c, &xml, err);
    /* The bundle keeps the definition qvm made: the bundle is the truth. */
    if (r == 0)
        r = save_bundle_file(vm, "domain.xml", xml, err);
    if (r == 0)
        r = qvm_journal_undo_libvirt_undefine(j, uri_of(vm), vm->uuid, err);
    if (r == 0) {
        qvm_say(ctx->ui, "Defining libvirt domain '%s' at %s (type %s)", vm->spec.name,
                uri_of(vm), streq(accel, "kvm") ? "kvm" : "qemu");
        r = qvm_libvirt_define(lv, xml, err);
    }
    free(xml);
    if (r == 0)
        r = qvm_fault_point("domain-defined", err);
    if (r == 0 && start) {
        qvm_say(ctx->ui, "Starting libvirt domain '%s' (%llu MiB, %u vCPU%s)", vm->spec.name,
                (unsigned long long)vm->spec.memory_mib, vm->spec.vcpus,
                vm->spec.vcpus == 1 ? "" : "s");
        r = qvm_libvirt_start(lv, vm->uuid, err);
        if (r == 0)
            r = qvm_fault_point("domain-started", err);
    }
    qvm_libvirt_close(lv);
    return r;
}

/* True if /proc/PID/cmdline has "-uuid" UUID: libvirt's QEMU for it. */
static bool cmdline_has_uuid(const char *pid, const char *uuid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct strbuf sb = STRBUF_INIT;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 && sb.len < (1 << 20))
        strbuf_add(&sb, buf, (size_t)n);
    close(fd);
    bool found = false;
    const char *prev = NULL;
    for (size_t off = 0; off < sb.len && !found; off += strlen(sb.buf + off) + 1) {
        found = prev && strcmp(prev, "-uuid") == 0 && strcmp(sb.buf + off, uuid) == 0;
        prev = sb.buf + off;
    }
    strbuf_release(&sb);
    return found;
}

pid_t qvm_lv_qemu_pid(const struct qvm_vm *vm)
{
    if (!vm->uuid)
        return 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    pid_t found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        if (cmdline_has_uuid(de->d_name, vm->uuid)) {
            pid_t pid = (pid_t)strtol(de->d_name, NULL, 10);
            if (qvm_process_alive(pid))
                found = pid;
        }
    }
    closedir(d);
    return found;
}

static int open_for(const struct qvm_vm *vm, struct qvm_libvirt **lv, struct qvm_error *err)
{
    int r = qvm_libvirt_open(uri_of(vm), lv, err);
    return r < 0 ? qvm_err_wrap(err, "VM '%s' runs under libvirt", vm->spec.name) : 0;
}

static int define_missing(struct qvm_ctx *ctx, struct qvm_libvirt *lv, struct qvm_vm *vm,
                          struct qvm_journal *j, struct qvm_error *err)
{
    const char *accel;
    char *xml = NULL;
    int r = resolve_accel(ctx, vm, true, &accel, err);
    struct qvm_domain_config c = domain_config(ctx, vm, accel);
    if (r == 0)
        r = qvm_domain_xml(&c, &xml, err);
    if (r == 0 && j)
        r = qvm_journal_undo_libvirt_undefine(j, uri_of(vm), vm->uuid, err);
    if (r == 0) {
        qvm_say(ctx->ui, "Defining libvirt domain '%s' at %s from the VM's definition",
                vm->spec.name, uri_of(vm));
        r = qvm_libvirt_define(lv, xml, err);
    }
    if (r == 0)
        r = qvm_fault_point("domain-defined", err);
    free(xml);
    return r;
}

/* Starts VM's domain (defining it first if it is missing), the undo in J
 * when given. A running domain is left as it is. */
static int start_in(struct qvm_ctx *ctx, struct qvm_libvirt *lv, struct qvm_vm *vm,
                    struct qvm_journal *j, struct qvm_error *err)
{
    bool active = false;
    struct qvm_error e = { 0 };
    int r = qvm_libvirt_active(lv, vm->uuid, &active, &e);
    if (r < 0 && r != -ENOENT)
        return qvm_err(err, -r, "%s", e.msg);
    if (active)
        return 0;
    /* The bundle is the truth: a VM whose domain is not there (a clone, a
     * bundle imported from another host, a domain undefined by hand) gets
     * it defined from its definition, as up would. */
    if (r == -ENOENT && (r = define_missing(ctx, lv, vm, j, err)) < 0)
        return r;
    if (j && (r = qvm_journal_undo_libvirt_destroy(j, uri_of(vm), vm->uuid, err)) < 0)
        return r;
    if ((r = qvm_net_prepare_vm(ctx, vm, err)) < 0)    /* qvm networks up, leases */
        return r;
    qvm_say(ctx->ui, "Starting libvirt domain '%s'", vm->spec.name);
    r = qvm_libvirt_start(lv, vm->uuid, err);
    return r < 0 ? r : qvm_fault_point("domain-started", err);
}

int qvm_lv_start_in(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_journal *j,
                    struct qvm_error *err)
{
    struct qvm_libvirt *lv;
    int r = open_for(vm, &lv, err);
    if (r == 0)
        r = start_in(ctx, lv, vm, j, err);
    qvm_libvirt_close(lv);
    return r;
}

int qvm_lv_start(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_error *err)
{
    struct qvm_libvirt *lv;
    int r = open_for(vm, &lv, err);
    if (r < 0)
        return r;
    bool active = false;
    if (qvm_libvirt_active(lv, vm->uuid, &active, NULL) == 0 && active) {
        qvm_say(ctx->ui, "VM '%s' is already running (libvirt)", vm->spec.name);
        qvm_libvirt_close(lv);
        return 0;
    }
    struct qvm_journal *j = NULL;
    r = qvm_journal_begin(ctx, "start", "vm", vm->spec.name, &j, err);
    /* Admitted against the host's memory like qvm's own QEMU (memory.h):
     * it ends in qvm_lv_start_in. */
    if (r == 0)
        r = qvm_memory_start_qemu(ctx, vm, j, err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
        if (r == 0)
            qvm_say(ctx->ui, "VM '%s' is running (libvirt domain at %s, pid %d)", vm->spec.name,
                    uri_of(vm), (int)qvm_lv_qemu_pid(vm));
    }
    if (j) {
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    qvm_libvirt_close(lv);
    return r;
}

static bool wait_inactive(struct qvm_libvirt *lv, const char *uuid, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        bool active = true;
        if (qvm_libvirt_active(lv, uuid, &active, NULL) < 0 || !active)
            return true;
        if (now_ms() >= deadline)
            return false;
        usleep(STATE_POLL_MS * 1000);
    }
}

int qvm_lv_stop(struct qvm_ctx *ctx, struct qvm_vm *vm, bool force, int timeout_s,
                struct qvm_error *err)
{
    struct qvm_libvirt *lv;
    int r = open_for(vm, &lv, err);
    if (r < 0)
        return r;
    char st[32] = "";
    r = qvm_libvirt_state(lv, vm->uuid, st, sizeof st, err);
    bool gone = r < 0 || streq(st, "stopped");
    if (r == -ENOENT)
        r = 0;      /* no domain, nothing runs: rm goes on */
    if (!gone && !force) {
        struct qvm_error e = { 0 };
        if (streq(st, "paused")) {
            qvm_say(ctx->ui, "VM '%s' is paused; resuming it so that it can power off",
                    vm->spec.name);
            qvm_libvirt_resume(lv, vm->uuid, &e);
        }
        qvm_say(ctx->ui, "Asking VM '%s' to power off (ACPI, up to %d s)", vm->spec.name,
                timeout_s);
        if (qvm_libvirt_shutdown(lv, vm->uuid, &e) == 0)
            gone = wait_inactive(lv, vm->uuid, timeout_s * 1000);
        if (!gone)
            qvm_say(ctx->ui, "VM '%s' did not power off in %d s; stopping it", vm->spec.name,
                    timeout_s);
    }
    if (!gone)
        r = qvm_libvirt_destroy(lv, vm->uuid, err);
    qvm_libvirt_close(lv);
    return r;
}

int qvm_lv_pause(struct qvm_ctx *ctx, struct qvm_vm *vm, bool pause, struct qvm_error *err)
{
    struct qvm_libvirt *lv;
    int r = open_for(vm, &lv, err);
    if (r < 0)
        return r;
    const char *name = vm->spec.name;
    char st[32] = "";
    r = qvm_libvirt_state(lv, vm->uuid, st, sizeof st, err);
    if (r == 0 && streq(st, "stopped"))
        r = qvm_err(err, ESRCH, "VM '%s' is not running", name);
    else if (r == 0 && pause && streq(st, "paused"))
        qvm_say(ctx->ui, "VM '%s' is already paused", name);
    else if (r == 0 && !pause && streq(st, "running"))
        qvm_say(ctx->ui, "VM '%s' is not paused: it is running", name);
    else if (r == 0) {
        r = pause ? qvm_libvirt_suspend(lv, vm->uuid, err) : qvm_libvirt_resume(lv, vm->uuid, err);
        if (r == 0)
            qvm_say(ctx->ui, "VM '%s' is %s", name, pause ? "paused" : "running");
    }
    qvm_libvirt_close(lv);
    return r;
}

int qvm_lv_rm(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_journal *j,
              struct qvm_error *err)
{
    struct qvm_libvirt *lv;
    int r = open_for(vm, &lv, err);
    if (r < 0)
        return r;
    char *xml = NULL;
    struct qvm_error e = { 0 };
    r = qvm_libvirt_xml(lv, vm->uuid, true, &xml, &e);
    if (r == -ENOENT) {
        qvm_warn(ctx->ui, "VM '%s' has no libvirt domain any more (UUID %s at %s); removing "
                 "the rest", vm->spec.name, vm->uuid, uri_of(vm));
        qvm_libvirt_close(lv);
        return 0;
    }
    if (r < 0) {
        qvm_libvirt_close(lv);
        return qvm_err(err, -r, "%s", e.msg);
    }
    r = qvm_libvirt_destroy(lv, vm->uuid, err);
    /* The undo defines the domain again from its last definition. */
    char *saved = xasprintf("%s/domain.xml.undefined", vm->bundle_dir);
    if (r == 0)
        r = qvm_write_file_atomic(saved, xml, strlen(xml), 0600, err);
    if (r == 0)
        r = qvm_journal_undo_libvirt_define(j, uri_of(vm), saved, err);
    if (r == 0) {
        qvm_say(ctx->ui, "Undefining libvirt domain '%s'", vm->spec.name);
        r = qvm_libvirt_undefine(lv, vm->uuid, err);
    }
    if (r == 0)
        r = qvm_fault_point("domain-undefined", err);
    free(saved);
    free(xml);
    qvm_libvirt_close(lv);
    return r;
}

void qvm_lv_state(struct qvm_ctx *ctx, const struct qvm_vm *vm, char *buf, size_t size)
{
    struct qvm_libvirt *lv;
    struct qvm_error e = { 0 };
    snprintf(buf, size, "unknown");
    if (qvm_libvirt_open(uri_of(vm), &lv, &e) < 0) {
        if (ctx)
            qvm_warn(ctx->ui, "VM '%s': %s", vm->spec.name, e.msg);
        return;
    }
    int r = qvm_libvirt_state(lv, vm->uuid, buf, size, &e);
    if (r == -ENOENT)
        snprintf(buf, size, "missing");
    else if (r < 0 && ctx)
        qvm_warn(ctx->ui, "VM '%s': %s", vm->spec.name, e.msg);
    qvm_libvirt_close(lv);
}

int qvm_lv_guest_exec(struct qvm_ctx *ctx, const char *name, const char *const argv[],
                      const char *input, int timeout_s, struct qvm_exec_result *ret,
                      struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    long long deadline = now_ms() + (long long)timeout_s * 1000;
    struct qvm_vm vm;
    int r = qvm_vm_load(ctx, name, &vm, err);
    if (r < 0)
        return r;
    struct qvm_libvirt *lv;
    r = open_for(&vm, &lv, err);
    if (r < 0) {
        qvm_vm_release(&vm);
        return r;
    }
    for (;;) {
        /* The VM lock for each attempt, let go between them while the
         * agent does not answer yet (guest.c's rule). */
        long long left = deadline - now_ms();
        int lock_wait = qvm_vm_lock_timeout_ms();
        int lock = qvm_vm_lock(ctx, name, left < lock_wait ? (int)(left > 0 ? left : 0)
                                                           : lock_wait, err);
        if (lock < 0) {
            r = lock;
            break;
        }
        char st[32] = "";
        r = qvm_libvirt_state(lv, vm.uuid, st, sizeof st, err);
        if (r == 0 && streq(st, "stopped"))
            r = qvm_err(err, ESRCH, "VM '%s' is not running", name);
        else if (r == 0 && !streq(st, "running"))
            r = qvm_err(err, EAGAIN, "VM '%s' is %s, so its guest agent cannot answer%s%s", name,
                        st, streq(st, "paused") ? "; resume it with: qvm resume " : "",
                        streq(st, "paused") ? name : "");
        left = deadline - now_ms();
        if (r == 0 && left <= 0)
            r = qvm_err(err, ETIMEDOUT, "the guest agent of VM '%s' did not answer in time", name);
        struct qvm_error e = { 0 };
        if (r == 0)
            r = qvm_libvirt_agent_exec(lv, vm.uuid, argv, input, (int)left, &ret->exit_status,
                                       &ret->out, &ret->out_len, &ret->err, &ret->err_len, &e);
        qvm_unlock(lock);
        if (r != -EAGAIN || e.code != EAGAIN) {
            if (e.code && r < 0)
                qvm_err(err, e.code, "%s", e.msg);
            break;
        }
        /* The agent is not connected yet: the guest is booting. */
        if (deadline - now_ms() <= 0) {
            r = qvm_err(err, ETIMEDOUT, "the guest agent of VM '%s' did not answer in time", name);
            break;
        }
        usleep(500 * 1000);
    }
    qvm_libvirt_close(lv);
    qvm_vm_release(&vm);
    return r;
}

int qvm_lv_quiesce_begin(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_journal *j,
                         struct qvm_quiesce *q, struct qvm_error *err)
{
    const char *name = vm->spec.name;
    struct qvm_libvirt *lv;
    int r = open_for(vm, &lv, err);
    if (r < 0)
        return r;
    /* The agent first, as snapshot.c does for qvm's own QEMU. */
    struct qvm_error e = { 0 };
    int n = 0;
    r = qvm_journal_undo_libvirt_thaw(j, uri_of(vm), vm->uuid, err);
    if (r == 0 && qvm_libvirt_fsfreeze(lv, vm->uuid, &n, &e) == 0) {
        q->how = QVM_QUIESCE_FROZEN;
        qvm_say(ctx->ui, "Froze the file systems of VM '%s' (%d, through libvirt and the guest "
                "agent)", name, n);
        qvm_libvirt_close(lv);
        return qvm_fault_point("guest-frozen", err);
    }
    char st[32] = "";
    if (r == 0) {
        qvm_say(ctx->ui, "The guest agent of VM '%s' could not freeze its file systems (%s); "
                "pausing the VM instead", name, e.msg);
        r = qvm_libvirt_state(lv, vm->uuid, st, sizeof st, err);
    }
    if (r == 0 && !streq(st, "running")) {
        qvm_say(ctx->ui, "VM '%s' is %s: its disk is not being written", name, st);
    } else if (r == 0) {
        r = qvm_journal_undo_libvirt_resume(j, uri_of(vm), vm->uuid, err);
        if (r == 0)
            r = qvm_libvirt_suspend(lv, vm->uuid, err);
        if (r == 0) {
            q->how = QVM_QUIESCE_PAUSED;
            qvm_say(ctx->ui, "Paused VM '%s' (no guest agent answered)", name);
        }
    }
    qvm_libvirt_close(lv);
    if (r < 0)
        return qvm_err_wrap(err, "cannot pause VM '%s' for a consistent copy of its disk", name);
    return q->how == QVM_QUIESCE_PAUSED ? qvm_fault_point("vm-paused", err) : 0;
}

int qvm_lv_quiesce_end(struct qvm_ctx *ctx, const struct qvm_vm *vm, struct qvm_quiesce *q,
                       struct qvm_error *err)
{
    int r = 0;
    struct qvm_libvirt *lv = NULL;
    if (q->how != QVM_QUIESCE_NONE)
        r = open_for(vm, &lv, err);
    if (r == 0 && q->how == QVM_QUIESCE_FROZEN) {
        r = qvm_libvirt_fsthaw(lv, vm->uuid, err);
        if (r == 0)
            qvm_say(ctx->ui, "Thawed the file systems of VM '%s'", vm->spec.name);
    } else if (r == 0 && q->how == QVM_QUIESCE_PAUSED) {
        r = qvm_libvirt_resume(lv, vm->uuid, err);
        if (r < 0)
            qvm_err_wrap(err, "VM '%s' could not be resumed (qvm resume %s)", vm->spec.name,
                         vm->spec.name);
        else
            qvm_say(ctx->ui, "Resumed VM '%s'", vm->spec.name);
    }
    qvm_libvirt_close(lv);
    memset(q, 0, sizeof *q);
    return r;
}

int qvm_lv_console(struct qvm_ctx *ctx, const struct qvm_vm *vm, int escape,
                   struct qvm_error *err)
{
    struct qvm_libvirt *lv;
    int r = open_for(vm, &lv, err);
    if (r < 0)
        return r;
    r = qvm_libvirt_console(lv, vm->uuid, STDIN_FILENO, STDOUT_FILENO, escape, err);
    qvm_libvirt_close(lv);
    return r;
}

static bool uuid_ok(const char *u)
{
    return u && strlen(u) == 36 && strspn(u, "0123456789abcdefABCDEF-") == 36;
}

void qvm_lv_undo(const char *kind, const char *uri, const char *uuid, const char *path,
                 struct strbuf *failed)
{
    bool define = streq(kind, "libvirt_define");
    if (!uri || (define ? !path : !uuid_ok(uuid)) ||
        !(define || streq(kind, "libvirt_undefine") || streq(kind, "libvirt_destroy") ||
          streq(kind, "libvirt_thaw") || streq(kind, "libvirt_resume"))) {
        strbuf_addf(failed, "\n  damaged journal record '%s'", kind);
        return;
    }
    struct qvm_libvirt *lv;
    struct qvm_error e = { 0 };
    if (qvm_libvirt_open(uri, &lv, &e) < 0) {
        strbuf_addf(failed, "\n  libvirt domain %s was not %s (%s)", define ? path : uuid,
                    define ? "defined again" : "removed", e.msg);
        return;
    }
    int r = 0;
    if (define) {
        char *xml = NULL;
        size_t len;
        r = qvm_read_file(path, 4u << 20, &xml, &len, &e);
        if (r == -ENOENT)
            r = 0;      /* killed before the XML was saved: nothing was undefined */
        else if (r == 0)
            r = qvm_libvirt_define(lv, xml, &e);
        if (r == 0)
            unlink(path);       /* the domain holds it again */
        free(xml);
        if (r < 0)
            strbuf_addf(failed, "\n  the libvirt domain saved in %s was not defined again (%s); "
                        "define it with: virsh define %s", path, e.msg, path);
    } else if (streq(kind, "libvirt_thaw") || streq(kind, "libvirt_resume")) {
        /* Best effort, like their QEMU twins: a domain that is gone or
         * already thawed (running) needs nothing. */
        bool active = false;
        if (qvm_libvirt_active(lv, uuid, &active, NULL) == 0 && active) {
            if (streq(kind, "libvirt_thaw"))
                qvm_libvirt_fsthaw(lv, uuid, NULL);
            else
                qvm_libvirt_resume(lv, uuid, NULL);
        }
    } else {
        r = qvm_libvirt_destroy(lv, uuid, &e);
        if (r == 0 && streq(kind, "libvirt_undefine"))
            r = qvm_libvirt_undefine(lv, uuid, &e);
        if (r < 0)
            strbuf_addf(failed, "\n  libvirt domain %s at %s was not %s (%s)", uuid, uri,
                        streq(kind, "libvirt_undefine") ? "undefined" : "powered off", e.msg);
    }
    qvm_libvirt_close(lv);
}
