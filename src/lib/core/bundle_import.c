/* bundle_import.c - `qvm import`: a bundle stream becomes a VM on any pool.
 *
 * Journaled like `qvm up`: bundle created, seed written, disk written,
 * definition written, QEMU started; the definition (vm.json, which makes
 * the VM exist for every other command) is written only once the whole
 * stream has arrived and its checksum matched. A cut stream, a damaged one,
 * a full pool or a SIGKILL at any step leaves nothing behind. */
#include "bundle.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/memory.h"
#include "core/bundle_stream.h"
#include "core/journal.h"
#include "core/lifecycle.h"
#include "core/pools.h"
#include "core/vm.h"
#include "storage/blockdelta.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/reflink.h"
#include "util/strbuf.h"
#include "util/subprocess.h"
#include "util/uuid.h"

#define CONVERT_TIMEOUT_MS (6 * 60 * 60 * 1000)

/* The manifest, checked. Strings point into M. */
struct manifest {
    json_object *m;
    const char *name, *uuid, *snapshot, *from, *yaml;
    json_object *vm;
    const char *disk;
    uint64_t disk_size;
    size_t seed_len;
};

static const char *mstr(json_object *o, const char *k)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static bool mint(json_object *o, const char *k, int64_t *ret)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int))
        return false;
    *ret = json_object_get_int64(v);
    return true;
}

static int reader_io_read(void *ctx, void *buf, size_t len, struct qvm_error *err)
{
    return qvm_bundle_read(ctx, buf, len, err);
}

/* Reads and checks the manifest; HEADER must agree with it. */
static int read_manifest(struct qvm_bundle_reader *rd, json_object *header, struct manifest *mf,
                         struct qvm_error *err)
{
    uint32_t len;
    memset(mf, 0, sizeof *mf);
    int r = qvm_bundle_read(rd, &len, 4, err);
    if (r < 0)
        return r;
    len = le32toh(len);
    if (len == 0 || len > QVM_BUNDLE_MANIFEST_MAX)
        return qvm_err(err, EINVAL, "the bundle's manifest is out of range (%u bytes): it is "
                       "damaged", len);
    char *text = xmalloc((size_t)len + 1);
    r = qvm_bundle_read(rd, text, len, err);
    text[len] = '\0';
    if (r == 0 && !(mf->m = json_tokener_parse(text)))
        r = qvm_err(err, EINVAL, "the bundle's manifest is not valid JSON: it is damaged");
    free(text);
    if (r < 0)
        return r;
    int64_t format = 0, size = 0, seed = -1;
    json_object *files = NULL, *disks = NULL, *d, *f;
    mf->name = mstr(mf->m, "name");
    mf->uuid = mstr(mf->m, "uuid");
    mf->snapshot = mstr(mf->m, "snapshot");
    mf->from = mstr(mf->m, "from");
    mf->yaml = mstr(mf->m, "vm_yaml");
    json_object_object_get_ex(mf->m, "vm", &mf->vm);
    json_object_object_get_ex(mf->m, "files", &files);
    json_object_object_get_ex(mf->m, "disks", &disks);
    if (!mint(mf->m, "format", &format) || format != 1)
        return qvm_err(err, EINVAL, "the bundle's format %lld is not one this qvm reads (1)",
                       (long long)format);
    if (!mf->name || !qvm_name_valid(mf->name) || !mf->uuid || strlen(mf->uuid) != 36 ||
        !mf->vm || !json_object_is_type(mf->vm, json_type_object) ||
        (mf->snapshot && !qvm_name_valid(mf->snapshot)) || (mf->from && !qvm_name_valid(mf->from)))
        return qvm_err(err, EINVAL, "the bundle's manifest is incomplete or has invalid names");
    /* One disk and the seed, as vm.json describes a VM today. */
    if (!json_object_is_type(files, json_type_array) || json_object_array_length(files) != 1 ||
        !(f = json_object_array_get_idx(files, 0)) || !mstr(f, "name") ||
        strcmp(mstr(f, "name"), "seed.iso") || !mint(f, "size", &seed) || seed < 0 ||
        seed > QVM_BUNDLE_FILE_MAX ||
        !json_object_is_type(disks, json_type_array) || json_object_array_length(disks) != 1 ||
        !(d = json_object_array_get_idx(disks, 0)) || !mstr(d, "name") ||
        !qvm_name_valid(mstr(d, "name")) || !mint(d, "size", &size) || size <= 0 ||
        !mstr(d, "encoding") || strcmp(mstr(d, "encoding"), "qvm-blockdelta-1"))
        return qvm_err(err, EINVAL, "the bundle's manifest lists files or disks this qvm does "
                       "not know");
    mf->disk = mstr(d, "name");
    mf->disk_size = (uint64_t)size;
    mf->seed_len = (size_t)seed;
    /* The header is outside the checksum: it must say what the manifest says. */
    const char *keys[] = { "name", "uuid", "snapshot", "from" };
    for (size_t i = 0; i < 4; i++) {
        const char *a = mstr(header, keys[i]), *b = mstr(mf->m, keys[i]);
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b)))
            return qvm_err(err, EINVAL, "the bundle's header and manifest disagree on '%s': "
                           "it is damaged", keys[i]);
    }
    return 0;
}

