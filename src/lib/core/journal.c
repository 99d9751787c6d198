/* journal.c - one file per operation in flight, ROOT/var/lib/qvm/journal/
 * ID.jnl, one JSON object per line:
 *
 *   {"op":"up","lock":"vm-hello","pid":4242,"started":1763776000}
 *   {"undo":"rm_rf","path":"/var/lib/qvm/pools/default/vms/hello"}
 *   {"undo":"kill_qemu","pidfile":"/run/qvm/vms/hello/qemu.pid"}
 *
 * A torn last line (the writer was killed mid-write) is ignored: the step it
 * announced had not started. */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/image.h"
#include "core/pools.h"
#include "core/net.h"
#include "core/process.h"
#include "core/runtime_libvirt.h"
#include "runtime/qmp.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"

#define JOURNAL_MAX (1u << 20)

struct qvm_journal {
    struct qvm_ctx *ctx;
    int fd;
    char *path;
    char *op;
};

static int append_record(struct qvm_journal *j, json_object *rec, struct qvm_error *err)
{
    const char *line = json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN);
    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, line);
    strbuf_addch(&sb, '\n');
    json_object_put(rec);
    size_t off = 0;
    int r = 0;
    while (off < sb.len) {
        ssize_t n = write(j->fd, sb.buf + off, sb.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = qvm_err_errno(err, errno, "cannot write journal %s", j->path);
            break;
        }
        off += (size_t)n;
    }
    strbuf_release(&sb);
    if (r == 0 && fdatasync(j->fd) < 0)
        r = qvm_err_errno(err, errno, "cannot sync journal %s", j->path);
    return r;
}

static void journal_free(struct qvm_journal *j)
{
    if (j->fd >= 0)
        close(j->fd);
    free(j->path);
    free(j->op);
    free(j);
}

static int begin_impl(struct qvm_ctx *ctx, const char *op, const char *lock_kind,
                      const char *lock_name, const char *lock_name2, struct qvm_journal **ret,
                      struct qvm_error *err)
{
    unsigned char rnd[6];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return qvm_err_errno(err, errno, "cannot get random bytes for a journal name");
    struct qvm_journal *j = xcalloc(1, sizeof *j);
    j->ctx = ctx;
    j->op = xasprintf("%s %s", op, lock_name);
    j->path = xasprintf("%s/%ld-%d-%02x%02x%02x%02x%02x%02x.jnl", ctx->paths.journal_dir,
                        (long)time(NULL), (int)getpid(), rnd[0], rnd[1], rnd[2], rnd[3],
                        rnd[4], rnd[5]);
    /* Created under a name recovery ignores, locked and given its header,
     * and only then renamed into place: recovery never sees a journal that
     * is not yet locked by its writer. */
    char *tmp = xasprintf("%s.new", j->path);
    j->fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    int r = 0;
    if (j->fd < 0)
        r = qvm_err_errno(err, errno, "cannot create journal %s", tmp);
    else if (flock(j->fd, LOCK_EX) < 0)
        r = qvm_err_errno(err, errno, "cannot lock journal %s", tmp);
    if (r == 0) {
        json_object *h = json_object_new_object();
        json_object_object_add(h, "op", json_object_new_string(op));
        char *lock = xasprintf("%s-%s", lock_kind, lock_name);
        json_object_object_add(h, "lock", json_object_new_string(lock));
        free(lock);
        if (lock_name2) {
            lock = xasprintf("%s-%s", lock_kind, lock_name2);
            json_object_object_add(h, "lock2", json_object_new_string(lock));
            free(lock);
        }
        json_object_object_add(h, "subject", json_object_new_string(lock_name));
        json_object_object_add(h, "pid", json_object_new_int(getpid()));
        json_object_object_add(h, "started", json_object_new_int64(time(NULL)));
        r = append_record(j, h, err);
    }
    if (r == 0 && rename(tmp, j->path) < 0)
        r = qvm_err_errno(err, errno, "cannot rename journal %s", tmp);
    if (r == 0)
        r = qvm_fsync_dir(ctx->paths.journal_dir, err);
    if (r < 0) {
        unlink(tmp);
        unlink(j->path);
        free(tmp);
        journal_free(j);
        return r;
    }
    free(tmp);
    *ret = j;
    return 0;
}

