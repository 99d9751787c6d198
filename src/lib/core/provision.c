/* provision.c - `qvm up`: seed 000's provisioning, made atomic.
 *
 * Everything is validated before the first persistent change (the dry-run
 * point of seed 6.5). Then each persistent step journals its undo first:
 * bundle created, disk cloned, seed written, definition written, QEMU
 * started. A failure rolls back in reverse order; a SIGKILL leaves the
 * journal for the next qvm command to roll back. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/image.h"
#include "core/lifecycle.h"
#include "core/memory.h"
#include "core/pools.h"
#include "core/runtime_libvirt.h"
#include "runtime/accel.h"
#include "runtime/qemu.h"
#include "seed/seed.h"
#include "storage/disk_create.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/uuid.h"
#include "util/subprocess.h"

#define TASK_FILE "importing qvm file"
#define TASK_PROVISION "provisioning virtual machine"

/* A free TCP port on 127.0.0.1: the kernel picks one from the ephemeral
 * range. PORT != 0 checks that port instead. */
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

static bool in_path(const char *prog)
{
    if (strchr(prog, '/'))
        return access(prog, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char *copy = xstrdup(path), *save = NULL;
    bool found = false;
    for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/%s", d, prog);
        found = access(p, X_OK) == 0;
        free(p);
    }
    free(copy);
    return found;
}

static double gib(uint64_t bytes)
{
    return (double)bytes / (1024.0 * 1024 * 1024);
}

/* The image version the disk is cloned from: its pool, and BASE. */
static int resolve_base(struct qvm_ctx *ctx, const struct qvm_vm_spec *spec,
                        const struct qvm_up_opts *opts, struct qvm_vm *vm, struct qvm_pool *pool,
                        struct qvm_disk_info *base, struct qvm_error *err)
{
    struct qvm_image img;
    const struct qvm_image_version *ver;
    if (strchr(spec->disk.base, '/'))
        return qvm_err(err, ENOTSUP, "disk.zvol.base '%s' names a raw ZFS snapshot; "
                       "this host's pools hold qvm images: import it with qvm image import",
                       spec->disk.base);
    const char *pool_name = opts->pool ? opts->pool : spec->disk.pool;
    int r = qvm_image_resolve_for(ctx, pool_name, spec->disk.base, opts->any_state, &img, &ver,
                                  err);
    if (r < 0)
        return qvm_err_wrap(err, "disk.zvol.base '%s'", spec->disk.base);
    r = qvm_pool_get(ctx, img.pool, pool, err);
    if (r == 0)
        r = pool->driver->version_info(pool, img.name, ver->name, base, err);
    if (r < 0) {
        qvm_image_release(&img);
        return r;
    }
    vm->image = xstrdup(img.name);
    vm->version = xstrdup(ver->name);
    qvm_image_release(&img);
    return 0;
}

/* --reuse FILE (seed 002, Ganeti's reuse): an existing disk file becomes
 * the VM's disk by a rename into the bundle, so it must be a raw or
 * standalone qcow2 file on the pool's file system. BASE describes it. */
static int resolve_reuse(struct qvm_ctx *ctx, const struct qvm_vm_spec *spec,
                         const struct qvm_up_opts *opts, struct qvm_pool *pool,
                         struct qvm_disk_info *base, struct qvm_error *err)
{
    const char *pool_name = opts->pool ? opts->pool : spec->disk.pool;
    int r = qvm_pool_get(ctx, pool_name, pool, err);
    if (r < 0)
        return r;
    if (!pool->driver->adopt_path)
        return qvm_err(err, ENOTSUP, "--reuse needs a dir pool: pool '%s' is %s, whose disks "
                       "are not plain files (import the file with qvm image import instead)",
                       pool->name, pool->driver->name);
    struct stat st, pst;
    if (lstat(opts->reuse, &st) < 0)
        return qvm_err_errno(err, errno, "--reuse %s", opts->reuse);
    if (!S_ISREG(st.st_mode))
        return qvm_err(err, EINVAL, "--reuse %s is not a regular file", opts->reuse);
    if (stat(pool->path, &pst) < 0)
        return qvm_err_errno(err, errno, "cannot stat pool '%s' (%s)", pool->name, pool->path);
    if (st.st_dev != pst.st_dev)
        return qvm_err(err, EXDEV, "--reuse %s is on another file system than pool '%s' (%s); "
                       "it is adopted by a rename, never copied: move it there first",
                       opts->reuse, pool->name, pool->path);
    const char *format;
    bool backing = false;
    r = qvm_image_file_format(opts->reuse, &format, err);
    if (r == 0)
        r = qvm_image_file_probe(opts->reuse, format, &base->virtual_size, &backing, err);
    if (r < 0)
        return qvm_err_wrap(err, "--reuse %s", opts->reuse);
    if (backing)
        return qvm_err(err, EINVAL, "--reuse %s is a qcow2 overlay with a backing file; "
                       "flatten it first (qemu-img convert)", opts->reuse);
    base->path = realpath(opts->reuse, NULL);
    if (!base->path)
        return qvm_err_errno(err, errno, "--reuse %s", opts->reuse);
    base->format = xstrdup(format);
    (void)ctx;
    return 0;
}