/* A free TCP port on 127.0.0.1; WANT if it is free (0: any). */
static int free_port(int want)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)want) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Some VM on this host already has UUID: its name, or NULL. */
static char *uuid_owner(struct qvm_ctx *ctx, const char *uuid)
{
    char **names;
    size_t n;
    char *owner = NULL;
    if (qvm_vm_list_names(ctx, &names, &n, NULL) < 0)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        struct qvm_vm vm;
        if (!owner && qvm_vm_load(ctx, names[i], &vm, NULL) == 0) {
            if (vm.uuid && !strcmp(vm.uuid, uuid))
                owner = xstrdup(names[i]);
            qvm_vm_release(&vm);
        }
        free(names[i]);
    }
    free(names);
    return owner;
}

/* The keys of vm.json that describe the VM itself; anything else in the
 * exported file (state of the source host) does not travel. */
static const char *const vm_keys[] = {
    "format", "name", "uuid", "created", "pool", "memory_mib", "vcpus", "cpu", "accel",
    "machine", "os_variant", "boot", "graphics", "instance_id", "hostname", "disk", "network",
};

/* vm.json for the imported VM: NAME in POOL, its disk standalone (no image
 * version behind it: where it came from is kept as "origin"). */
static json_object *new_definition(const struct manifest *mf, const char *name,
                                   const struct qvm_pool *pool, bool renamed,
                                   const char *disk_format, const char *instance_id,
                                   const char *hostname)
{
    json_object *o = json_object_new_object();
    for (size_t i = 0; i < sizeof vm_keys / sizeof vm_keys[0]; i++) {
        json_object *v;
        if (json_object_object_get_ex(mf->vm, vm_keys[i], &v)) {
            json_object *copy = NULL;
            json_object_deep_copy(v, &copy, NULL);
            json_object_object_add(o, vm_keys[i], copy);
        }
    }
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "pool", json_object_new_string(pool->name));
    json_object *from = NULL, *origin = NULL;
    if (json_object_object_get_ex(mf->m, "origin", &from) &&
        json_object_is_type(from, json_type_object))
        json_object_deep_copy(from, &origin, NULL);
    if (!origin)
        origin = json_object_new_object();
    json_object_object_add(origin, "vm", json_object_new_string(mf->name));
    json_object_object_add(origin, "uuid", json_object_new_string(mf->uuid));
    json_object *src;
    if (json_object_object_get_ex(mf->m, "source", &src)) {
        const char *host = mstr(src, "host"), *sp = mstr(src, "pool");
        if (host)
            json_object_object_add(origin, "host", json_object_new_string(host));
        if (sp)
            json_object_object_add(origin, "pool", json_object_new_string(sp));
    }
    json_object_object_add(o, "origin", origin);
    json_object *disk = NULL, *net = NULL;
    if (!json_object_object_get_ex(o, "disk", &disk) || !json_object_is_type(disk, json_type_object)) {
        disk = json_object_new_object();
        json_object_object_add(o, "disk", disk);
    }
    json_object_object_add(disk, "name", json_object_new_string(mf->disk));
    json_object_object_add(disk, "format", json_object_new_string(disk_format));
    json_object_object_add(disk, "size", json_object_new_int64((int64_t)mf->disk_size));
    if (renamed) {
        char *uuid = qvm_uuid_new();
        json_object_object_add(o, "uuid", json_object_new_string(uuid));
        free(uuid);
        json_object_object_add(o, "created", json_object_new_int64(time(NULL)));
        json_object_object_add(o, "instance_id", json_object_new_string(instance_id));
        json_object_object_add(o, "hostname", json_object_new_string(hostname));
    }
    if (json_object_object_get_ex(o, "network", &net) && json_object_is_type(net, json_type_object)) {
        if (renamed) {
            char mac[18];
            qvm_vm_mac(pool->name, name, mac);
            json_object_object_add(net, "mac", json_object_new_string(mac));
        }
        int64_t port = 0;
        if (mint(net, "ssh_port", &port) && port > 0 && port < 65536) {
            /* The port forwarded to the guest's SSH is this host's: keep it
             * if it is free here and the VM is the same one. */
            int p = free_port(renamed ? 0 : (int)port);
            if (p < 0)
                p = free_port(0);
            json_object_object_add(net, "ssh_port", json_object_new_int(p > 0 ? p : 0));
        }
    }
    json_object *extra = NULL;
    if (renamed && json_object_object_get_ex(o, "extra_networks", &extra) &&
        json_object_is_type(extra, json_type_array)) {
        /* A copy is a new machine: new MACs for its other NICs too. */
        for (size_t i = 0; i < json_object_array_length(extra); i++) {
            json_object *e = json_object_array_get_idx(extra, i);
            char mac[18];
            qvm_vm_nic_mac(pool->name, name, (unsigned)i + 1, mac);
            if (json_object_is_type(e, json_type_object))
                json_object_object_add(e, "mac", json_object_new_string(mac));
        }
    }
    return o;
}