int qvm_journal_begin(struct qvm_ctx *ctx, const char *op, const char *lock_kind,
                      const char *lock_name, struct qvm_journal **ret, struct qvm_error *err)
{
    return begin_impl(ctx, op, lock_kind, lock_name, NULL, ret, err);
}

int qvm_journal_begin2(struct qvm_ctx *ctx, const char *op, const char *lock_kind,
                       const char *lock_name, const char *lock_name2, struct qvm_journal **ret,
                       struct qvm_error *err)
{
    return begin_impl(ctx, op, lock_kind, lock_name, lock_name2, ret, err);
}

static int add_undo(struct qvm_journal *j, const char *kind, const char *k1, const char *v1,
                    const char *k2, const char *v2, struct qvm_error *err)
{
    json_object *rec = json_object_new_object();
    json_object_object_add(rec, "undo", json_object_new_string(kind));
    json_object_object_add(rec, k1, json_object_new_string(v1));
    if (k2)
        json_object_object_add(rec, k2, json_object_new_string(v2));
    return append_record(j, rec, err);
}

int qvm_journal_undo_net_down(struct qvm_journal *j, const char *name, struct qvm_error *err)
{
    return add_undo(j, "net_down", "name", name, NULL, NULL, err);
}

int qvm_journal_undo_net_up(struct qvm_journal *j, const char *name, struct qvm_error *err)
{
    return add_undo(j, "net_up", "name", name, NULL, NULL, err);
}

int qvm_journal_undo_rm_rf(struct qvm_journal *j, const char *path, struct qvm_error *err)
{
    return add_undo(j, "rm_rf", "path", path, NULL, NULL, err);
}

int qvm_journal_undo_kill_qemu(struct qvm_journal *j, const char *pid_file, struct qvm_error *err)
{
    return add_undo(j, "kill_qemu", "pidfile", pid_file, NULL, NULL, err);
}

int qvm_journal_undo_vm_destroy(struct qvm_journal *j, const char *pool, const char *vm,
                                struct qvm_error *err)
{
    return add_undo(j, "vm_destroy", "pool", pool, "name", vm, err);
}

int qvm_journal_undo_image_destroy(struct qvm_journal *j, const char *pool, const char *image,
                                   struct qvm_error *err)
{
    return add_undo(j, "image_destroy", "pool", pool, "name", image, err);
}

int qvm_journal_undo_version_destroy(struct qvm_journal *j, const char *pool, const char *image,
                                     const char *version, struct qvm_error *err)
{
    json_object *rec = json_object_new_object();
    json_object_object_add(rec, "undo", json_object_new_string("version_destroy"));
    json_object_object_add(rec, "pool", json_object_new_string(pool));
    json_object_object_add(rec, "name", json_object_new_string(image));
    json_object_object_add(rec, "version", json_object_new_string(version));
    return append_record(j, rec, err);
}

int qvm_journal_undo_rename(struct qvm_journal *j, const char *from, const char *to,
                            struct qvm_error *err)
{
    return add_undo(j, "rename", "from", from, "to", to, err);
}

/* {"undo":KIND,"pool":P,"name":VM,"disk":D[,"snapshot":S]} */
static int add_snapshot_undo(struct qvm_journal *j, const char *kind, const char *pool,
                             const char *vm, const char *disk, const char *snap,
                             struct qvm_error *err)
{
    json_object *rec = json_object_new_object();
    json_object_object_add(rec, "undo", json_object_new_string(kind));
    json_object_object_add(rec, "pool", json_object_new_string(pool));
    json_object_object_add(rec, "name", json_object_new_string(vm));
    json_object_object_add(rec, "disk", json_object_new_string(disk));
    if (snap)
        json_object_object_add(rec, "snapshot", json_object_new_string(snap));
    return append_record(j, rec, err);
}