/* The data disks of a disk list: each on its pool (default: the VM's),
 * which must take empty disks; a pool other than the VM's must not hold a
 * bundle of that name already (left by hand, or a removal doctor has not
 * finished). */
static int validate_data_disks(struct qvm_ctx *ctx, struct qvm_vm_spec *spec, const char *vm_pool,
                               struct qvm_error *err)
{
    if (spec->ndata_disks && spec->runtime && strcmp(spec->runtime, "virt-install") == 0)
        return qvm_err(err, ENOTSUP, "runtime virt-install takes one disk; VM '%s' has %zu: "
                       "use runtime qemu or libvirt", spec->name, spec->ndata_disks + 1);
    int r = 0;
    for (size_t i = 0; i < spec->ndata_disks && r == 0; i++) {
        struct qvm_disk_spec *d = &spec->data_disks[i];
        if (!d->pool)
            d->pool = xstrdup(vm_pool);
        struct qvm_pool pool;
        r = qvm_pool_get(ctx, d->pool, &pool, err);
        if (r < 0)
            return qvm_err_wrap(err, "data disk %s", d->target_name);
        if (pool.mode && strcmp(pool.mode, "zvol") == 0)
            r = qvm_err(err, ENOTSUP, "data disk %s: pool '%s' keeps disks as zvols; data disks "
                        "on zvol-mode pools are not supported yet", d->target_name, pool.name);
        char *dir = pool.driver->vm_dir(&pool, spec->name);
        if (r == 0 && strcmp(pool.name, vm_pool) != 0 && qvm_path_exists(dir))
            r = qvm_err(err, EEXIST, "data disk %s: pool '%s' already holds %s (a removed VM's "
                        "storage? qvm doctor --repair frees it)", d->target_name, pool.name, dir);
        free(dir);
        qvm_pool_release(&pool);
    }
    return r;
}

