/* bundle.c - `qvm export`: a VM (its live disk or a snapshot) as one
 * bundle stream (format in bundle.h). The VM is locked for the whole
 * export, so nothing starts it or changes its disk meanwhile. A qcow2 disk
 * is read through a sparse raw copy in the bundle (qemu-img convert): the
 * one persistent step, journaled so a killed export leaves nothing. */
#include "bundle.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/bundle_stream.h"
#include "core/journal.h"
#include "core/pools.h"
#include "core/vm.h"
#include "storage/blockdelta.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

#define CONVERT_TIMEOUT_MS (6 * 60 * 60 * 1000)

static int bundle_io_write(void *ctx, const void *buf, size_t len, struct qvm_error *err)
{
    return qvm_bundle_write(ctx, buf, len, err);
}

/* A sparse raw copy of a qcow2 disk (with its backing chain) at DST. -U:
 * a snapshot of a running VM may share its backing file with the disk
 * QEMU holds; what is read here never changes. */
static int convert_to_raw(const char *src, const char *dst, struct qvm_error *err)
{
    const char *argv[] = { "qemu-img", "convert", "-q", "-U", "-f", "qcow2", "-O", "raw", src,
                           dst, NULL };
    struct qvm_run_opts opts = { .timeout_ms = CONVERT_TIMEOUT_MS };
    int r = qvm_run(argv, &opts, NULL, err);
    return r < 0 ? qvm_err_wrap(err, "cannot read disk %s as raw", src) : 0;
}

/* The manifest: what import needs to recreate the VM, and what it checks. */
static json_object *make_manifest(const struct qvm_vm *vm, json_object *vmjson,
                                  const char *yaml, size_t seed_len, uint64_t size,
                                  const struct qvm_export_opts *opts, const char *driver)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "format", json_object_new_int(1));
    json_object_object_add(m, "name", json_object_new_string(vm->spec.name));
    json_object_object_add(m, "uuid", json_object_new_string(vm->uuid));
    json_object_object_add(m, "snapshot", opts->snapshot ? json_object_new_string(opts->snapshot) : NULL);
    json_object_object_add(m, "from", opts->from ? json_object_new_string(opts->from) : NULL);
    json_object_object_add(m, "exported", json_object_new_int64(time(NULL)));
    json_object *src = json_object_new_object();
    json_object_object_add(src, "pool", json_object_new_string(vm->pool));
    json_object_object_add(src, "driver", json_object_new_string(driver));
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0)
        json_object_object_add(src, "host", json_object_new_string(host));
    json_object_object_add(m, "source", src);
    json_object *origin = json_object_new_object();
    json_object_object_add(origin, "image", vm->image ? json_object_new_string(vm->image) : NULL);
    json_object_object_add(origin, "version", vm->version ? json_object_new_string(vm->version) : NULL);
    json_object_object_add(m, "origin", origin);
    json_object_object_add(m, "vm", json_object_get(vmjson));
    json_object_object_add(m, "vm_yaml", yaml ? json_object_new_string(yaml) : NULL);
    json_object *files = json_object_new_array();
    json_object *f = json_object_new_object();
    json_object_object_add(f, "name", json_object_new_string("seed.iso"));
    json_object_object_add(f, "size", json_object_new_int64((int64_t)seed_len));
    json_object_array_add(files, f);
    json_object_object_add(m, "files", files);
    json_object *disks = json_object_new_array();
    json_object *d = json_object_new_object();
    json_object_object_add(d, "name", json_object_new_string(vm->disk_name));
    json_object_object_add(d, "size", json_object_new_int64((int64_t)size));
    json_object_object_add(d, "encoding", json_object_new_string("qvm-blockdelta-1"));
    json_object_array_add(disks, d);
    json_object_object_add(m, "disks", disks);
    return m;
}

static int write_manifest(struct qvm_bundle_writer *w, json_object *m, struct qvm_error *err)
{
    const char *text = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
    size_t len = strlen(text);
    if (len > QVM_BUNDLE_MANIFEST_MAX)
        return qvm_err(err, EFBIG, "the bundle's manifest would be larger than 4 MiB");
    uint32_t l = htole32((uint32_t)len);
    int r = qvm_bundle_write(w, &l, 4, err);
    return r < 0 ? r : qvm_bundle_write(w, text, len, err);
}

/* Reads the bundle's files: vm.json (required, parsed), vm.yaml (may be
 * missing: a VM made before qvm kept it), seed.iso (required). */