int qvm_journal_undo_snapshot_destroy(struct qvm_journal *j, const char *pool, const char *vm,
                                      const char *disk, const char *snap, struct qvm_error *err)
{
    return add_snapshot_undo(j, "snapshot_destroy", pool, vm, disk, snap, err);
}

int qvm_journal_undo_revert(struct qvm_journal *j, const char *pool, const char *vm,
                            const char *disk, struct qvm_error *err)
{
    return add_snapshot_undo(j, "revert_undo", pool, vm, disk, NULL, err);
}

int qvm_journal_undo_snapshot_tidy(struct qvm_journal *j, const char *pool, const char *vm,
                                   const char *disk, struct qvm_error *err)
{
    return add_snapshot_undo(j, "snapshot_tidy", pool, vm, disk, NULL, err);
}

int qvm_journal_undo_guest_thaw(struct qvm_journal *j, const char *qga_socket,
                                const char *pid_file, struct qvm_error *err)
{
    return add_undo(j, "guest_thaw", "socket", qga_socket, "pidfile", pid_file, err);
}

int qvm_journal_undo_vm_resume(struct qvm_journal *j, const char *qmp_socket,
                               const char *pid_file, struct qvm_error *err)
{
    return add_undo(j, "vm_resume", "socket", qmp_socket, "pidfile", pid_file, err);
}

int qvm_journal_undo_libvirt_undefine(struct qvm_journal *j, const char *uri, const char *uuid,
                                      struct qvm_error *err)
{
    return add_undo(j, "libvirt_undefine", "uri", uri, "uuid", uuid, err);
}

int qvm_journal_undo_libvirt_destroy(struct qvm_journal *j, const char *uri, const char *uuid,
                                     struct qvm_error *err)
{
    return add_undo(j, "libvirt_destroy", "uri", uri, "uuid", uuid, err);
}

int qvm_journal_undo_libvirt_define(struct qvm_journal *j, const char *uri, const char *path,
                                    struct qvm_error *err)
{
    return add_undo(j, "libvirt_define", "uri", uri, "path", path, err);
}

int qvm_journal_undo_libvirt_thaw(struct qvm_journal *j, const char *uri, const char *uuid,
                                  struct qvm_error *err)
{
    return add_undo(j, "libvirt_thaw", "uri", uri, "uuid", uuid, err);
}

int qvm_journal_undo_libvirt_resume(struct qvm_journal *j, const char *uri, const char *uuid,
                                    struct qvm_error *err)
{
    return add_undo(j, "libvirt_resume", "uri", uri, "uuid", uuid, err);
}

int qvm_journal_commit(struct qvm_journal *j, struct qvm_error *err)
{
    /* Delete before unlocking, so no one can mistake it for a dead run. */
    int r = 0;
    if (unlink(j->path) < 0)
        r = qvm_err_errno(err, errno, "cannot remove journal %s", j->path);
    else
        r = qvm_fsync_dir(j->ctx->paths.journal_dir, err);
    journal_free(j);
    return r;
}