/* Every check that needs no change to the host. Fills VM (taking SPEC). */
static int validate(struct qvm_ctx *ctx, struct qvm_vm_spec *spec, const struct qvm_up_opts *opts,
                    struct qvm_vm *vm, struct qvm_pool *pool, struct qvm_disk_info *base,
                    const char **accel, struct qvm_error *err)
{
    int r = opts->reuse ? resolve_reuse(ctx, spec, opts, pool, base, err)
                        : resolve_base(ctx, spec, opts, vm, pool, base, err);
    if (r < 0)
        return r;
    if (spec->disk.nprops && !pool->driver->clone_properties)
        return qvm_err(err, ENOTSUP, "disk.zvol property '%s' needs a zfs pool; pool '%s' is %s",
                       spec->disk.props[0].key, pool->name, pool->driver->name);
    vm->pool = xstrdup(pool->name);
    r = qvm_runtime_choose(ctx, pool->name, opts->runtime, spec, err);
    if (r == 0)
        r = validate_data_disks(ctx, spec, pool->name, err);
    if (r < 0)
        return r;

    struct qvm_vm existing;
    struct qvm_error e = { 0 };
    if (qvm_vm_load(ctx, spec->name, &existing, &e) == 0) {
        r = qvm_err(err, EEXIST, "VM '%s' already exists (pool '%s'); remove it with: qvm rm %s",
                    spec->name, existing.pool, spec->name);
        qvm_vm_release(&existing);
        return r;
    }
    if (opts->reuse && spec->disk.size_bytes && spec->disk.size_bytes != base->virtual_size)
        return qvm_err(err, EINVAL, "disk.size %.2f GiB differs from the reused disk %s "
                       "(%.2f GiB); leave disk.size out, or resize the file first "
                       "(qemu-img resize)",
                       gib(spec->disk.size_bytes), opts->reuse, gib(base->virtual_size));
    if (spec->disk.size_bytes && spec->disk.size_bytes < base->virtual_size)
        return qvm_err(err, EINVAL, "disk.size %.2f GiB is smaller than image '%s@%s' (%.2f GiB)",
                       gib(spec->disk.size_bytes), vm->image, vm->version, gib(base->virtual_size));
    vm->disk_size = spec->disk.size_bytes ? spec->disk.size_bytes : base->virtual_size;
    vm->disk_name = xstrdup(spec->disk.target_name ? spec->disk.target_name : "disk0");

    char mac[18];
    if (spec->net.mac)
        snprintf(mac, sizeof mac, "%s", spec->net.mac);
    else
        qvm_vm_mac(pool->name, spec->name, mac);
    vm->mac = xstrdup(mac);
    qvm_vm_assign_nic_macs(spec, pool->name, false);
    vm->ssh_port = 0;
    if (spec->net.type == QVM_NET_USER && spec->net.ssh_port >= 0) {
        r = local_port(spec->net.ssh_port, &vm->ssh_port, err);
        if (r < 0)
            return r;
    }
    char note[256] = "";
    struct qvm_accel_probe probe = { .sysfs_root = getenv("QVM_SYSFS_ROOT") };
    r = qvm_accel_resolve(spec->accel ? spec->accel : "auto", &probe, accel, note, sizeof note, err);
    if (r < 0)
        return r;
    if (!opts->no_start && !in_path(ctx->qemu_binary))
        return qvm_err(err, ENOENT, "%s not found; install the qemu-system-x86 package",
                       ctx->qemu_binary);
    if (!in_path("qemu-img"))
        return qvm_err(err, ENOENT, "qemu-img not found; install the qemu-utils package");

    vm->spec = *spec;
    memset(spec, 0, sizeof *spec);
    vm->uuid = qvm_uuid_new();
    vm->created = time(NULL);
    r = qvm_vm_derive_paths(ctx, pool, vm, err);
    if (r == 0 && opts->reuse) {
        free(vm->disk_path);
        free(vm->disk_format);
        vm->disk_path = pool->driver->adopt_path(pool, vm->spec.name, vm->disk_name,
                                                 base->format);
        vm->disk_format = xstrdup(base->format);
    }
    if (r == 0 && qvm_vm_libvirt(vm))
        r = qvm_lv_validate(ctx, vm, err);
    return r;
}

static void print_plan(struct qvm_ctx *ctx, const struct qvm_vm *vm, const struct qvm_disk_info *base,
                       const char *pool_driver, const char *accel, const struct qvm_up_opts *opts)
{
    qvm_say(ctx->ui, "Dry run: the qvm file is valid; nothing was changed. qvm up would:");
    qvm_say(ctx->ui, "  create bundle %s", vm->bundle_dir);
    if (opts->reuse)
        qvm_say(ctx->ui, "  adopt %s (%s, %.2f GiB) as %s in %s pool '%s', by a rename",
                base->path, base->format, gib(base->virtual_size), vm->disk_path, pool_driver,
                vm->pool);
    else
        qvm_say(ctx->ui, "  clone %s@%s (%.2f GiB) in %s pool '%s' as %s (%s%s, %.2f GiB)",
                vm->image, vm->version, gib(base->virtual_size), pool_driver, vm->pool,
                vm->disk_path, vm->disk_format, vm->disk_is_block ? " block device" : "",
                gib(vm->disk_size));
    for (size_t i = 0; i < vm->spec.ndata_disks; i++) {
        const struct qvm_disk_spec *d = &vm->spec.data_disks[i];
        qvm_say(ctx->ui, "  create data disk %s in pool '%s' as %s (%s, %.2f GiB, empty)%s",
                d->target_name, d->pool, vm->data_disk_info[i].path,
                vm->data_disk_info[i].format, gib(d->size_bytes), d->boot ? ", boots" : "");
    }
    qvm_say(ctx->ui, "  write the NoCloud seed %s (instance-id %s, hostname %s%s)", vm->seed_path,
            vm->spec.instance_id, vm->spec.hostname,
            vm->spec.network_config ? ", with network-config" : "");
    if (qvm_vm_libvirt(vm)) {
        qvm_lv_plan(ctx, vm, !opts->no_start);
        return;
    }
    if (opts->no_start) {
        qvm_say(ctx->ui, "  not start the VM (--no-start)");
        return;
    }
    struct qvm_qemu_config cfg = {
        .spec = &vm->spec, .qemu_binary = ctx->qemu_binary, .accel = accel,
        .disk_path = vm->disk_path, .disk_format = vm->disk_format,
        .disk_is_block = vm->disk_is_block, .data_disks = vm->qemu_disks,
        .seed_path = vm->seed_path,
        .qmp_socket = vm->qmp_socket, .console_socket = vm->console_socket,
        .console_log = vm->console_log, .qga_socket = vm->qga_socket,
        .vnc_socket = vm->vnc_socket, .pid_file = vm->pid_file, .mac = vm->mac,
        .ssh_port = vm->ssh_port,
    };
    int fd = 3;     /* the taps are opened at start, and passed as 3, 4, ... */
    for (size_t i = 0; i < qvm_spec_nic_count(&vm->spec); i++) {
        const struct qvm_net_spec *n = qvm_spec_nic(&vm->spec, i);
        if (n->type == QVM_NET_NETWORK || n->type == QVM_NET_BRIDGE)
            cfg.tap_fd[i] = fd++;
    }
    char **argv = qvm_qemu_argv(&cfg);
    char *line = qvm_argv_to_string((const char *const *)argv);
    qvm_say(ctx->ui, "  start QEMU: %s", line);
    free(line);
    qvm_argv_free(argv);
}