/* Writes the disk where POOL keeps disk DISK of VM, from the stream. A
 * qcow2 target is written raw beside it, then converted. */
static int write_disk(const struct qvm_pool *pool, const char *vm, const struct manifest *mf,
                      struct qvm_bundle_reader *rd, const char *bundle_dir, char **ret_format,
                      struct qvm_error *err)
{
    struct qvm_disk_info loc;
    int r = pool->driver->disk_locate(pool, vm, mf->disk, &loc, err);
    if (r < 0)
        return r;
    bool qcow2 = strcmp(loc.format, "raw") != 0;
    char *tmp = qcow2 ? xasprintf("%s/.import-%s.raw", bundle_dir, mf->disk) : NULL;
    const char *target = qcow2 ? tmp : loc.path;
    int fd = -1;
    if (loc.is_block) {
        r = qvm_err(err, ENOTSUP, "pool '%s' keeps disks as block devices; importing into it "
                    "is not supported yet", pool->name);
    } else if (!qcow2 && pool->driver->disk_create) {
        r = pool->driver->disk_create(pool, vm, mf->disk, mf->disk_size, err);
        if (r == 0 && (fd = open(target, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
            r = qvm_err_errno(err, errno, "cannot open %s", target);
    } else if ((fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                          0644)) < 0) {
        r = qvm_err_errno(err, errno, "cannot create %s", target);
    }
    uint64_t size = 0;
    if (r == 0) {
        struct qvm_blockdelta_io io = { .read = reader_io_read, .ctx = rd };
        r = qvm_blockdelta_decode(&io, fd, target, &size, err);
    }
    if (r == 0 && size != mf->disk_size)
        r = qvm_err(err, EINVAL, "the bundle's disk holds %llu bytes, its manifest says %llu: "
                    "it is damaged", (unsigned long long)size,
                    (unsigned long long)mf->disk_size);
    if (r == 0 && fsync(fd) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", target);
    if (fd >= 0)
        close(fd);
    if (r == 0 && qcow2) {
        const char *argv[] = { "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", tmp,
                               loc.path, NULL };
        struct qvm_run_opts opts = { .timeout_ms = CONVERT_TIMEOUT_MS };
        r = qvm_run(argv, &opts, NULL, err);
        if (r < 0)
            qvm_err_wrap(err, "cannot write disk %s", loc.path);
        int sfd = r == 0 ? open(loc.path, O_RDONLY | O_CLOEXEC) : -1;
        if (sfd >= 0) {
            if (fsync(sfd) < 0)
                r = qvm_err_errno(err, errno, "cannot sync %s", loc.path);
            close(sfd);
        }
    }
    if (tmp)
        unlink(tmp);
    free(tmp);
    if (r == 0)
        *ret_format = xstrdup(loc.format);
    qvm_disk_info_release(&loc);
    return r;
}

static int write_definition(const char *bundle_dir, json_object *def, const char *yaml,
                            struct qvm_error *err)
{
    int r = 0;
    if (yaml) {
        char *p = xasprintf("%s/vm.yaml", bundle_dir);
        r = qvm_write_file_atomic(p, yaml, strlen(yaml), 0600, err);
        free(p);
    }
    if (r < 0)
        return r;
    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, json_object_to_json_string_ext(def, JSON_C_TO_STRING_PRETTY |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
    strbuf_addch(&sb, '\n');
    char *p = xasprintf("%s/vm.json", bundle_dir);
    r = qvm_write_file_atomic(p, sb.buf, sb.len, 0644, err);
    free(p);
    strbuf_release(&sb);
    return r;
}

/* The directory of PATH; caller frees. */
static char *dir_of(const char *path)
{
    char *d = xstrdup(path), *slash = strrchr(d, '/');
    if (slash && slash != d)
        *slash = '\0';
    return d;
}

/* STAGED (new) as a readable copy of the snapshot BASE: a reflink where the
 * file system shares extents, else a sparse copy through qemu-img. */
static int copy_snapshot(const struct qvm_disk_info *base, const char *staged,
                         struct qvm_error *err)
{
    if (!strcmp(base->format, "raw") && qvm_reflink_new(base->path, staged, 0644, NULL) == 0)
        return 0;
    const char *argv[] = { "qemu-img", "convert", "-q", "-U", "-f", base->format, "-O", "raw",
                           base->path, staged, NULL };
    struct qvm_run_opts opts = { .timeout_ms = CONVERT_TIMEOUT_MS };
    int r = qvm_run(argv, &opts, NULL, err);
    return r < 0 ? qvm_err_wrap(err, "cannot copy snapshot %s", base->path) : 0;
}

/* "uuid", or the uuid a copy made by import --name came from. */
static bool same_vm(const struct qvm_vm *vm, const char *uuid)
{
    if (vm->uuid && !strcmp(vm->uuid, uuid))
        return true;
    char *p = xasprintf("%s/vm.json", vm->bundle_dir), *text = NULL;
    size_t len;
    bool same = false;
    if (qvm_read_file(p, QVM_VM_JSON_MAX, &text, &len, NULL) == 0) {
        json_object *o = json_tokener_parse(text), *origin = NULL;
        if (o && json_object_object_get_ex(o, "origin", &origin))
            same = mstr(origin, "uuid") && !strcmp(mstr(origin, "uuid"), uuid);
        json_object_put(o);
    }
    free(text);
    free(p);
    return same;
}

/* An incremental bundle (the changes from snapshot FROM to SNAP) applies
 * onto the VM that has FROM: its disk becomes FROM plus the changes, and
 * SNAP is taken of it. Journaled: the new disk is built beside the current
 * one, the current one set aside by a rename, the new one renamed into its
 * place; any failure or SIGKILL before the commit renames them back. */
static int import_incremental(struct qvm_ctx *ctx, const struct qvm_import_opts *opts,
                              struct qvm_bundle_reader *rd, const struct manifest *mf,
                              struct qvm_error *err)
{
    const char *name = opts->name ? opts->name : mf->name;
    struct qvm_vm vm = { 0 };
    struct qvm_pool pool = { 0 };
    struct qvm_disk_info base = { 0 }, cur = { 0 }, probe = { 0 };
    struct qvm_journal *j = NULL;
    char *dir = NULL, *staged = NULL, *staged_q = NULL, *old = NULL, *seed = NULL;
    int fd = -1;
    bool loaded = false;
    int r = qvm_name_check("VM", name, err);
    if (r < 0)
        return r;
    int lock = qvm_lock_object(ctx->paths.lock_dir, "vm", name, false, err);
    if (lock < 0)
        return lock;
    r = qvm_vm_load(ctx, name, &vm, err);
    loaded = r == 0;
    if (r == -ENOENT)
        r = qvm_err(err, ENOENT, "the bundle holds the changes of VM '%s' since its snapshot "
                    "'%s', but there is no VM '%s' here: import the bundle of '%s' first",
                    mf->name, mf->from, name, mf->from);
    if (r == 0 && !same_vm(&vm, mf->uuid))
        r = qvm_err(err, EINVAL, "VM '%s' here is not the VM the bundle was made from (uuid %s)",
                    name, mf->uuid);
    if (r == 0 && opts->pool && strcmp(opts->pool, vm.pool))
        r = qvm_err(err, EINVAL, "an incremental bundle applies to VM '%s' where it is (pool "
                    "'%s'), not to pool '%s'", name, vm.pool, opts->pool);
    if (r == 0 && qvm_vm_pid(&vm) > 0)
        r = qvm_err(err, EBUSY, "VM '%s' is running: stop it before its disk is replaced", name);
    if (r == 0 && strcmp(vm.disk_name, mf->disk))
        r = qvm_err(err, EINVAL, "the bundle's disk is %s, VM '%s' has %s", mf->disk, name,
                    vm.disk_name);
    if (r == 0)
        r = qvm_pool_get(ctx, vm.pool, &pool, err);
    if (r == 0 && (!pool.driver->snapshot_locate || !pool.driver->snapshot_create))
        r = qvm_err(err, ENOTSUP, "pool '%s' (%s) has no VM snapshots to apply the bundle to",
                    pool.name, pool.driver->name);
    if (r == 0 && pool.driver->snapshot_locate(&pool, name, vm.disk_name, mf->from, &base,
                                               NULL) < 0)
        r = qvm_err(err, ENOENT, "VM '%s' has no snapshot '%s', which the bundle's changes "
                    "apply to: import the bundle of '%s' first", name, mf->from, mf->from);
    if (r == 0 && pool.driver->snapshot_locate(&pool, name, vm.disk_name, mf->snapshot, &probe,
                                               NULL) == 0)
        r = qvm_err(err, EEXIST, "VM '%s' already has snapshot '%s'", name, mf->snapshot);
    if (r == 0)
        r = pool.driver->disk_locate(&pool, name, vm.disk_name, &cur, err);
    if (r < 0)
        goto out;
    qvm_say(ctx->ui, "Applying the changes of VM '%s' from snapshot '%s' to '%s'", name,
            mf->from, mf->snapshot);
    /* Beside the disk, so that the renames stay inside one file system (a
     * btrfs subvolume or zfs dataset of its own). */
    dir = dir_of(cur.path);
    staged = xasprintf("%s/.import-%s.raw", dir, vm.disk_name);
    old = xasprintf("%s/.import-old-%s.%s", dir, vm.disk_name, cur.format);
    r = qvm_journal_begin(ctx, "import", "vm", name, &j, err);
    if (r == 0)
        r = qvm_journal_undo_rm_rf(j, staged, err);
    if (r == 0) {
        unlink(staged);
        r = copy_snapshot(&base, staged, err);
    }
    seed = xmalloc(mf->seed_len ? mf->seed_len : 1);
    if (r == 0)      /* the VM keeps its own seed */
        r = qvm_bundle_read(rd, seed, mf->seed_len, err);
    if (r == 0 && (fd = open(staged, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        r = qvm_err_errno(err, errno, "cannot open %s", staged);
    uint64_t size = 0;
    if (r == 0) {
        struct qvm_blockdelta_io io = { .read = reader_io_read, .ctx = rd };
        r = qvm_blockdelta_decode(&io, fd, staged, &size, err);
    }
    if (r == 0 && fsync(fd) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", staged);
    if (fd >= 0)
        close(fd);
    if (r == 0)
        r = qvm_fault_point("disk-written", err);
    if (r == 0)
        r = qvm_bundle_reader_finish(rd, err);
    const char *next = staged;
    if (r == 0 && strcmp(cur.format, "raw") != 0) {
        staged_q = xasprintf("%s/.import-%s.%s", dir, vm.disk_name, cur.format);
        const char *argv[] = { "qemu-img", "convert", "-q", "-f", "raw", "-O", cur.format,
                               staged, staged_q, NULL };
        struct qvm_run_opts ro = { .timeout_ms = CONVERT_TIMEOUT_MS };
        r = qvm_journal_undo_rm_rf(j, staged_q, err);
        if (r == 0) {
            unlink(staged_q);
            r = qvm_run(argv, &ro, NULL, err);
        }
        next = staged_q;
    }
    if (r == 0)
        r = qvm_journal_undo_rename(j, cur.path, old, err);
    if (r == 0 && rename(cur.path, old) < 0)
        r = qvm_err_errno(err, errno, "cannot set %s aside", cur.path);
    if (r == 0)
        r = qvm_fault_point("disk-set-aside", err);
    if (r == 0)
        r = qvm_journal_undo_rename(j, next, cur.path, err);
    if (r == 0 && rename(next, cur.path) < 0)
        r = qvm_err_errno(err, errno, "cannot rename %s to %s", next, cur.path);
    if (r == 0)
        r = qvm_fsync_dir(dir, err);
    if (r == 0)
        r = qvm_fault_point("disk-replaced", err);
    if (r == 0)
        r = qvm_journal_undo_snapshot_destroy(j, pool.name, name, vm.disk_name, mf->snapshot,
                                              err);
    if (r == 0)
        r = pool.driver->snapshot_create(&pool, name, vm.disk_name, mf->snapshot, err);
    if (r == 0)
        r = qvm_fault_point("snapshot-made", err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    if (r == 0) {
        qvm_rm_rf(old, NULL);
        qvm_rm_rf(staged, NULL);
        qvm_say(ctx->ui, "VM '%s' is at snapshot '%s' (%.2f GiB disk)", name, mf->snapshot,
                (double)size / (1024.0 * 1024 * 1024));
    }
out:
    if (j) {
        qvm_say(ctx->ui, "Rolling back");
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    free(dir);
    free(staged);
    free(staged_q);
    free(old);
    free(seed);
    qvm_disk_info_release(&base);
    qvm_disk_info_release(&cur);
    qvm_disk_info_release(&probe);
    qvm_pool_release(&pool);
    if (loaded)
        qvm_vm_release(&vm);
    qvm_unlock(lock);
    return r;
}

int qvm_vm_import(struct qvm_ctx *ctx, const struct qvm_import_opts *opts, int in_fd,
                  struct qvm_error *err)
{
    struct qvm_bundle_reader rd = { 0 };
    struct manifest mf = { 0 };
    struct qvm_pool pool = { 0 };
    struct qvm_journal *j = NULL;
    struct qvm_vm vm = { 0 };
    json_object *header = NULL, *def = NULL;
    char *seed = NULL, *bundle_dir = NULL, *run_dir = NULL, *new_yaml = NULL;
    char *iid = NULL, *host = NULL, *format = NULL, *owner = NULL;
    int lock = -1;
    bool loaded = false;
    int r = qvm_bundle_reader_open(&rd, in_fd, &header, err);
    if (r == 0)
        r = read_manifest(&rd, header, &mf, err);
    if (r < 0)
        goto out;
    if (mf.from) {
        r = import_incremental(ctx, opts, &rd, &mf, err);
        goto out;
    }
    const char *name = opts->name ? opts->name : mf.name;
    bool renamed = strcmp(name, mf.name) != 0;
    if ((r = qvm_name_check("VM", name, err)) < 0)
        goto out;
    if (renamed && !mf.yaml) {
        r = qvm_err(err, EINVAL, "the bundle has no qvm file (vm.yaml) to make the new seed "
                    "of '%s' from; import it under its own name", name);
        goto out;
    }
    if ((r = qvm_pool_get(ctx, opts->pool, &pool, err)) < 0)
        goto out;
    lock = qvm_lock_object(ctx->paths.lock_dir, "vm", name, false, err);
    if (lock < 0) {
        r = lock;
        goto out;
    }
    struct qvm_vm existing;
    if (qvm_vm_load(ctx, name, &existing, NULL) == 0) {
        r = qvm_err(err, EEXIST, "VM '%s' already exists (pool '%s'); import under another "
                    "name with --name NEW, or remove it first (qvm rm %s)", name,
                    existing.pool, name);
        qvm_vm_release(&existing);
        goto out;
    }
    if (!renamed && (owner = uuid_owner(ctx, mf.uuid))) {
        r = qvm_err(err, EEXIST, "VM '%s' on this host is the same VM (uuid %s); import a copy "
                    "with --name NEW", owner, mf.uuid);
        goto out;
    }
    bundle_dir = pool.driver->vm_dir(&pool, name);
    if (qvm_path_exists(bundle_dir)) {
        r = qvm_err(err, EEXIST, "pool '%s' already has a bundle directory %s without a VM "
                    "definition; qvm doctor --repair removes what an interrupted command left",
                    pool.name, bundle_dir);
        goto out;
    }
    run_dir = qvm_paths_vm_run_dir(&ctx->paths, name);
    qvm_say(ctx->ui, "Importing VM '%s'%s%s into %s pool '%s'", mf.name, renamed ? " as " : "",
            renamed ? name : "", pool.driver->name, pool.name);

    r = qvm_journal_begin(ctx, "import", "vm", name, &j, err);
    if (r == 0)
        r = qvm_journal_undo_vm_destroy(j, pool.name, name, err);
    if (r == 0)
        r = pool.driver->vm_create(&pool, name, err);
    if (r == 0)
        r = qvm_journal_undo_rm_rf(j, run_dir, err);
    if (r == 0)
        r = qvm_fault_point("bundle-created", err);
    if (r < 0)
        goto out;

    char *seed_path = xasprintf("%s/seed.iso", bundle_dir);
    seed = xmalloc(mf.seed_len ? mf.seed_len : 1);
    r = qvm_bundle_read(&rd, seed, mf.seed_len, err);
    if (r == 0 && renamed)
        r = qvm_bundle_renamed_seed(mf.yaml, strlen(mf.yaml), name, seed_path, &new_yaml, &iid,
                                    &host, err);
    else if (r == 0)
        r = qvm_write_file_atomic(seed_path, seed, mf.seed_len, 0644, err);
    free(seed_path);
    if (r == 0)
        r = qvm_fault_point("seed-written", err);
    if (r == 0) {
        qvm_say(ctx->ui, "Writing disk %s (%.2f GiB)", mf.disk,
                (double)mf.disk_size / (1024.0 * 1024 * 1024));
        r = write_disk(&pool, name, &mf, &rd, bundle_dir, &format, err);
    }
    if (r == 0)
        r = qvm_fault_point("disk-written", err);
    /* Everything has arrived: only a whole, undamaged stream becomes a VM. */
    if (r == 0)
        r = qvm_bundle_reader_finish(&rd, err);
    /* A bundle of snapshot SNAP makes the VM with SNAP, so the next
     * incremental bundle (--from SNAP) applies onto it. The snapshot is
     * kept with the bundle: the journal's vm_destroy frees it too. */
    if (r == 0 && mf.snapshot && pool.driver->snapshot_create) {
        r = pool.driver->snapshot_create(&pool, name, mf.disk, mf.snapshot, err);
        if (r == 0)
            r = qvm_fault_point("snapshot-made", err);
    }
    if (r == 0) {
        def = new_definition(&mf, name, &pool, renamed, format, iid, host);
        r = write_definition(bundle_dir, def, renamed ? new_yaml : mf.yaml, err);
    }
    if (r == 0)
        r = qvm_fault_point("definition-written", err);
    if (r == 0) {
        r = qvm_vm_load(ctx, name, &vm, err);
        loaded = r == 0;
        if (r < 0)
            qvm_err_wrap(err, "the imported definition");
    }
    if (r == 0 && !opts->no_start)
        r = qvm_memory_start_qemu(ctx, &vm, j, err);   /* memory admission, ZFS ARC */
    if (r == 0 && !opts->no_start)
        r = qvm_fault_point("qemu-started", err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    if (r == 0) {
        if (opts->no_start)
            qvm_say(ctx->ui, "VM '%s' imported (not started; start it with: qvm start %s)",
                    name, name);
        else
            qvm_say(ctx->ui, "VM '%s' imported and running (pid %d)", name,
                    (int)qvm_vm_pid(&vm));
        if (vm.ssh_port)
            qvm_say(ctx->ui, "  ssh:     ssh -p %d USER@127.0.0.1", vm.ssh_port);
    }
out:
    if (j) {
        qvm_say(ctx->ui, "Rolling back");
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    if (loaded)
        qvm_vm_release(&vm);
    qvm_unlock(lock);
    qvm_bundle_reader_release(&rd);
    json_object_put(header);
    json_object_put(mf.m);
    json_object_put(def);
    free(seed);
    free(bundle_dir);
    free(run_dir);
    free(new_yaml);
    free(iid);
    free(host);
    free(format);
    free(owner);
    qvm_pool_release(&pool);
    return r;
}
