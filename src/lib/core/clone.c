/* clone.c - qvm clone SRC DST [--snapshot SNAP].
 *
 * The clone is a new machine to cloud-init: a new instance-id (so cloud-init
 * runs its per-instance modules again), a MAC derived from its own name, and
 * DST as host name, all in a new NoCloud seed. SRC's qvm file (vm.yaml) is
 * copied with just those values replaced (qvm_clone_rewrite_file) and parsed
 * again, as `qvm up` would; its settings are then taken from SRC's vm.json,
 * which `qvm edit` may have changed since. The clone records SRC's image
 * and version, so that image rm keeps refusing while it exists.
 *
 * Both VMs are locked, in name order. Journaled: (undo first, last undone)
 * SRC's storage tidied of what a clone left, DST's bundle created, the disk
 * cloned (SRC kept still meanwhile if it runs and no snapshot was named),
 * the seed, the definition, QEMU started. The journal names both locks, so
 * recovery takes both as well. */
#include "clone.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <yaml.h>

#include "core/memory.h"
#include "core/journal.h"
#include "core/lifecycle.h"
#include "core/monitor.h"
#include "core/pools.h"
#include "core/snapshot.h"
#include "core/vm.h"
#include "seed/seed.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/uuid.h"

#define TASK_CLONE "cloning virtual machine"

/* ------------------------------------------------- the clone's qvm file */

struct edit {
    size_t start, end;          /* bytes of the source replaced */
    char *text;
};

/* One scalar value found under a top-level key of a document (or under
 * network: in one). */
struct found {
    char key[32];               /* "name", "network.mac", ... */
    char *value;
    size_t start, end;          /* characters, as libyaml marks them */
    yaml_scalar_style_t style;
    bool scalar;
};

struct frame {
    bool map, want_key, network;
    char key[32];               /* the key whose value comes next */
};

#define MAX_DEPTH 64
#define MAX_FOUND 32

struct rewriter {
    const char *data;
    size_t len, base;           /* base: a UTF-8 BOM, which marks do not count */
    size_t cur_idx, cur_off;
    struct edit *edits;
    size_t nedits;
    struct frame stack[MAX_DEPTH];
    int depth;
    struct found found[MAX_FOUND];
    size_t nfound;
};

/* libyaml marks count characters; the text is UTF-8 (libyaml read it). */
static size_t byte_at(struct rewriter *w, size_t idx)
{
    if (idx < w->cur_idx) {
        w->cur_idx = 0;
        w->cur_off = w->base;
    }
    while (w->cur_idx < idx && w->cur_off < w->len) {
        w->cur_off++;
        while (w->cur_off < w->len && ((unsigned char)w->data[w->cur_off] & 0xC0) == 0x80)
            w->cur_off++;
        w->cur_idx++;
    }
    return w->cur_off;
}

static void forget_found(struct rewriter *w)
{
    for (size_t i = 0; i < w->nfound; i++)
        free(w->found[i].value);
    w->nfound = 0;
}

/* A node ended inside the current container: in a mapping, a key is
 * followed by its value and a value by the next key. */
static void node_done(struct rewriter *w)
{
    if (w->depth > 0 && w->stack[w->depth - 1].map)
        w->stack[w->depth - 1].want_key = !w->stack[w->depth - 1].want_key;
}

/* Records the node that starts with EV if it is a value we may replace. */
static void note_value(struct rewriter *w, const yaml_event_t *ev)
{
    struct frame *f = w->depth > 0 ? &w->stack[w->depth - 1] : NULL;
    if (!f || !f->map || f->want_key || !f->key[0] || w->nfound == MAX_FOUND)
        return;
    bool root = w->depth == 1;
    if (!root && !(w->depth == 2 && f->network))
        return;
    char key[sizeof f->key];
    memcpy(key, f->key, sizeof key);
    struct found *x = &w->found[w->nfound++];
    memset(x, 0, sizeof *x);
    snprintf(x->key, sizeof x->key, "%s%s", root ? "" : "network.", key);
    x->start = ev->start_mark.index;
    x->end = ev->end_mark.index;
    x->scalar = ev->type == YAML_SCALAR_EVENT;
    if (x->scalar) {
        x->style = ev->data.scalar.style;
        x->value = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        if (!x->value)
            abort();
    }
}