/* The data disks, each journaled: a bundle of the VM in every other pool
 * that holds one (undo: the driver's vm_destroy, as for the VM's own), then
 * the empty disks (undone with the bundle that holds them). */
static int create_data_disks(struct qvm_ctx *ctx, struct qvm_journal *j, const struct qvm_vm *vm,
                             struct qvm_error *err)
{
    const char **others;
    size_t nothers = qvm_vm_other_pools(vm, &others);
    int r = 0;
    for (size_t i = 0; i < nothers && r == 0; i++) {
        struct qvm_pool pool;
        r = qvm_pool_get(ctx, others[i], &pool, err);
        if (r < 0)
            break;
        r = qvm_journal_undo_vm_destroy(j, pool.name, vm->spec.name, err);
        if (r == 0)
            r = pool.driver->vm_create(&pool, vm->spec.name, err);
        qvm_pool_release(&pool);
        if (r == 0) {
            char *step = xasprintf("data-bundle-created:%s", others[i]);
            r = qvm_fault_point(step, err);
            free(step);
        }
    }
    free(others);
    for (size_t i = 0; i < vm->spec.ndata_disks && r == 0; i++) {
        const struct qvm_disk_spec *d = &vm->spec.data_disks[i];
        struct qvm_pool pool;
        r = qvm_pool_get(ctx, d->pool, &pool, err);
        if (r < 0)
            break;
        qvm_say(ctx->ui, "Creating data disk %s (%.2f GiB) at %s", d->target_name,
                gib(d->size_bytes), vm->data_disk_info[i].path);
        r = qvm_storage_data_disk_create(&pool, vm->spec.name, d->target_name, d->size_bytes,
                                         err);
        qvm_pool_release(&pool);
        if (r == 0) {
            char *step = xasprintf("data-disk-created:%s", d->target_name);
            r = qvm_fault_point(step, err);
            free(step);
        }
    }
    return r;
}

static int copy_source(const char *file, const struct qvm_vm *vm, struct qvm_error *err)
{
    char *data = NULL;
    size_t len;
    int r = qvm_read_file(file, QVM_SPEC_MAX_FILE, &data, &len, err);
    if (r < 0)
        return r;
    char *dst = xasprintf("%s/vm.yaml", vm->bundle_dir);
    r = qvm_write_file_atomic(dst, data, len, 0600, err);
    free(dst);
    free(data);
    return r;
}

/* Moves the reused file into the bundle; rollback moves it back. */
static int adopt_disk(struct qvm_ctx *ctx, struct qvm_journal *j, const char *src,
                      const struct qvm_vm *vm, struct qvm_error *err)
{
    qvm_say(ctx->ui, "Adopting %s as %s (renamed, not copied)", src, vm->disk_path);
    int r = qvm_journal_undo_rename(j, src, vm->disk_path, err);
    if (r == 0 && renameat2(AT_FDCWD, src, AT_FDCWD, vm->disk_path, RENAME_NOREPLACE) < 0)
        r = qvm_err_errno(err, errno, "cannot move %s to %s", src, vm->disk_path);
    return r;
}

int qvm_up(struct qvm_ctx *ctx, const char *file, const struct qvm_up_opts *opts,
           struct qvm_error *err)
{
    struct qvm_vm_spec spec;
    struct qvm_vm vm = { 0 };
    struct qvm_pool pool = { 0 };
    struct qvm_disk_info base = { 0 }, disk = { 0 };
    struct qvm_journal *j = NULL;
    const char *accel = "tcg";
    int lock = -1;