static int read_bundle_files(const struct qvm_vm *vm, json_object **ret_json, char **ret_yaml,
                             char **ret_seed, size_t *ret_seed_len, struct qvm_error *err)
{
    char *p = xasprintf("%s/vm.json", vm->bundle_dir), *text = NULL;
    size_t len;
    int r = qvm_read_file(p, QVM_VM_JSON_MAX, &text, &len, err);
    if (r == 0 && !(*ret_json = json_tokener_parse(text)))
        r = qvm_err(err, EINVAL, "%s is not valid JSON", p);
    free(text);
    free(p);
    if (r < 0)
        return r;
    p = xasprintf("%s/vm.yaml", vm->bundle_dir);
    *ret_yaml = NULL;
    if (qvm_path_exists(p))
        r = qvm_read_file(p, QVM_SPEC_MAX_FILE, ret_yaml, &len, err);
    free(p);
    if (r == 0)
        r = qvm_read_file(vm->seed_path, QVM_BUNDLE_FILE_MAX, ret_seed, ret_seed_len, err);
    if (r < 0) {
        json_object_put(*ret_json);
        free(*ret_yaml);
        *ret_json = NULL;
        *ret_yaml = NULL;
    }
    return r;
}

int qvm_vm_export(struct qvm_ctx *ctx, const char *name, const struct qvm_export_opts *opts,
                  int out_fd, struct qvm_error *err)
{
    struct qvm_vm vm = { 0 };
    struct qvm_pool pool = { 0 };
    struct qvm_journal *j = NULL;
    json_object *vmjson = NULL, *manifest = NULL, *header = NULL;
    struct qvm_disk_info snap = { 0 }, base = { 0 };
    char *yaml = NULL, *seed = NULL, *tmp = NULL, *tmp_base = NULL, *part = NULL;
    int part_fd = -1;
    size_t seed_len = 0;
    struct qvm_bundle_writer w = { 0 };
    int r = qvm_name_check("VM", name, err);
    if (r < 0)
        return r;
    int lock = qvm_lock_object(ctx->paths.lock_dir, "vm", name, false, err);
    if (lock < 0)
        return lock;
    r = qvm_vm_load(ctx, name, &vm, err);
    if (r == 0)
        r = qvm_vm_single_disk(&vm, "exports", err);
    /* A snapshot never changes: it may be exported while the VM runs. */
    if (r == 0 && !opts->snapshot && qvm_vm_pid(&vm) > 0)
        r = qvm_err(err, EBUSY, "VM '%s' is running: its disk changes under the export; stop "
                    "it first (qvm stop %s), or export a snapshot (--snapshot)", name, name);
    if (r == 0 && vm.disk_is_block)
        r = qvm_err(err, ENOTSUP, "VM '%s' has a zvol disk; exporting zvols is not supported "
                    "yet", name);
    if (r == 0)
        r = qvm_pool_get(ctx, vm.pool, &pool, err);
    if (r == 0 && opts->snapshot && !pool.driver->snapshot_locate)
        r = qvm_err(err, ENOTSUP, "pool '%s' (%s) has no VM snapshots to export", pool.name,
                    pool.driver->name);
    if (r == 0 && opts->snapshot)
        r = pool.driver->snapshot_locate(&pool, name, vm.disk_name, opts->snapshot, &snap, err);
    if (r == 0 && opts->from)
        r = pool.driver->snapshot_locate(&pool, name, vm.disk_name, opts->from, &base, err);
    if (r == 0 && opts->from && !strcmp(opts->from, opts->snapshot))
        r = qvm_err(err, EINVAL, "--from names the snapshot itself: nothing would be sent");
    if (r == 0)
        r = read_bundle_files(&vm, &vmjson, &yaml, &seed, &seed_len, err);
    if (r < 0)
        goto out;

    const char *src = opts->snapshot ? snap.path : vm.disk_path;
    const char *src_format = opts->snapshot ? snap.format : vm.disk_format;
    uint64_t size = opts->snapshot && snap.virtual_size ? snap.virtual_size : vm.disk_size;
    bool convert = strcmp(src_format, "raw") != 0;
    bool convert_base = opts->from && strcmp(base.format, "raw") != 0;
    if (opts->output || convert || convert_base)
        r = qvm_journal_begin(ctx, "export", "vm", name, &j, err);
    if (r == 0 && opts->output) {
        part = xasprintf("%s.part", opts->output);
        r = qvm_journal_undo_rm_rf(j, part, err);
        if (r == 0) {
            unlink(part);
            part_fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
            if (part_fd < 0)
                r = qvm_err_errno(err, errno, "cannot create %s", part);
            out_fd = part_fd;
        }
    }
    if (r == 0 && (convert || convert_base))
        qvm_say(ctx->ui, "Reading disk %s of VM '%s' as raw", vm.disk_name, name);
    if (r == 0 && convert) {
        tmp = xasprintf("%s/.export-%s.raw", vm.bundle_dir, vm.disk_name);
        r = qvm_journal_undo_rm_rf(j, tmp, err);
        if (r == 0) {
            unlink(tmp);
            r = convert_to_raw(src, tmp, err);
        }
        src = tmp;
    }
    const char *base_path = opts->from ? base.path : NULL;
    if (r == 0 && convert_base) {
        tmp_base = xasprintf("%s/.export-%s.base.raw", vm.bundle_dir, vm.disk_name);
        r = qvm_journal_undo_rm_rf(j, tmp_base, err);
        if (r == 0) {
            unlink(tmp_base);
            r = convert_to_raw(base.path, tmp_base, err);
        }
        base_path = tmp_base;
    }
    if (r == 0 && (convert || convert_base))
        r = qvm_fault_point("disk-converted", err);
    if (r < 0)
        goto out;

    header = json_object_new_object();
    json_object_object_add(header, "name", json_object_new_string(name));
    json_object_object_add(header, "uuid", json_object_new_string(vm.uuid ? vm.uuid : ""));
    json_object_object_add(header, "snapshot", opts->snapshot ? json_object_new_string(opts->snapshot) : NULL);
    json_object_object_add(header, "from", opts->from ? json_object_new_string(opts->from) : NULL);
    json_object_object_add(header, "compression", json_object_new_string("zstd"));
    json_object_object_add(header, "manifest", json_object_new_string("qvm-bundle-1"));
    if (!vm.uuid) {
        r = qvm_err(err, EINVAL, "VM '%s' has no uuid in its vm.json", name);
        goto out;
    }
    manifest = make_manifest(&vm, vmjson, yaml, seed_len, size, opts, pool.driver->name);
    if (opts->from)
        qvm_say(ctx->ui, "Exporting snapshot '%s' of VM '%s' as the changes since '%s'",
                opts->snapshot, name, opts->from);
    else if (opts->snapshot)
        qvm_say(ctx->ui, "Exporting snapshot '%s' of VM '%s'", opts->snapshot, name);
    else
        qvm_say(ctx->ui, "Exporting VM '%s' (%s pool '%s')", name, pool.driver->name, pool.name);
    r = qvm_bundle_writer_open(&w, out_fd, header, err);
    if (r == 0)
        r = write_manifest(&w, manifest, err);
    if (r == 0)
        r = qvm_bundle_write(&w, seed, seed_len, err);
    if (r == 0) {
        struct qvm_blockdelta_io io = { .write = bundle_io_write, .ctx = &w };
        r = qvm_blockdelta_encode(src, base_path, &io, err);
    }
    if (r == 0)
        r = qvm_fault_point("disk-sent", err);
    if (r == 0)
        r = qvm_bundle_writer_finish(&w, err);
    if (r == 0 && tmp)
        r = qvm_rm_rf(tmp, err);
    if (r == 0 && tmp_base)
        r = qvm_rm_rf(tmp_base, err);
    if (r == 0 && part_fd >= 0 && fsync(part_fd) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", part);
    if (r == 0 && part && rename(part, opts->output) < 0)
        r = qvm_err_errno(err, errno, "cannot rename %s to %s", part, opts->output);
    if (r == 0 && j) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    if (r == 0)
        qvm_say(ctx->ui, "Exported VM '%s'", name);
out:
    if (j) {
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    if (part_fd >= 0)
        close(part_fd);
    free(part);
    qvm_bundle_writer_release(&w);
    json_object_put(header);
    json_object_put(manifest);
    json_object_put(vmjson);
    free(yaml);
    free(seed);
    free(tmp);
    free(tmp_base);
    qvm_disk_info_release(&snap);
    qvm_disk_info_release(&base);
    qvm_pool_release(&pool);
    qvm_vm_release(&vm);
    qvm_unlock(lock);
    return r;
}