static const struct found *find(const struct rewriter *w, const char *key)
{
    for (size_t i = 0; i < w->nfound; i++)
        if (!strcmp(w->found[i].key, key))
            return &w->found[i];
    return NULL;
}

/* Replaces the value of KEY (if the document has one) by TEXT, written as
 * is (PLAIN) or double-quoted. */
static int replace(struct rewriter *w, const char *doc, const char *key, const char *text,
                   bool plain, struct qvm_error *err)
{
    const struct found *x = find(w, key);
    if (!x)
        return 0;
    if (!x->scalar || (x->style != YAML_PLAIN_SCALAR_STYLE &&
                       x->style != YAML_SINGLE_QUOTED_SCALAR_STYLE &&
                       x->style != YAML_DOUBLE_QUOTED_SCALAR_STYLE))
        return qvm_err(err, EINVAL, "the %s document's '%s' is not a plain or quoted value; "
                       "qvm cannot set it for the clone", doc, key);
    w->edits = xrealloc(w->edits, (w->nedits + 1) * sizeof *w->edits);
    struct edit *e = &w->edits[w->nedits++];
    e->start = byte_at(w, x->start);
    e->end = byte_at(w, x->end);
    e->text = plain ? xstrdup(text) : xasprintf("\"%s\"", text);
    return 0;
}

/* The document just read ended: its replacements, by its kind. */
static int document_done(struct rewriter *w, const char *dst, const char *mac, const char *iid,
                         struct qvm_error *err)
{
    const struct found *q = find(w, "qvm");
    const char *kind = q && q->scalar ? q->value : "";
    int r = 0;
    if (!strcmp(kind, "vm")) {
        r = replace(w, kind, "name", dst, false, err);
        if (r == 0)
            r = replace(w, kind, "network.mac", mac, false, err);
        const struct found *port = find(w, "network.ssh-port");
        /* A fixed port is SRC's; the clone gets one of its own. */
        if (r == 0 && port && port->scalar && strcmp(port->value, "auto") &&
            strcmp(port->value, "none"))
            r = replace(w, kind, "network.ssh-port", "auto", true, err);
    } else if (!strcmp(kind, "user-data")) {
        /* cloud-init sets the host name from these before meta-data's. */
        r = replace(w, kind, "hostname", dst, false, err);
        const struct found *fqdn = find(w, "fqdn");
        if (r == 0 && fqdn && fqdn->scalar) {
            const char *dot = strchr(fqdn->value, '.');
            char *v = xasprintf("%s%s", dst, dot ? dot : "");
            r = replace(w, kind, "fqdn", v, false, err);
            free(v);
        }
    } else if (!strcmp(kind, "meta-data") || !strcmp(kind, "metadata")) {
        r = replace(w, kind, "instance-id", iid, false, err);
        if (r == 0)
            r = replace(w, kind, "local-hostname", dst, false, err);
    }
    forget_found(w);
    return r;
}

static int walk(struct rewriter *w, yaml_parser_t *p, const char *dst, const char *mac,
                const char *iid, struct qvm_error *err)
{
    int r = 0;
    for (bool done = false; r == 0 && !done;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(p, &ev))
            return qvm_err(err, EINVAL, "the qvm file does not parse: %s",
                           p->problem ? p->problem : "YAML error");
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            w->depth = 0;
            forget_found(w);
            break;
        case YAML_DOCUMENT_END_EVENT:
            r = document_done(w, dst, mac, iid, err);
            break;
        case YAML_SCALAR_EVENT: {
            struct frame *f = w->depth > 0 ? &w->stack[w->depth - 1] : NULL;
            if (f && f->map && f->want_key)
                snprintf(f->key, sizeof f->key, "%.*s", (int)ev.data.scalar.length,
                         (const char *)ev.data.scalar.value);
            else
                note_value(w, &ev);
            node_done(w);
            break;
        }
        case YAML_ALIAS_EVENT:
            note_value(w, &ev);
            node_done(w);
            break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT: {
            struct frame *f = w->depth > 0 ? &w->stack[w->depth - 1] : NULL;
            bool network = w->depth == 1 && f && f->map && !f->want_key &&
                           !strcmp(f->key, "network");
            if (f && f->map && f->want_key)
                f->key[0] = '\0';            /* a complex key: its value is not ours */
            else
                note_value(w, &ev);
            if (w->depth == MAX_DEPTH) {
                r = qvm_err(err, EINVAL, "the qvm file nests deeper than %d", MAX_DEPTH);
                break;
            }
            w->stack[w->depth++] = (struct frame){ .map = ev.type == YAML_MAPPING_START_EVENT,
                                                   .want_key = true, .network = network };
            break;
        }
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            if (w->depth > 0)
                w->depth--;
            node_done(w);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    return r;
}