static const char *rec_str(json_object *rec, const char *key)
{
    json_object *v;
    if (json_object_object_get_ex(rec, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

/* snapshot_destroy, revert_undo, snapshot_tidy: through the pool's driver. */
static void undo_snapshot(struct qvm_ctx *ctx, json_object *rec, const char *kind,
                          struct strbuf *failed)
{
    const char *pool_name = rec_str(rec, "pool"), *vm = rec_str(rec, "name");
    const char *disk = rec_str(rec, "disk"), *snap = rec_str(rec, "snapshot");
    bool destroy = !strcmp(kind, "snapshot_destroy"), revert = !strcmp(kind, "revert_undo");
    struct qvm_error e = { 0 };
    struct qvm_pool pool;
    if (!pool_name || !vm || !disk || !qvm_name_valid(vm) || !qvm_name_valid(disk) ||
        (destroy && (!snap || !qvm_name_valid(snap)))) {
        strbuf_addf(failed, "\n  damaged journal record '%s'", kind);
        return;
    }
    if (qvm_pool_get(ctx, pool_name, &pool, &e) < 0) {
        strbuf_addf(failed, "\n  %s of VM '%s' was not undone (%s)", kind, vm, e.msg);
        return;
    }
    const struct qvm_storage_driver *d = pool.driver;
    int r = 0;
    if (destroy && d->snapshot_destroy)
        r = d->snapshot_destroy(&pool, vm, disk, snap, &e);
    else if (revert && d->snapshot_revert_undo)
        r = d->snapshot_revert_undo(&pool, vm, disk, &e);
    else if (!destroy && !revert && d->snapshot_tidy)
        r = d->snapshot_tidy(&pool, vm, disk, &e);
    if (r < 0 && destroy)
        strbuf_addf(failed, "\n  snapshot '%s' of VM '%s' was not removed (%s)", snap, vm, e.msg);
    else if (r < 0 && revert)
        strbuf_addf(failed, "\n  disk %s of VM '%s' was not put back as it was before the "
                    "revert (%s)", disk, vm, e.msg);
    else if (r < 0)
        strbuf_addf(failed, "\n  what a clone of VM '%s' left was not removed (%s)", vm, e.msg);
    qvm_pool_release(&pool);
}

/* guest_thaw, vm_resume: a guest left frozen or paused by a snapshot. */
static void undo_quiesce(json_object *rec, const char *kind, struct strbuf *failed)
{
    const char *sock = rec_str(rec, "socket"), *pf = rec_str(rec, "pidfile");
    bool thaw = kind[0] == 'g';
    if (!sock || !pf || qvm_qemu_pid(pf) <= 0)
        return;                    /* QEMU is gone: nothing is frozen or paused */
    struct qvm_error e = { 0 };
    struct qvm_qmp *q = NULL;
    int r = thaw ? qvm_qga_connect(sock, 5000, &q, &e) : qvm_qmp_connect(sock, 5000, &q, &e);
    if (r == 0)
        r = qvm_qmp_execute(q, thaw ? "guest-fsfreeze-thaw" : "cont", NULL, 30000, NULL, &e);
    if (q)
        qvm_qmp_close(q);
    if (r < 0)
        strbuf_addf(failed, thaw ? "\n  the guest's file systems may still be frozen (%s); "
                                   "thaw them with guest-fsfreeze-thaw through %s"
                                 : "\n  the VM may still be paused (%s); resume it with QMP "
                                   "'cont' on %s", e.msg, sock);
}

/* Undoes one record; on failure appends a line to FAILED. */
/* The version an undone step created must not stay listed in image.json
 * either (a commit killed after writing the metadata). */
static void forget_version(const struct qvm_pool *pool, const char *image, const char *ver,
                           struct strbuf *failed)
{
    struct qvm_image img;
    struct qvm_error e = { 0 };
    if (qvm_image_load_from(pool, image, &img, &e) < 0)
        return;         /* no image.json (yet, or any more): nothing lists it */
    for (size_t i = 0; i < img.nversions; i++) {
        struct qvm_image_version *v = &img.versions[i];
        if (strcmp(v->name, ver))
            continue;
        free(v->name);
        free(v->uuid);
        free(v->parent);
        free(v->state);
        memmove(v, v + 1, (img.nversions - i - 1) * sizeof *v);
        img.nversions--;
        if (qvm_image_save(pool, &img, &e) < 0)
            strbuf_addf(failed, "\n  version %s@%s is still listed in image.json (%s)", image,
                        ver, e.msg);
        break;
    }
    qvm_image_release(&img);
}

static void undo_one(struct qvm_ctx *ctx, json_object *rec, struct strbuf *failed)
{
    const char *kind = rec_str(rec, "undo");
    struct qvm_error e = { 0 };
    if (!kind)
        return;
    if (strcmp(kind, "rm_rf") == 0) {
        const char *path = rec_str(rec, "path");
        if (path && qvm_rm_rf(path, &e) < 0)
            strbuf_addf(failed, "\n  %s was not removed (%s); remove it by hand", path, e.msg);
    } else if (strcmp(kind, "kill_qemu") == 0) {
        const char *pf = rec_str(rec, "pidfile");
        pid_t pid = pf ? qvm_qemu_pid(pf) : 0;
        if (pid > 0 && !qvm_process_kill_wait(pid, 5000))
            strbuf_addf(failed, "\n  QEMU process %d did not exit after SIGKILL; kill it by hand",
                        (int)pid);
        if (pf)
            unlink(pf);
    } else if (strcmp(kind, "version_destroy") == 0) {
        const char *pool_name = rec_str(rec, "pool"), *obj = rec_str(rec, "name");
        const char *ver = rec_str(rec, "version");
        struct qvm_pool pool;
        if (!pool_name || !obj || !ver || !qvm_name_valid(obj) || !qvm_name_valid(ver)) {
            strbuf_addf(failed, "\n  damaged journal record '%s'", kind);
        } else if (qvm_pool_get(ctx, pool_name, &pool, &e) < 0) {
            strbuf_addf(failed, "\n  version %s@%s was not removed (%s)", obj, ver, e.msg);
        } else {
            forget_version(&pool, obj, ver, failed);
            if (pool.driver->version_destroy &&
                pool.driver->version_destroy(&pool, obj, ver, &e) < 0)
                strbuf_addf(failed, "\n  version %s@%s in pool '%s' was not removed (%s)", obj,
                            ver, pool_name, e.msg);
            qvm_pool_release(&pool);
        }
    } else if (strcmp(kind, "vm_destroy") == 0 || strcmp(kind, "image_destroy") == 0) {
        /* Storage objects go back through their pool's driver: a zfs
         * dataset or btrfs subvolume is not removed with rm -rf. */
        const char *pool_name = rec_str(rec, "pool"), *obj = rec_str(rec, "name");
        struct qvm_pool pool;
        if (!pool_name || !obj || !qvm_name_valid(obj)) {
            strbuf_addf(failed, "\n  damaged journal record '%s'", kind);
        } else if (qvm_pool_get(ctx, pool_name, &pool, &e) < 0) {
            strbuf_addf(failed, "\n  %s '%s' in pool '%s' was not removed (%s)",
                        kind[0] == 'v' ? "VM" : "image", obj, pool_name, e.msg);
        } else {
            int r = kind[0] == 'v' ? pool.driver->vm_destroy(&pool, obj, &e)
                                   : pool.driver->image_destroy(&pool, obj, &e);
            if (r < 0)
                strbuf_addf(failed, "\n  %s '%s' in pool '%s' was not removed (%s); remove it "
                            "with qvm doctor --repair", kind[0] == 'v' ? "VM" : "image", obj,
                            pool_name, e.msg);
            qvm_pool_release(&pool);
        }
    } else if (strcmp(kind, "snapshot_destroy") == 0 || strcmp(kind, "revert_undo") == 0 ||
               strcmp(kind, "snapshot_tidy") == 0) {
        undo_snapshot(ctx, rec, kind, failed);
    } else if (strcmp(kind, "guest_thaw") == 0 || strcmp(kind, "vm_resume") == 0) {
        undo_quiesce(rec, kind, failed);
    } else if (strncmp(kind, "libvirt_", 8) == 0) {
        qvm_lv_undo(kind, rec_str(rec, "uri"), rec_str(rec, "uuid"), rec_str(rec, "path"), failed);
    } else if (strcmp(kind, "net_down") == 0 || strcmp(kind, "net_up") == 0) {
        const char *name = rec_str(rec, "name");
        struct qvm_network n;
        if (!name || qvm_net_name_check(name, NULL) < 0) {
            strbuf_addf(failed, "\n  damaged journal record '%s'", kind);
        } else if (kind[4] == 'd') {
            qvm_net_down(ctx, name, failed);
        } else if (qvm_net_exists(ctx, name) && qvm_net_load(ctx, name, &n, &e) == 0) {
            if (qvm_net_up(ctx, &n, &e) < 0)
                strbuf_addf(failed, "\n  network '%s' was not brought back up (%s); run qvm net "
                            "up %s", name, e.msg, name);
            qvm_net_release(&n);
        }
    } else if (strcmp(kind, "rename") == 0) {
        const char *from = rec_str(rec, "from"), *to = rec_str(rec, "to");
        /* The step moved FROM to TO; undoing moves it back if it moved. */
        if (from && to && qvm_path_exists(to) && !qvm_path_exists(from) && rename(to, from) < 0)
            strbuf_addf(failed, "\n  %s could not be moved back to %s (%s); move it by hand",
                        to, from, strerror(errno));
    } else {
        strbuf_addf(failed, "\n  unknown journal record '%s'", kind);
    }
}

/* Parses a journal's text into records (the header first). Torn last line
 * ignored. Returns an array (caller puts). */
static json_object *parse_journal(const char *text)
{
    json_object *arr = json_object_new_array();
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;               /* torn write: the step had not started */
        char *line = strndup(p, (size_t)(nl - p));
        json_object *rec = line ? json_tokener_parse(line) : NULL;
        free(line);
        if (rec)
            json_object_array_add(arr, rec);
        p = nl + 1;
    }
    return arr;
}

static int rollback_records(struct qvm_ctx *ctx, json_object *arr, const char *op,
                            struct qvm_error *err)
{
    struct strbuf failed = STRBUF_INIT;
    for (size_t i = json_object_array_length(arr); i-- > 1;)
        undo_one(ctx, json_object_array_get_idx(arr, i), &failed);
    int r = 0;
    if (failed.len)
        r = qvm_err(err, EIO, "rolling back '%s' left changes behind:%s", op, failed.buf);
    strbuf_release(&failed);
    return r;
}

int qvm_journal_rollback(struct qvm_journal *j, struct qvm_error *err)
{
    char *text = NULL;
    size_t len;
    int r = qvm_read_file(j->path, JOURNAL_MAX, &text, &len, err);
    if (r < 0) {
        journal_free(j);
        return qvm_err_wrap(err, "cannot roll back");
    }
    json_object *arr = parse_journal(text);
    free(text);
    r = rollback_records(j->ctx, arr, j->op, err);
    json_object_put(arr);
    if (r == 0) {
        unlink(j->path);
        qvm_fsync_dir(j->ctx->paths.journal_dir, NULL);
    }
    journal_free(j);
    return r;
}

static bool is_journal_name(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".jnl") == 0 && name[0] != '.';
}

/* Tries to take over one journal. Returns 1 if rolled back, 0 if it is
 * held by a live process (or vanished), negative on error. */
static int recover_one(struct qvm_ctx *ctx, const char *path, struct strbuf *report,
                       struct qvm_error *err)
{
    char *text = NULL;
    size_t len;
    if (qvm_read_file(path, JOURNAL_MAX, &text, &len, NULL) < 0)
        return 0;
    json_object *arr = parse_journal(text);
    free(text);
    json_object *hdr = json_object_array_get_idx(arr, 0);
    const char *lock = hdr ? rec_str(hdr, "lock") : NULL;
    const char *lock2 = hdr ? rec_str(hdr, "lock2") : NULL;
    const char *op = hdr ? rec_str(hdr, "op") : NULL;
    const char *subject = hdr ? rec_str(hdr, "subject") : NULL;
    char *desc = xasprintf("%s %s", op ? op : "operation", subject ? subject : "");
    int lock_fd = -1, lock2_fd = -1, r = 0;
    /* Two objects (a clone): both locks, in name order, as the writer. */
    if (lock && lock2 && strcmp(lock2, lock) < 0) {
        const char *t = lock;
        lock = lock2;
        lock2 = t;
    }
    if (lock) {
        /* Object lock first, then the journal's own, then re-check it is
         * still there: the lock order every writer uses. */
        char *lp = xasprintf("%s/%s.lock", ctx->paths.lock_dir, lock);
        lock_fd = qvm_lock_path(lp, false, lock, NULL);
        free(lp);
        if (lock_fd < 0) {
            json_object_put(arr);
            free(desc);
            return 0;
        }
    }
    if (lock && lock2) {
        char *lp = xasprintf("%s/%s.lock", ctx->paths.lock_dir, lock2);
        lock2_fd = qvm_lock_path(lp, false, lock2, NULL);
        free(lp);
        if (lock2_fd < 0) {
            qvm_unlock(lock_fd);
            json_object_put(arr);
            free(desc);
            return 0;
        }
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0 || !qvm_path_exists(path)) {
        if (fd >= 0)
            close(fd);
        qvm_unlock(lock2_fd);
        qvm_unlock(lock_fd);
        json_object_put(arr);
        free(desc);
        return 0;
    }
    /* Re-read under the lock: the writer may have added a record (and died)
     * between our first read and taking the lock. */
    char *fresh = NULL;
    if (qvm_read_file(path, JOURNAL_MAX, &fresh, &len, NULL) == 0) {
        json_object_put(arr);
        arr = parse_journal(fresh);
        free(fresh);
    }
    struct qvm_error e = { 0 };
    if (rollback_records(ctx, arr, desc, &e) == 0) {
        unlink(path);
        qvm_fsync_dir(ctx->paths.journal_dir, NULL);
        strbuf_addf(report, "%s'%s' was interrupted; rolled it back", report->len ? "\n" : "",
                    desc);
        r = 1;
    } else {
        strbuf_addf(report, "%s%s", report->len ? "\n" : "", e.msg);
        r = qvm_err(err, EIO, "%s", e.msg);
    }
    free(desc);
    close(fd);
    qvm_unlock(lock2_fd);
    qvm_unlock(lock_fd);
    json_object_put(arr);
    return r;
}

int qvm_journal_recover(struct qvm_ctx *ctx, struct qvm_error *err)
{
    DIR *d = opendir(ctx->paths.journal_dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return qvm_err_errno(err, errno, "cannot read journal directory %s",
                             ctx->paths.journal_dir);
    }
    struct strbuf report = STRBUF_INIT;
    int recovered = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_journal_name(de->d_name))
            continue;
        char *path = qvm_path_join(ctx->paths.journal_dir, de->d_name);
        int r = recover_one(ctx, path, &report, NULL);
        if (r > 0)
            recovered++;
        free(path);
    }
    closedir(d);
    if (report.len)
        qvm_warn(ctx->ui, "%s", report.buf);
    strbuf_release(&report);
    return recovered;
}

int qvm_journal_list_stale(struct qvm_ctx *ctx, char ***ret_descriptions, size_t *ret_n,
                           struct qvm_error *err)
{
    *ret_descriptions = NULL;
    *ret_n = 0;
    DIR *d = opendir(ctx->paths.journal_dir);
    if (!d)
        return errno == ENOENT ? 0 : qvm_err_errno(err, errno, "cannot read %s",
                                                    ctx->paths.journal_dir);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_journal_name(de->d_name))
            continue;
        char *path = qvm_path_join(ctx->paths.journal_dir, de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *ret_descriptions = xrealloc(*ret_descriptions, (*ret_n + 1) * sizeof(char *));
            (*ret_descriptions)[(*ret_n)++] = xstrdup(path);
        }
        if (fd >= 0)
            close(fd);
        free(path);
    }
    closedir(d);
    return 0;
}