    int r = qvm_spec_load(file, &spec, err);
    if (r < 0)
        return qvm_err_task(err, TASK_FILE);
    qvm_say(ctx->ui, "Read %s: VM '%s' from image '%s'", file, spec.name, spec.disk.base);

    lock = qvm_lock_object(ctx->paths.lock_dir, "vm", spec.name, false, err);
    if (lock < 0) {
        qvm_spec_release(&spec);
        return qvm_err_task(err, TASK_PROVISION);
    }
    qvm_timing_mark("file-read");
    r = validate(ctx, &spec, opts, &vm, &pool, &base, &accel, err);
    qvm_spec_release(&spec);       /* moved into vm on success */
    if (r < 0)
        goto out;
    if (opts->dry_run) {
        print_plan(ctx, &vm, &base, pool.driver->name, accel, opts);
        goto out;
    }

    qvm_timing_mark("validated");
    r = qvm_journal_begin(ctx, "up", "vm", vm.spec.name, &j, err);
    if (r == 0)
        r = qvm_journal_undo_vm_destroy(j, pool.name, vm.spec.name, err);
    if (r == 0)
        r = pool.driver->vm_create(&pool, vm.spec.name, err);
    if (r == 0)
        r = qvm_journal_undo_rm_rf(j, vm.run_dir, err);
    if (r == 0)
        r = qvm_fault_point("bundle-created", err);
    if (r == 0 && opts->reuse) {
        r = adopt_disk(ctx, j, base.path, &vm, err);
    } else if (r == 0) {
        qvm_say(ctx->ui, "Cloning %s@%s to %s", vm.image, vm.version, vm.disk_path);
        r = pool.driver->disk_clone(&pool, vm.image, vm.version, vm.spec.name,
                                    vm.disk_name,
                                    vm.disk_size, vm.spec.disk.props, vm.spec.disk.nprops,
                                    &disk, err);
    }
    if (r == 0)
        r = qvm_fault_point("disk-cloned", err);
    if (r == 0)
        r = create_data_disks(ctx, j, &vm, err);
    if (r == 0) {
        qvm_say(ctx->ui, "Writing cloud-init NoCloud seed %s", vm.seed_path);
        r = qvm_seed_write(vm.seed_path, vm.spec.user_data, vm.spec.meta_data,
                           vm.spec.network_config, err);
        if (r < 0)
            qvm_err_wrap(err, "cloud-init seed could not be created");
    }
    if (r == 0)
        r = qvm_fault_point("seed-written", err);
    if (r == 0)
        r = qvm_vm_save(&vm, err);
    if (r == 0)
        r = copy_source(file, &vm, err);
    if (r == 0)
        r = qvm_fault_point("definition-written", err);
    if (r == 0 && qvm_vm_libvirt(&vm))
        r = qvm_lv_provision(ctx, &vm, j, !opts->no_start, err);   /* runtime_libvirt.h */
    else if (r == 0 && !opts->no_start)
        r = qvm_memory_start_qemu(ctx, &vm, j, err);   /* memory admission, ZFS ARC */
    if (r == 0 && !opts->no_start && !qvm_vm_libvirt(&vm))
        r = qvm_fault_point("qemu-started", err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    if (r == 0) {
        if (opts->no_start)
            qvm_say(ctx->ui, "VM '%s' provisioned (not started; start it with: qvm start %s)",
                    vm.spec.name, vm.spec.name);
        else
            qvm_say(ctx->ui, "VM '%s' is running (pid %d)", vm.spec.name, (int)qvm_vm_pid(&vm));
        if (vm.ssh_port)
            qvm_say(ctx->ui, "  ssh:     ssh -p %d USER@127.0.0.1", vm.ssh_port);
        qvm_say(ctx->ui, "  console: qvm console %s", vm.spec.name);
        if (qvm_vm_libvirt(&vm))
            qvm_say(ctx->ui, "  libvirt: virsh -c %s dominfo %s", vm.spec.runtime_uri,
                    vm.spec.name);
    }
out:
    if (j) {
        qvm_say(ctx->ui, "Rolling back");
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    if (r < 0)
        qvm_err_task(err, TASK_PROVISION);
    qvm_disk_info_release(&base);
    qvm_disk_info_release(&disk);
    qvm_pool_release(&pool);
    qvm_vm_release(&vm);
    qvm_unlock(lock);
    return r;
}