int qvm_clone_rewrite_file(const char *src_text, size_t len, const char *dst, const char *mac,
                           const char *instance_id, char **ret, struct qvm_error *err)
{
    struct rewriter w = { .data = src_text, .len = len };
    const unsigned char *u = (const unsigned char *)src_text;
    if (len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF)
        w.base = 3;
    w.cur_off = w.base;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return qvm_err(err, ENOMEM, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&p, u, len);
    int r = walk(&w, &p, dst, mac, instance_id, err);
    yaml_parser_delete(&p);
    forget_found(&w);
    struct strbuf sb = STRBUF_INIT;
    size_t at = 0;
    for (size_t i = 0; r == 0 && i < w.nedits; i++) {
        if (w.edits[i].start < at || w.edits[i].end < w.edits[i].start) {
            r = qvm_err(err, EINVAL, "cannot rewrite the qvm file: overlapping values");
            break;
        }
        strbuf_add(&sb, src_text + at, w.edits[i].start - at);
        strbuf_addstr(&sb, w.edits[i].text);
        at = w.edits[i].end;
    }
    if (r == 0) {
        strbuf_add(&sb, src_text + at, len - at);
        *ret = strbuf_detach(&sb, NULL);
    } else {
        strbuf_release(&sb);
    }
    for (size_t i = 0; i < w.nedits; i++)
        free(w.edits[i].text);
    free(w.edits);
    return r;
}

/* ------------------------------------------------------------ the clone */

/* A free TCP port on 127.0.0.1, chosen by the kernel (as qvm up does). */
static int free_port(int *ret, struct qvm_error *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot create a socket to find a free port");
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof sa;
    int r = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &slen) < 0)
        r = qvm_err_errno(err, errno, "cannot find a free port on 127.0.0.1");
    else
        *ret = ntohs(sa.sin_port);
    close(fd);
    return r;
}

static void take(char **to, const char *from)
{
    if (from) {
        free(*to);
        *to = xstrdup(from);
    }
}

/* SRC's settings as its vm.json has them now. */
static void take_settings(struct qvm_vm_spec *to, const struct qvm_vm_spec *from)
{
    to->memory_mib = from->memory_mib;
    to->vcpus = from->vcpus;
    to->graphics = from->graphics;
    to->net.type = from->net.type;
    take(&to->cpu, from->cpu);
    take(&to->accel, from->accel);
    take(&to->machine, from->machine);
    take(&to->os_variant, from->os_variant);
    take(&to->boot, from->boot);
    take(&to->disk.bus, from->disk.bus);
    take(&to->disk.cache, from->disk.cache);
    take(&to->disk.base, from->disk.base);
    take(&to->net.model, from->net.model);
    take(&to->net.source, from->net.source);
    /* The runtime is SRC's, wherever it was chosen (runtime_libvirt.h). */
    free(to->runtime);
    free(to->runtime_uri);
    to->runtime = from->runtime ? xstrdup(from->runtime) : NULL;
    to->runtime_uri = from->runtime_uri ? xstrdup(from->runtime_uri) : NULL;
    if (to->net.type == QVM_NET_NONE)
        to->net.ssh_port = -1;
}

/* DST's definition (and its qvm file's text in *RET_TEXT) from SRC's. */
static int define_clone(struct qvm_ctx *ctx, const struct qvm_vm *src, const char *dst,
                        const struct qvm_pool *pool, uint64_t disk_size, struct qvm_vm *ret,
                        char **ret_text, struct qvm_error *err)
{
    char *file = xasprintf("%s/vm.yaml", src->bundle_dir);
    char *text = NULL, *out = NULL;
    size_t len;
    int r = qvm_read_file(file, QVM_SPEC_MAX_FILE, &text, &len, err);
    if (r < 0)
        qvm_err_wrap(err, "VM '%s' has no qvm file to clone it from", src->spec.name);
    char mac[18];
    qvm_vm_mac(pool->name, dst, mac);
    char *uuid = qvm_uuid_new();
    char *iid = xasprintf("%s-%.8s", dst, uuid);
    if (r == 0)
        r = qvm_clone_rewrite_file(text, len, dst, mac, iid, &out, err);
    memset(ret, 0, sizeof *ret);
    if (r == 0)
        r = qvm_spec_parse(file, out, strlen(out), &ret->spec, err);
    if (r < 0) {
        qvm_err_wrap(err, "cannot make the qvm file of clone '%s' from %s", dst, file);
    } else if (strcmp(ret->spec.name, dst) != 0 || !strcmp(ret->spec.instance_id, src->spec.instance_id
                                                            ? src->spec.instance_id : "")) {
        r = qvm_err(err, EINVAL, "cannot make the qvm file of clone '%s' from %s: its name or "
                    "instance-id is set in a way qvm cannot change", dst, file);
    }
    if (r == 0) {
        take_settings(&ret->spec, &src->spec);
        ret->uuid = uuid;
        uuid = NULL;
        ret->created = time(NULL);
        ret->pool = xstrdup(pool->name);
        ret->image = src->image ? xstrdup(src->image) : NULL;
        ret->version = src->version ? xstrdup(src->version) : NULL;
        ret->disk_name = xstrdup(src->disk_name);
        ret->disk_format = xstrdup(src->disk_format);
        ret->disk_size = disk_size;
        ret->mac = xstrdup(mac);
        qvm_vm_assign_nic_macs(&ret->spec, pool->name, true);   /* a new machine */
        if (ret->spec.net.type == QVM_NET_USER && ret->spec.net.ssh_port >= 0)
            r = free_port(&ret->ssh_port, err);
    }
    if (r == 0)
        r = qvm_vm_derive_paths(ctx, pool, ret, err);
    if (r == 0) {
        *ret_text = out;
        out = NULL;
    }
    free(uuid);
    free(iid);
    free(text);
    free(out);
    free(file);
    return r;
}

/* Locks VMs A and B in name order, so that two clones crossing wait for
 * each other instead of deadlocking. */
static int lock_two(struct qvm_ctx *ctx, const char *a, const char *b, int *ret_a, int *ret_b,
                    struct qvm_error *err)
{
    bool swap = strcmp(a, b) > 0;
    int first = qvm_vm_lock(ctx, swap ? b : a, -1, err);
    if (first < 0)
        return first;
    int second = qvm_vm_lock(ctx, swap ? a : b, -1, err);
    if (second < 0) {
        qvm_unlock(first);
        return second;
    }
    *ret_a = swap ? second : first;
    *ret_b = swap ? first : second;
    return 0;
}

int qvm_clone(struct qvm_ctx *ctx, const char *src, const char *dst,
              const struct qvm_clone_opts *opts, struct qvm_error *err)
{
    const char *snap = opts->snapshot;
    struct qvm_vm svm = { 0 }, dvm = { 0 }, other;
    struct qvm_pool pool = { 0 };
    struct qvm_disk_info from = { 0 }, disk = { 0 };
    struct qvm_journal *j = NULL;
    struct qvm_quiesce q = { 0 };
    char *text = NULL;
    int lsrc = -1, ldst = -1;
    bool opened = false, defined = false;
    int r = qvm_name_check("VM", src, err);
    if (r == 0)
        r = qvm_name_check("VM", dst, err);
    if (r == 0 && snap)
        r = qvm_name_check("snapshot", snap, err);
    if (r == 0 && !strcmp(src, dst))
        r = qvm_err(err, EINVAL, "a VM cannot be cloned onto itself ('%s')", src);
    if (r == 0)
        r = lock_two(ctx, src, dst, &lsrc, &ldst, err);
    if (r < 0)
        return qvm_err_task(err, TASK_CLONE);
    r = qvm_vm_load(ctx, src, &svm, err);
    struct qvm_error e = { 0 };
    if (r == 0 && qvm_vm_load(ctx, dst, &other, &e) == 0) {
        r = qvm_err(err, EEXIST, "VM '%s' already exists (pool '%s'); remove it with: qvm rm %s",
                    dst, other.pool, dst);
        qvm_vm_release(&other);
    }
    if (r == 0)
        r = qvm_vm_single_disk(&svm, "clones", err);
    if (r == 0)
        r = qvm_snapshot_prepare_vm(ctx, &svm, true, &pool, err);
    opened = r == 0;
    uint64_t size = svm.disk_size;
    if (r == 0 && snap) {
        /* The snapshot must exist before anything is made; its size may
         * differ from the disk's now (qvm resize). */
        r = pool.driver->snapshot_locate(&pool, src, svm.disk_name, snap, &from, err);
        if (r == 0 && from.virtual_size)
            size = from.virtual_size;
    }
    if (r == 0)
        r = define_clone(ctx, &svm, dst, &pool, size, &dvm, &text, err);
    defined = r == 0;
    if (r == 0) {
        qvm_say(ctx->ui, "Cloning VM '%s'%s%s%s as '%s' (pool '%s', instance-id %s, MAC %s)", src,
                snap ? " (snapshot '" : "", snap ? snap : "", snap ? "')" : "", dst, pool.name,
                dvm.spec.instance_id, dvm.mac);
        r = qvm_journal_begin2(ctx, "clone", "vm", dst, src, &j, err);
    }
    if (r == 0)
        r = qvm_journal_undo_snapshot_tidy(j, pool.name, src, svm.disk_name, err);
    if (r == 0)
        r = qvm_journal_undo_vm_destroy(j, pool.name, dst, err);
    if (r == 0)
        r = pool.driver->vm_create(&pool, dst, err);
    if (r == 0)
        r = qvm_journal_undo_rm_rf(j, dvm.run_dir, err);
    if (r == 0)
        r = qvm_fault_point("bundle-created", err);
    if (r == 0 && !snap)
        r = qvm_quiesce_begin(ctx, &svm, j, &q, err);
    if (r == 0)
        r = pool.driver->vm_disk_clone(&pool, src, svm.disk_name, snap, dst, dvm.disk_name,
                                       dvm.spec.disk.props, dvm.spec.disk.nprops, &disk, err);
    if (qvm_quiesce_end(ctx, &svm, &q, r == 0 ? err : &e) < 0 && r == 0)
        r = -EIO;
    if (r == 0)
        r = qvm_fault_point("disk-cloned", err);
    if (r == 0) {
        free(dvm.disk_path);
        free(dvm.disk_format);
        dvm.disk_path = xstrdup(disk.path);
        dvm.disk_format = xstrdup(disk.format);
        dvm.disk_is_block = disk.is_block;
        qvm_say(ctx->ui, "Writing cloud-init NoCloud seed %s (instance-id %s, hostname %s)",
                dvm.seed_path, dvm.spec.instance_id, dvm.spec.hostname);
        r = qvm_seed_write(dvm.seed_path, dvm.spec.user_data, dvm.spec.meta_data,
                           dvm.spec.network_config, err);
    }
    if (r == 0)
        r = qvm_fault_point("seed-written", err);
    if (r == 0)
        r = qvm_vm_save(&dvm, err);
    if (r == 0) {
        char *path = xasprintf("%s/vm.yaml", dvm.bundle_dir);
        r = qvm_write_file_atomic(path, text, strlen(text), 0600, err);
        free(path);
    }
    if (r == 0)
        r = qvm_fault_point("definition-written", err);
    if (r == 0 && !opts->no_start)
        r = qvm_memory_start_qemu(ctx, &dvm, j, err);   /* memory admission, ZFS ARC */
    if (r == 0 && !opts->no_start)
        r = qvm_fault_point("qemu-started", err);
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    if (j) {
        qvm_say(ctx->ui, "Rolling back");
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    if (r == 0 && opts->no_start)
        qvm_say(ctx->ui, "VM '%s' cloned from '%s' (not started; start it with: qvm start %s)",
                dst, src, dst);
    else if (r == 0)
        qvm_say(ctx->ui, "VM '%s' cloned from '%s' is running (pid %d)", dst, src,
                (int)qvm_vm_pid(&dvm));
    if (opened)
        qvm_pool_release(&pool);
    if (defined)
        qvm_vm_release(&dvm);
    qvm_disk_info_release(&from);
    qvm_disk_info_release(&disk);
    qvm_vm_release(&svm);
    free(text);
    qvm_unlock(lsrc);
    qvm_unlock(ldst);
    return r < 0 ? qvm_err_task(err, TASK_CLONE) : 0;
}
