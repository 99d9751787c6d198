/* zfs.c - the ZFS backend (seed 000, 3.1.1 and 3.3; seed 004's pitfalls).
 *
 * A pool is a parent dataset (pool->dataset, e.g. tank/qvm), mounted; its
 * mountpoint is pool->path, and the images and vms datasets under it
 * inherit their mountpoints, so core/ finds its metadata where the contract
 * in storage.h says. pool->mode chooses where disk data lives:
 *
 * dataset (default): an image is a filesystem holding one raw file; each
 * version is a snapshot of it; a VM disk is a clone of that snapshot,
 * mounted inside the VM's bundle:
 *   DATASET/images/NAME        MOUNT/images/NAME: image.json
 *   DATASET/images/NAME@v1     version v1: disk.raw (user property qvm:virtual-size)
 *   DATASET/vms/VM             MOUNT/vms/VM: vm.json, vm.yaml, seed.iso, console.log
 *   DATASET/vms/VM/disk0       clone of NAME@v1: MOUNT/vms/VM/disk0/disk.raw
 *   DATASET/images/NAME:recv   a full stream while it is received (streams, below)
 *
 * zvol (seed 000): the data is a zvol (volblocksize 16K, refreservation
 * none) under the image's filesystem; a VM disk is a zvol clone:
 *   DATASET/images/NAME/disk@v1 the version
 *   DATASET/vms/VM/disk0       its clone, /dev/zvol/DATASET/vms/VM/disk0
 *
 * Versions are snapshots and never change. The live disk.raw exists only
 * while a version is written or received; the live zvol keeps the newest
 * version's blocks (shared with its snapshot) until the image is destroyed.
 * Never -R and never promote (seed 004): a clone pins its origin, so
 * destroying an image that VM disks were cloned from is refused with their
 * names, and VM data is never destroyed or stranded to make room.
 *
 * Reads use `zfs get -Hp -o name,property,value`: OpenZFS and zfs-fuse both
 * have it, whereas zfs-fuse's `zfs list` has no -p. Existence is asked of
 * zfs itself (create fails with "dataset already exists", destroy with
 * "dataset does not exist"), which is one command and cannot race. */
#include "zfs.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "disk_create.h"
#include "storage.h"
#include "util/fsutil.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

#define ZFS_TIMEOUT_MS (5 * 60 * 1000)
#define ZFS_GET_MAX_OUTPUT (16u << 20)
#define ZFS_ROWS_MAX 1000000
#define DESTROY_TRIES 50           /* x 100 ms: see zfs_destroy */
#define DEVICE_WAIT_MS 10000
#define SHARE_RECORD (128u * 1024)   /* see copy_changed */

/* ---------------------------------------------------------------- argv */

struct argvb {
    char **v;
    size_t n, cap;
};

static void argvb_add(struct argvb *b, const char *s)
{
    if (b->n + 2 > b->cap) {
        b->cap = b->cap ? 2 * b->cap : 16;
        b->v = xrealloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n++] = xstrdup(s);
    b->v[b->n] = NULL;
}

__attribute__((format(printf, 2, 3)))
static void argvb_addf(struct argvb *b, const char *fmt, ...)
{
    va_list ap;
    struct strbuf sb = STRBUF_INIT;
    va_start(ap, fmt);
    strbuf_vaddf(&sb, fmt, ap);
    va_end(ap);
    argvb_add(b, sb.buf);
    strbuf_release(&sb);
}

void qvm_zfs_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}

char **qvm_zfs_argv_get(const char *props, const char *const datasets[], bool recursive)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "get");
    argvb_add(&b, "-Hp");
    if (recursive)
        argvb_add(&b, "-r");
    argvb_add(&b, "-o");
    argvb_add(&b, "name,property,value");
    argvb_add(&b, props);
    for (size_t i = 0; datasets[i]; i++)
        argvb_add(&b, datasets[i]);
    return b.v;
}

char **qvm_zfs_argv_create(const char *dataset, bool parents)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "create");
    if (parents)
        argvb_add(&b, "-p");
    argvb_add(&b, dataset);
    return b.v;
}

char **qvm_zfs_argv_create_zvol(const char *dataset, uint64_t size)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "create");
    argvb_add(&b, "-V");
    argvb_addf(&b, "%llu", (unsigned long long)size);
    argvb_add(&b, "-o");
    argvb_addf(&b, "volblocksize=%uK", QVM_ZFS_VOLBLOCKSIZE / 1024);
    argvb_add(&b, "-o");
    argvb_add(&b, "refreservation=none");
    argvb_add(&b, dataset);
    return b.v;
}

char **qvm_zfs_argv_snapshot(const char *snapshot, uint64_t virtual_size)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "snapshot");
    if (virtual_size) {
        argvb_add(&b, "-o");
        argvb_addf(&b, "%s=%llu", QVM_ZFS_SIZE_PROP, (unsigned long long)virtual_size);
    }
    argvb_add(&b, snapshot);
    return b.v;
}

char **qvm_zfs_argv_clone(const char *snapshot, const char *target,
                          const struct qvm_prop *props, size_t nprops)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "clone");
    for (size_t i = 0; i < nprops; i++) {
        argvb_add(&b, "-o");
        argvb_addf(&b, "%s=%s", props[i].key, props[i].value);
    }
    argvb_add(&b, snapshot);
    argvb_add(&b, target);
    return b.v;
}

char **qvm_zfs_argv_set_volsize(const char *dataset, uint64_t size)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "set");
    argvb_addf(&b, "volsize=%llu", (unsigned long long)size);
    argvb_add(&b, dataset);
    return b.v;
}

char **qvm_zfs_argv_destroy(const char *dataset, bool recursive)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "destroy");
    if (recursive)
        argvb_add(&b, "-r");
    argvb_add(&b, dataset);
    return b.v;
}

char **qvm_zfs_argv_send(const char *snapshot, const char *from)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "send");
    if (from) {
        argvb_add(&b, "-i");
        argvb_addf(&b, "@%s", from);
    }
    argvb_add(&b, snapshot);
    return b.v;
}

char **qvm_zfs_argv_receive(const char *snapshot, bool force)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "recv");
    if (force)
        argvb_add(&b, "-F");
    argvb_add(&b, snapshot);
    return b.v;
}

char **qvm_zfs_argv_rename(const char *from, const char *to)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "rename");
    argvb_add(&b, from);
    argvb_add(&b, to);
    return b.v;
}

char **qvm_zfs_argv_mount(const char *dataset)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "mount");
    argvb_add(&b, dataset);
    return b.v;
}

char **qvm_zfs_argv_unmount(const char *dataset)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "unmount");
    argvb_add(&b, dataset);
    return b.v;
}

char **qvm_zfs_argv_set_virtual_size(const char *snapshot, uint64_t size)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "set");
    argvb_addf(&b, "%s=%llu", QVM_ZFS_SIZE_PROP, (unsigned long long)size);
    argvb_add(&b, snapshot);
    return b.v;
}

char **qvm_zfs_argv_convert(const char *src, const char *src_format, const char *dst,
                            bool to_device, bool progress)
{
    struct argvb b = { 0 };
    argvb_add(&b, "qemu-img");
    argvb_add(&b, "convert");
    argvb_add(&b, progress ? "-p" : "-q");
    /* A block device exists already: -n, or qemu-img tries to create it. */
    if (to_device)
        argvb_add(&b, "-n");
    argvb_add(&b, "-f");
    argvb_add(&b, src_format);
    argvb_add(&b, "-O");
    argvb_add(&b, "raw");
    argvb_add(&b, src);
    argvb_add(&b, dst);
    return b.v;
}

/* -------------------------------------------------------------- checks */

int qvm_zfs_dataset_check(const char *ds, struct qvm_error *err)
{
    size_t len = ds ? strlen(ds) : 0;
    const char *why = NULL;
    if (len == 0)
        return qvm_err(err, EINVAL, "a zfs pool needs a dataset (--dataset POOL/DATASET)");
    if (len > QVM_ZFS_DATASET_MAX)
        return qvm_err(err, EINVAL, "invalid zfs dataset '%.*s...': longer than %d bytes "
                       "(qvm names datasets below it)", 40, ds, QVM_ZFS_DATASET_MAX);
    for (const char *p = ds; *p && !why; p++)
        if (!isascii((unsigned char)*p) || !(isalnum((unsigned char)*p) || strchr("_.:/-", *p)))
            why = "only A-Z, a-z, 0-9, '_', '.', ':', '/' and '-' are allowed";
    if (!why && ds[0] == '/')
        why = "a dataset name (like tank/qvm) has no leading '/'; it is not a path";
    else if (!why && !isalnum((unsigned char)ds[0]))
        why = "it must start with a letter or a digit";
    else if (!why && ds[len - 1] == '/')
        why = "it must not end with '/'";
    else if (!why && strstr(ds, "//"))
        why = "it has an empty component ('//')";
    else if (!why && strstr(ds, ".."))
        why = "'..' is not allowed";
    for (const char *c = ds; !why && c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL)
        if (c[0] == '.' && (c[1] == '/' || c[1] == '\0'))
            why = "a component '.' is not allowed";
    if (why) {
        /* The name may hold anything: quote only what is printable. */
        char shown[QVM_ZFS_DATASET_MAX + 1];
        size_t i = 0;
        for (; ds[i] && i < sizeof shown - 1; i++)
            shown[i] = isprint((unsigned char)ds[i]) ? ds[i] : '?';
        shown[i] = '\0';
        return qvm_err(err, EINVAL, "invalid zfs dataset '%s': %s", shown, why);
    }
    return 0;
}

int qvm_zfs_prop_check(const struct qvm_prop *prop, struct qvm_error *err)
{
    static const char *const managed[] = { "mountpoint", "canmount", "readonly", "volsize" };
    const char *k = prop->key, *v = prop->value;
    size_t klen = k ? strlen(k) : 0, vlen = v ? strlen(v) : 0;
    if (klen == 0 || klen > 64 || !islower((unsigned char)k[0]) ||
        strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789:._-") != klen)
        return qvm_err(err, EINVAL, "invalid zfs property name '%.64s': use a-z first, then "
                       "a-z, 0-9, ':', '.', '_' and '-' (at most 64)", k ? k : "");
    for (size_t i = 0; i < sizeof managed / sizeof managed[0]; i++)
        if (strcmp(k, managed[i]) == 0)
            return qvm_err(err, EINVAL, "zfs property '%s' is managed by qvm and cannot be set "
                           "on a VM disk", k);
    if (strncmp(k, "qvm:", 4) == 0)
        return qvm_err(err, EINVAL, "zfs property '%s': the qvm: namespace is qvm's own", k);
    if (vlen == 0 || vlen > 255 || v[0] == '-' ||
        strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:._,+/@=-") != vlen)
        return qvm_err(err, EINVAL, "zfs property %s: invalid value (1 to 255 of A-Z a-z 0-9 "
                       ": . _ , + / @ = -, not starting with '-'; no spaces)", k);
    return 0;
}

uint64_t qvm_zfs_volsize(uint64_t size)
{
    return (size + QVM_ZFS_VOLBLOCKSIZE - 1) / QVM_ZFS_VOLBLOCKSIZE * QVM_ZFS_VOLBLOCKSIZE;
}

/* ------------------------------------------------------------- parsers */

void qvm_zfs_rows_release(struct qvm_zfs_rows *rows)
{
    if (!rows)
        return;
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->v[i].name);
        free(rows->v[i].property);
        free(rows->v[i].value);
    }
    free(rows->v);
    memset(rows, 0, sizeof *rows);
}

/* `zfs get -Hp -o name,property,value type,mountpoint,mounted tank/qvm`
 * (zfs-fuse 0.7; OpenZFS prints the same) - tab-separated, no header:
 *   tank/qvm	type	filesystem
 *   tank/qvm	mountpoint	/tank/qvm
 *   tank/qvm	mounted	yes
 * With -r, a line per dataset and snapshot below as well:
 *   tank/qvm/images/img@v1	origin	-
 *   tank/qvm/vms/a/disk0	origin	tank/qvm/images/img@v1
 * The value is everything after the second tab (a mountpoint may hold
 * spaces); "-" means no value. */
int qvm_zfs_parse_get(const char *out, struct qvm_zfs_rows *ret, struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    size_t cap = 0, lineno = 0;
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        lineno++;
        const char *t1 = memchr(p, '\t', len);
        const char *t2 = t1 ? memchr(t1 + 1, '\t', len - (size_t)(t1 + 1 - p)) : NULL;
        if (!t1 || !t2 || t1 == p || t2 == t1 + 1 || memchr(p, '\r', len)) {
            qvm_zfs_rows_release(ret);
            return qvm_err(err, EINVAL, "unexpected output from zfs get, line %zu: '%.*s' "
                           "(expected NAME<tab>PROPERTY<tab>VALUE)", lineno,
                           (int)(len > 200 ? 200 : len), p);
        }
        if (ret->n == ZFS_ROWS_MAX) {
            qvm_zfs_rows_release(ret);
            return qvm_err(err, E2BIG, "zfs get printed more than %d lines", ZFS_ROWS_MAX);
        }
        if (ret->n == cap) {
            cap = cap ? 2 * cap : 8;
            ret->v = xrealloc(ret->v, cap * sizeof *ret->v);
        }
        struct qvm_zfs_row *row = &ret->v[ret->n++];
        row->name = strndup(p, (size_t)(t1 - p));
        row->property = strndup(t1 + 1, (size_t)(t2 - t1 - 1));
        row->value = strndup(t2 + 1, len - (size_t)(t2 + 1 - p));
        if (!row->name || !row->property || !row->value)
            abort();
        p += len + (nl ? 1 : 0);
    }
    return 0;
}

const char *qvm_zfs_rows_value(const struct qvm_zfs_rows *rows, const char *name,
                               const char *property)
{
    for (size_t i = 0; i < rows->n; i++)
        if (strcmp(rows->v[i].name, name) == 0 && strcmp(rows->v[i].property, property) == 0)
            return rows->v[i].value;
    return NULL;
}

void qvm_zfs_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

char **qvm_zfs_clones_of(const struct qvm_zfs_rows *rows, const char *origin, const char *version,
                         size_t *ret_n)
{
    size_t olen = strlen(origin), n = 0;
    char **v = NULL;
    for (size_t i = 0; i < rows->n; i++) {
        const struct qvm_zfs_row *row = &rows->v[i];
        if (strcmp(row->property, "origin") == 0 && strncmp(row->value, origin, olen) == 0 &&
            row->value[olen] == '@' && (!version || strcmp(row->value + olen + 1, version) == 0)) {
            v = xrealloc(v, (n + 1) * sizeof *v);
            v[n++] = xstrdup(row->name);
        }
    }
    *ret_n = n;
    return v;
}

struct snap_txg {
    char *name;
    uint64_t txg;
};

static int snap_txg_cmp(const void *a, const void *b)
{
    const struct snap_txg *x = a, *y = b;
    return x->txg < y->txg ? -1 : x->txg > y->txg;
}

/* `zfs get -Hp -r -o name,property,value createtxg tank/qvm/images/img`:
 *   tank/qvm/images/img	createtxg	104
 *   tank/qvm/images/img@v1	createtxg	31
 *   tank/qvm/images/img@v2	createtxg	133
 * The transaction group orders snapshots exactly; creation has whole
 * seconds. */
int qvm_zfs_snapshots(const struct qvm_zfs_rows *rows, const char *dataset, char ***ret,
                      size_t *ret_n, struct qvm_error *err)
{
    size_t dlen = strlen(dataset), n = 0;
    struct snap_txg *v = NULL;
    int r = 0;
    for (size_t i = 0; i < rows->n && r == 0; i++) {
        const struct qvm_zfs_row *row = &rows->v[i];
        if (strcmp(row->property, "createtxg") != 0 || strncmp(row->name, dataset, dlen) != 0 ||
            row->name[dlen] != '@')
            continue;
        uint64_t txg;
        if (qvm_zfs_parse_size(row->value, &txg) < 0) {
            r = qvm_err(err, EINVAL, "zfs get reported createtxg '%.40s' for %s", row->value,
                        row->name);
            break;
        }
        v = xrealloc(v, (n + 1) * sizeof *v);
        v[n].name = xstrdup(row->name + dlen + 1);
        v[n++].txg = txg;
    }
    char **names = NULL;
    if (r == 0 && n) {
        qsort(v, n, sizeof *v, snap_txg_cmp);
        names = xmalloc(n * sizeof *names);
        for (size_t i = 0; i < n; i++)
            names[i] = v[i].name;
    } else {
        for (size_t i = 0; i < n; i++)
            free(v[i].name);
        n = 0;
    }
    free(v);
    *ret = names;
    *ret_n = n;
    return r;
}

/* `zfs get -p` prints sizes as plain byte counts: "67108864". */
int qvm_zfs_parse_size(const char *value, uint64_t *ret)
{
    uint64_t v = 0;
    if (!value || !*value || strlen(value) > 20)
        return -EINVAL;
    for (const char *p = value; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *ret = v;
    return 0;
}

/* What zfs prints on stderr when it fails, e.g. (zfs-fuse):
 *   cannot open 'tank/nope': dataset does not exist
 *   cannot create 'tank/qvm/vms/a': dataset already exists
 *   cannot create snapshot 'tank/qvm/images/img@v1': dataset already exists
 *   cannot destroy 'tank/qvm/vms/b': dataset is busy
 *   umount: /tank/qvm/vms/a/disk0: target is busy.
 *   cannot unmount '/tank/qvm/vms/a/disk0': umount failed: umount child process failed
 *   cannot destroy 'tank/qvm/images/img': filesystem has dependent clones
 *   use '-R' to destroy the following datasets:
 *   tank/qvm/vms/a/disk0
 *   connect: No such file or directory
 *   Please make sure that the zfs-fuse daemon is running.
 *   internal error: failed to initialize ZFS library
 *   internal error: Function not implemented          (zfs create -V)
 * and OpenZFS without its kernel module:
 *   The ZFS modules are not loaded.
 *   Try running '/sbin/modprobe zfs' as root to load them. */
enum qvm_zfs_failure qvm_zfs_classify(const char *s)
{
    if (!s)
        return QVM_ZFS_FAIL_OTHER;
    if (strstr(s, "zfs-fuse daemon is running") || strstr(s, "Unable to connect") ||
        strncmp(s, "connect: ", 9) == 0 || strstr(s, "\nconnect: "))
        return QVM_ZFS_FAIL_NO_DAEMON;
    if (strstr(s, "ZFS modules are not loaded") || strstr(s, "/dev/zfs and /proc/self/mounts"))
        return QVM_ZFS_FAIL_NO_MODULE;
    if (strstr(s, "Function not implemented"))
        return QVM_ZFS_FAIL_NOT_IMPLEMENTED;
    if (strstr(s, "has dependent clones"))
        return QVM_ZFS_FAIL_DEPENDENTS;
    if (strstr(s, "dataset is busy") || strstr(s, "target is busy") ||
        strstr(s, "Device or resource busy"))
        return QVM_ZFS_FAIL_BUSY;
    if (strstr(s, "dataset does not exist"))
        return QVM_ZFS_FAIL_MISSING;
    if (strstr(s, "dataset already exists"))
        return QVM_ZFS_FAIL_EXISTS;
    return QVM_ZFS_FAIL_OTHER;
}

char **qvm_zfs_parse_dependents(const char *s, size_t *ret_n)
{
    static const char marker[] = "use '-R' to destroy the following datasets:\n";
    const char *p = s ? strstr(s, marker) : NULL;
    char **v = NULL;
    size_t n = 0;
    for (p = p ? p + strlen(marker) : NULL; p && *p && *p != '\n' && n < 1000;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\r'))
            len--;
        v = xrealloc(v, (n + 1) * sizeof *v);
        v[n] = strndup(p, len);
        if (!v[n++])
            abort();
        p = nl ? nl + 1 : NULL;
    }
    *ret_n = n;
    return v;
}

/* ------------------------------------------------------- running zfs */

struct zfs_out {
    char *out;                     /* stdout */
    char *err;                     /* stderr */
    enum qvm_zfs_failure fail;
};

static void zfs_out_release(struct zfs_out *o)
{
    free(o->out);
    free(o->err);
    memset(o, 0, sizeof *o);
}

/* Runs ARGV, a zfs command line. On failure ERR names the command and
 * carries all of zfs's words (it explains over several lines), or says how
 * to reach ZFS when it cannot be reached; RET (optional) receives stdout,
 * stderr and what kind of failure it was. */
static int zfs_run_opts(char **argv, const struct qvm_run_opts *opts, struct zfs_out *ret,
                        struct qvm_error *err)
{
    size_t max_output = opts->max_output;
    struct qvm_run_result res = { 0 };
    struct qvm_error e = { 0 };
    int r = qvm_run((const char *const *)argv, opts, &res, &e);
    enum qvm_zfs_failure fail = QVM_ZFS_FAIL_OTHER;
    if (r == 0 && max_output && res.out_len >= max_output)
        r = qvm_err(err, E2BIG, "zfs printed more than %zu bytes; qvm cannot read it all",
                    max_output);
    else if (r == -ENOENT && res.err_len == 0)
        r = qvm_err(err, ENOENT, "cannot run zfs: not found; install zfsutils-linux "
                    "(or zfs-fuse)");
    else if (r < 0) {
        fail = qvm_zfs_classify(res.err);
        /* zfs's message, its lines joined, as the reason. */
        struct strbuf why = STRBUF_INIT;
        for (const char *p = res.err ? res.err : ""; *p && why.len < 800;) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            if (len) {
                if (why.len)
                    strbuf_addstr(&why, why.buf[why.len - 1] == ':' ? " " : "; ");
                strbuf_add(&why, p, len);
            }
            p += len + (nl ? 1 : 0);
        }
        char *line = qvm_argv_to_string((const char *const *)argv);
        const char *reason = why.len ? why.buf : e.msg;
        static const int codes[] = {
            [QVM_ZFS_FAIL_OTHER] = EIO, [QVM_ZFS_FAIL_MISSING] = ENOENT,
            [QVM_ZFS_FAIL_EXISTS] = EEXIST, [QVM_ZFS_FAIL_BUSY] = EBUSY,
            [QVM_ZFS_FAIL_DEPENDENTS] = EBUSY, [QVM_ZFS_FAIL_NO_DAEMON] = ENOTCONN,
            [QVM_ZFS_FAIL_NO_MODULE] = ENODEV, [QVM_ZFS_FAIL_NOT_IMPLEMENTED] = ENOSYS,
        };
        if (res.timed_out)
            r = qvm_err(err, ETIMEDOUT, "%s: %s", line, e.msg);
        else if (fail == QVM_ZFS_FAIL_NO_DAEMON)
            r = qvm_err(err, codes[fail], "cannot reach ZFS (zfs: %.*s): is zfs-fuse running? "
                        "Start it with: zfs-fuse", (int)strcspn(reason, ";"), reason);
        else if (fail == QVM_ZFS_FAIL_NO_MODULE)
            r = qvm_err(err, codes[fail], "cannot reach ZFS: the ZFS kernel module is not "
                        "loaded; load it with: modprobe zfs");
        else if (fail == QVM_ZFS_FAIL_NOT_IMPLEMENTED)
            r = qvm_err(err, codes[fail], "%s: %s: zvols need a kernel ZFS; zfs-fuse has none "
                        "(use a pool in mode dataset)", line, reason);
        else
            r = qvm_err(err, codes[fail], "%s: %s", line, reason);
        free(line);
        strbuf_release(&why);
    }
    if (ret) {
        ret->out = res.out ? res.out : xstrdup("");
        ret->err = res.err ? res.err : xstrdup("");
        ret->fail = fail;
    } else {
        qvm_run_result_release(&res);
    }
    return r;
}

static int zfs_run(char **argv, size_t max_output, struct zfs_out *ret, struct qvm_error *err)
{
    struct qvm_run_opts opts = { .timeout_ms = ZFS_TIMEOUT_MS, .max_output = max_output };
    return zfs_run_opts(argv, &opts, ret, err);
}

/* zfs get -Hp -o name,property,value PROPS DATASETS..., parsed. *ret_fail
 * (optional) says why it failed. */
static int zfs_get(const char *props, const char *const datasets[], bool recursive,
                   struct qvm_zfs_rows *ret, enum qvm_zfs_failure *ret_fail,
                   struct qvm_error *err)
{
    char **argv = qvm_zfs_argv_get(props, datasets, recursive);
    struct zfs_out o = { 0 };
    memset(ret, 0, sizeof *ret);
    int r = zfs_run(argv, ZFS_GET_MAX_OUTPUT, &o, err);
    if (ret_fail)
        *ret_fail = o.fail;
    if (r == 0)
        r = qvm_zfs_parse_get(o.out, ret, err);
    zfs_out_release(&o);
    qvm_zfs_argv_free(argv);
    return r;
}

/* Runs ARGV, which it takes and frees, for its exit status only. */
static int zfs_simple(char **argv, enum qvm_zfs_failure *ret_fail, struct qvm_error *err)
{
    struct zfs_out o = { 0 };
    int r = zfs_run(argv, 0, &o, err);
    if (ret_fail)
        *ret_fail = o.fail;
    zfs_out_release(&o);
    qvm_zfs_argv_free(argv);
    return r;
}

/* 1 if DATASET (or snapshot) exists, 0 if not, a negative errno if zfs
 * cannot say. */
static int zfs_exists(const char *dataset, struct qvm_error *err)
{
    const char *const ds[] = { dataset, NULL };
    struct qvm_zfs_rows rows;
    enum qvm_zfs_failure fail;
    int r = zfs_get("type", ds, false, &rows, &fail, err);
    if (r < 0 && fail == QVM_ZFS_FAIL_MISSING) {
        qvm_err_clear(err);
        return 0;
    }
    if (r == 0)
        r = qvm_zfs_rows_value(&rows, dataset, "type") ? 1
          : qvm_err(err, EINVAL, "zfs get did not report the type of %s", dataset);
    qvm_zfs_rows_release(&rows);
    return r;
}

/* Runs ARGV until zfs stops saying "busy" (DESTROY_TRIES x 100 ms; see
 * zfs_destroy). */
static int zfs_run_busy(char **argv, struct zfs_out *o, struct qvm_error *err)
{
    int r;
    for (int i = 0;; i++) {
        zfs_out_release(o);
        r = zfs_run(argv, 0, o, err);
        if (r == 0 || o->fail != QVM_ZFS_FAIL_BUSY || i + 1 == DESTROY_TRIES)
            break;
        nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
    }
    if (r == 0)
        qvm_err_clear(err);        /* a busy try before */
    return r;
}

/* zfs_simple, retrying "busy" as zfs_destroy does: the unmounts, renames
 * and mounts of a receive meet zfs-fuse's asynchronous unmounts too. */
static int zfs_simple_busy(char **argv, struct qvm_error *err)
{
    struct zfs_out o = { 0 };
    int r = zfs_run_busy(argv, &o, err);
    zfs_out_release(&o);
    qvm_zfs_argv_free(argv);
    return r;
}

/* Destroys DATASET (with -r its children and snapshots); missing is
 * success. zfs-fuse unmounts asynchronously: a destroy right after a create
 * or a clone (a rollback) first fails with "dataset is busy" and succeeds on
 * the next try (one retry after 50 ms, measured); and a file QEMU held open
 * until it was SIGKILLed a moment ago keeps the unmount busy ("target is
 * busy") for a while. So busy is retried for 5 s; a dataset that stays busy
 * (a live process holds a file in it) is reported. RET_ERR (optional)
 * receives zfs's stderr. */
static int zfs_destroy(const char *dataset, bool recursive, enum qvm_zfs_failure *ret_fail,
                       char **ret_err, struct qvm_error *err)
{
    char **argv = qvm_zfs_argv_destroy(dataset, recursive);
    struct zfs_out o = { 0 };
    int r = zfs_run_busy(argv, &o, err);
    if (r < 0 && o.fail == QVM_ZFS_FAIL_MISSING) {
        qvm_err_clear(err);
        r = 0;
    }
    if (ret_fail)
        *ret_fail = o.fail;
    if (ret_err) {
        *ret_err = o.err;
        o.err = NULL;
    }
    zfs_out_release(&o);
    qvm_zfs_argv_free(argv);
    return r;
}

/* ---------------------------------------------------------------- names */

static bool is_zvol(const struct qvm_pool *pool)
{
    return pool->mode && strcmp(pool->mode, "zvol") == 0;
}

static char *image_ds(const struct qvm_pool *pool, const char *image)
{
    return xasprintf("%s/images/%s", pool->dataset, image);
}

/* The dataset whose snapshots are the versions of IMAGE. */
static char *image_data_ds(const struct qvm_pool *pool, const char *image)
{
    return is_zvol(pool) ? xasprintf("%s/images/%s/disk", pool->dataset, image)
                         : image_ds(pool, image);
}

/* Where a full stream of IMAGE is received (QVM_ZFS_RECV_SUFFIX). */
static char *stage_ds(const struct qvm_pool *pool, const char *image)
{
    char *data = image_data_ds(pool, image);
    char *s = xasprintf("%s%s", data, QVM_ZFS_RECV_SUFFIX);
    free(data);
    return s;
}

static char *vm_ds(const struct qvm_pool *pool, const char *vm)
{
    return xasprintf("%s/vms/%s", pool->dataset, vm);
}

static char *disk_ds(const struct qvm_pool *pool, const char *vm, const char *disk)
{
    return xasprintf("%s/vms/%s/%s", pool->dataset, vm, disk);
}

static char *disk_file(const struct qvm_pool *pool, const char *vm, const char *disk)
{
    return xasprintf("%s/vms/%s/%s/%s", pool->path, vm, disk, QVM_ZFS_DISK_FILE);
}

static char *zvol_dev(const char *dataset)
{
    return xasprintf("/dev/zvol/%s", dataset);
}

/* ----------------------------------------------------------------- pool */

/* Sample in qvm_zfs_parse_get. */
static int zfs_pool_open(struct qvm_pool *pool, struct qvm_error *err)
{
    int r = qvm_zfs_dataset_check(pool->dataset, err);
    if (r < 0)
        return r;
    if (!pool->mode)
        pool->mode = xstrdup("dataset");
    else if (strcmp(pool->mode, "dataset") != 0 && strcmp(pool->mode, "zvol") != 0)
        return qvm_err(err, EINVAL, "unknown zfs mode '%s' (modes: dataset, zvol)", pool->mode);
    const char *const ds[] = { pool->dataset, NULL };
    struct qvm_zfs_rows rows;
    enum qvm_zfs_failure fail;
    r = zfs_get("type,mountpoint,mounted", ds, false, &rows, &fail, err);
    if (r < 0) {
        if (fail == QVM_ZFS_FAIL_MISSING)
            return qvm_err(err, ENOENT, "zfs dataset '%s' does not exist (create it with: "
                           "zfs create -p %s)", pool->dataset, pool->dataset);
        return r;
    }
    const char *type = qvm_zfs_rows_value(&rows, pool->dataset, "type");
    const char *mp = qvm_zfs_rows_value(&rows, pool->dataset, "mountpoint");
    const char *mounted = qvm_zfs_rows_value(&rows, pool->dataset, "mounted");
    if (!type || !mp || !mounted)
        r = qvm_err(err, EINVAL, "zfs get did not report type, mountpoint and mounted of %s",
                    pool->dataset);
    else if (strcmp(type, "filesystem") != 0)
        r = qvm_err(err, EINVAL, "zfs dataset '%s' is a %s, not a filesystem", pool->dataset,
                    type);
    else if (mp[0] != '/')
        r = qvm_err(err, EINVAL, "zfs dataset '%s' has no mountpoint (mountpoint=%s); give it "
                    "one with: zfs set mountpoint=/PATH %s", pool->dataset, mp, pool->dataset);
    else if (strcmp(mounted, "yes") != 0)
        r = qvm_err(err, EINVAL, "zfs dataset '%s' is not mounted (mount it with: zfs mount %s)",
                    pool->dataset, pool->dataset);
    else if (strcmp(mp, "/") == 0)
        r = qvm_err(err, EINVAL, "zfs dataset '%s' is mounted at /; give qvm a dataset of its "
                    "own (zfs create -p %s/qvm)", pool->dataset, pool->dataset);
    if (r == 0) {
        free(pool->path);
        pool->path = xstrdup(mp);
    }
    qvm_zfs_rows_release(&rows);
    return r;
}

static int zfs_pool_init(const struct qvm_pool *pool, struct qvm_error *err)
{
    char *images = xasprintf("%s/images", pool->dataset);
    char *vms = xasprintf("%s/vms", pool->dataset);
    int r = zfs_simple(qvm_zfs_argv_create(images, true), NULL, err);
    if (r == 0)
        r = zfs_simple(qvm_zfs_argv_create(vms, true), NULL, err);
    /* core/ writes into POOL/images and POOL/vms: both must be mounted
     * there, by inheritance. */
    const char *const ds[] = { images, vms, NULL };
    struct qvm_zfs_rows rows = { 0 };
    if (r == 0)
        r = zfs_get("mountpoint,mounted", ds, false, &rows, NULL, err);
    for (size_t i = 0; r == 0 && ds[i]; i++) {
        const char *mp = qvm_zfs_rows_value(&rows, ds[i], "mountpoint");
        const char *mounted = qvm_zfs_rows_value(&rows, ds[i], "mounted");
        char *want = xasprintf("%s/%s", pool->path, i == 0 ? "images" : "vms");
        if (!mp || !mounted)
            r = qvm_err(err, EINVAL, "zfs get did not report mountpoint and mounted of %s", ds[i]);
        else if (strcmp(mp, want) != 0)
            r = qvm_err(err, EINVAL, "zfs dataset %s has mountpoint %s, not %s: qvm needs it to "
                        "inherit its mountpoint (zfs inherit mountpoint %s)", ds[i], mp, want,
                        ds[i]);
        else if (strcmp(mounted, "yes") != 0)
            r = qvm_err(err, EINVAL, "zfs dataset %s is not mounted (mount it with: zfs mount %s)",
                        ds[i], ds[i]);
        free(want);
    }
    qvm_zfs_rows_release(&rows);
    free(images);
    free(vms);
    return r;
}

/* Creates DATASET, the filesystem of WHAT (an image or a VM bundle). */
static int create_container(const char *dataset, const char *what, struct qvm_error *err)
{
    enum qvm_zfs_failure fail;
    int r = zfs_simple(qvm_zfs_argv_create(dataset, false), &fail, err);
    if (r < 0 && fail == QVM_ZFS_FAIL_EXISTS)
        return qvm_err(err, EEXIST, "%s already exists (dataset %s)", what, dataset);
    return r;
}

static int zfs_image_create(const struct qvm_pool *pool, const char *image, struct qvm_error *err)
{
    char *ds = image_ds(pool, image);
    char *what = xasprintf("image '%s'", image);
    int r = create_container(ds, what, err);
    free(what);
    free(ds);
    return r;
}

static int zfs_vm_create(const struct qvm_pool *pool, const char *vm, struct qvm_error *err)
{
    char *ds = vm_ds(pool, vm);
    char *what = xasprintf("VM '%s'", vm);
    int r = create_container(ds, what, err);
    free(what);
    free(ds);
    return r;
}

/* -------------------------------------------------------------- import */

static int run_convert(const char *src, const char *src_format, const char *dst, bool to_device,
                       struct qvm_ui *ui, struct qvm_error *err)
{
    bool progress = ui && ui->show_progress;
    char **argv = qvm_zfs_argv_convert(src, src_format, dst, to_device, progress);
    struct qvm_run_opts opts = { .timeout_ms = 60 * 60 * 1000, .inherit_stdout = progress };
    int r = qvm_run((const char *const *)argv, &opts, NULL, err);
    if (r < 0)
        qvm_err_wrap(err, "cannot copy %s into the pool", src);
    qvm_zfs_argv_free(argv);
    return r;
}

/* fsync of PATH, and its size. */
static int sync_file(const char *path, uint64_t *ret_size, struct qvm_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open %s", path);
    struct stat st;
    int r = 0;
    if (fsync(fd) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", path);
    else if (fstat(fd, &st) < 0)
        r = qvm_err_errno(err, errno, "cannot stat %s", path);
    else
        *ret_size = (uint64_t)st.st_size;
    close(fd);
    return r;
}

static int snapshot_missing(const char *snap, const char *image, const char *version,
                            struct qvm_error *err)
{
    int r = zfs_exists(snap, err);
    if (r > 0)
        return qvm_err(err, EEXIST, "version %s of image '%s' already exists (snapshot %s)",
                       version, image, snap);
    return r;
}

static ssize_t pread_full(int fd, char *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -1 : (ssize_t)got;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int pwrite_full(int fd, const char *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

static bool all_zero(const char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Makes DST (the live disk.raw, or the image's zvol: either holds the
 * newest version, sharing its blocks with that snapshot) hold the raw file
 * SRC by writing only the records (ZFS's default recordsize, 128 KiB) that
 * differ. The next snapshot then shares every unchanged record with the
 * newest one, and an incremental zfs send between them carries only the
 * change: a VM that wrote 1 MiB commits a version whose stream is 1 MiB.
 * (ZFS has no reflink, and rewriting equal data makes new blocks, so a
 * full copy would share nothing.) A record that became zeros is punched
 * out where the file system can (zfs-fuse cannot: "keep size mode is
 * unsupported"), else written. *RET_SIZE: SRC's size; a file DST is
 * truncated to it. */
static int copy_changed(const char *src, const char *dst, bool to_device, uint64_t *ret_size,
                        struct qvm_error *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return qvm_err_errno(err, errno, "cannot open %s", src);
    int out = open(dst, O_RDWR | O_CLOEXEC | (to_device ? 0 : O_NOFOLLOW));
    if (out < 0) {
        int e = errno;
        close(in);
        return qvm_err_errno(err, e, "cannot open %s", dst);
    }
    struct stat st, dt;
    int r = 0;
    if (fstat(in, &st) < 0 || fstat(out, &dt) < 0)
        r = qvm_err_errno(err, errno, "cannot stat %s or %s", src, dst);
    else if (!S_ISREG(st.st_mode) || (to_device ? !S_ISBLK(dt.st_mode) : !S_ISREG(dt.st_mode)))
        r = qvm_err(err, EINVAL, "%s or %s is not a %s", src, dst,
                    to_device ? "raw file and a block device" : "regular file");
    else if (!to_device && dt.st_size != st.st_size && ftruncate(out, st.st_size) < 0)
        r = qvm_err_errno(err, errno, "cannot resize %s", dst);
    uint64_t size = r == 0 ? (uint64_t)st.st_size : 0;
    char *a = xmalloc(SHARE_RECORD), *b = xmalloc(SHARE_RECORD);
    for (uint64_t off = 0; r == 0 && off < size; off += SHARE_RECORD) {
        size_t n = size - off < SHARE_RECORD ? (size_t)(size - off) : SHARE_RECORD;
        ssize_t na = pread_full(in, a, n, off), nb = pread_full(out, b, n, off);
        if (na != (ssize_t)n)
            r = na < 0 ? qvm_err_errno(err, errno, "cannot read %s", src)
                       : qvm_err(err, EIO, "%s changed size while it was copied", src);
        else if (nb != (ssize_t)n)
            r = nb < 0 ? qvm_err_errno(err, errno, "cannot read %s", dst)
                       : qvm_err(err, ENOSPC, "%s is smaller than %s", dst, src);
        else if (memcmp(a, b, n) == 0)
            continue;
        else if (all_zero(a, n) &&
                 fallocate(out, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                           (off_t)n) == 0 &&
                 pread_full(out, b, n, off) == (ssize_t)n && all_zero(b, n))
            continue;          /* (a punch that left data is written over below) */
        else if (pwrite_full(out, a, n, off) < 0)
            r = qvm_err_errno(err, errno, "cannot write %s", dst);
    }
    free(a);
    free(b);
    if (r == 0 && fsync(out) < 0)
        r = qvm_err_errno(err, errno, "cannot sync %s", dst);
    if (r == 0)
        *ret_size = size;
    close(in);
    close(out);
    return r;
}

/* Dataset mode: the raw file is written as disk.raw.part beside image.json
 * (doctor finds a partial copy by that name), synced, renamed to disk.raw,
 * and the version is the snapshot of the dataset holding it. The live
 * disk.raw stays: it holds the newest version, all of its blocks shared
 * with that snapshot, so it costs no space, and the next version made from
 * a VM's disk (SHARE) is written into it record by record where it
 * differs (copy_changed) instead. It is a cache, never read as a version:
 * a failed commit and the removal of the newest version unlink it, so it
 * keeps no space of its own (but for the records a commit killed half way
 * through wrote, until the next commit). */
static int dataset_version_import(const struct qvm_pool *pool, const char *image,
                                  const char *version, const char *src, const char *src_format,
                                  bool share, struct qvm_ui *ui, struct qvm_error *err)
{
    char *ds = image_ds(pool, image);
    char *snap = xasprintf("%s@%s", ds, version);
    char *dir = qvm_storage_image_dir(pool, image);
    char *dst = xasprintf("%s/%s", dir, QVM_ZFS_DISK_FILE);
    char *part = xasprintf("%s.part", dst);
    uint64_t size = 0;
    struct stat st;
    bool changed = false;
    int r = snapshot_missing(snap, image, version, err);
    if (r == 0 && share && strcmp(src_format, "raw") == 0 && lstat(dst, &st) == 0 &&
        S_ISREG(st.st_mode)) {
        changed = true;
        r = copy_changed(src, dst, false, &size, err);
    } else if (r == 0) {
        r = run_convert(src, src_format, part, false, ui, err);
        if (r == 0)
            r = sync_file(part, &size, err);
        if (r == 0) {
            changed = true;
            if (rename(part, dst) < 0)
                r = qvm_err_errno(err, errno, "cannot rename %s to %s", part, dst);
        }
    }
    if (r == 0)
        r = qvm_fsync_dir(dir, err);
    if (r == 0)
        r = zfs_simple(qvm_zfs_argv_snapshot(snap, size), NULL, err);
    if (r < 0) {
        unlink(part);
        if (changed)
            unlink(dst);        /* it holds what no version holds */
    }
    free(ds);
    free(snap);
    free(dir);
    free(dst);
    free(part);
    return r;
}

/* udev makes /dev/zvol/... links a moment after zfs creates a zvol. */
static int wait_for_device(const char *path, struct qvm_error *err)
{
    struct stat st;
    for (int waited = 0; waited < DEVICE_WAIT_MS; waited += 50) {
        if (stat(path, &st) == 0 && S_ISBLK(st.st_mode))
            return 0;
        nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000 * 1000 }, NULL);
    }
    return qvm_err(err, ENODEV, "zvol device %s did not appear within %d s (is udev running?)",
                   path, DEVICE_WAIT_MS / 1000);
}

/* Zvol mode (seed 000, 3.1.1): the image's zvol DATASET/images/NAME/disk
 * (volblocksize 16K, refreservation none) is made on the first import and
 * resized for later ones; the data is written into its block device (a
 * VM's raw disk, SHARE, only where it differs: see copy_changed) and the
 * version is its snapshot. */
static int zvol_version_import(const struct qvm_pool *pool, const char *image,
                               const char *version, const char *src, const char *src_format,
                               bool share, struct qvm_ui *ui, struct qvm_error *err)
{
    char *zvol = image_data_ds(pool, image);
    char *snap = xasprintf("%s@%s", zvol, version);
    char *dev = zvol_dev(zvol);
    bool created = false;
    uint64_t size = 0, copied = 0;
    int r = snapshot_missing(snap, image, version, err);
    if (r == 0)
        r = qvm_image_file_probe(src, src_format, &size, NULL, err);
    if (r == 0)
        r = zfs_exists(zvol, err);
    if (r == 0) {
        r = zfs_simple(qvm_zfs_argv_create_zvol(zvol, qvm_zfs_volsize(size)), NULL, err);
        created = r == 0;
    } else if (r > 0) {
        r = zfs_simple(qvm_zfs_argv_set_volsize(zvol, qvm_zfs_volsize(size)), NULL, err);
    }
    if (r == 0)
        r = wait_for_device(dev, err);
    if (r == 0 && share && !created && strcmp(src_format, "raw") == 0)
        r = copy_changed(src, dev, true, &copied, err);
    else if (r == 0)
        r = run_convert(src, src_format, dev, true, ui, err);
    if (r == 0)
        r = zfs_simple(qvm_zfs_argv_snapshot(snap, 0), NULL, err);
    if (r < 0 && created) {
        struct qvm_error e = { 0 };
        if (zfs_destroy(zvol, true, NULL, NULL, &e) < 0)
            qvm_err_wrap(err, "%s; also", e.msg);
    }
    free(zvol);
    free(snap);
    free(dev);
    return r;
}

static int zfs_version_import(const struct qvm_pool *pool, const char *image, const char *version,
                              const char *src, const char *src_format, struct qvm_ui *ui,
                              struct qvm_error *err)
{
    return is_zvol(pool)
        ? zvol_version_import(pool, image, version, src, src_format, false, ui, err)
        : dataset_version_import(pool, image, version, src, src_format, false, ui, err);
}

/* `zfs get -Hp -o name,property,value type,qvm:virtual-size tank/qvm/images/img@v1`:
 *   tank/qvm/images/img@v1	type	snapshot
 *   tank/qvm/images/img@v1	qvm:virtual-size	67108864
 * (a user property that is not set prints "-"); in zvol mode volsize:
 *   tank/qvm/images/img/disk@v1	volsize	2147483648 */
static int zfs_version_info(const struct qvm_pool *pool, const char *image, const char *version,
                            struct qvm_disk_info *ret, struct qvm_error *err)
{
    char *data = image_data_ds(pool, image);
    char *snap = xasprintf("%s@%s", data, version);
    const char *prop = is_zvol(pool) ? "volsize" : QVM_ZFS_SIZE_PROP;
    char *props = xasprintf("type,%s", prop);
    const char *const ds[] = { snap, NULL };
    struct qvm_zfs_rows rows;
    enum qvm_zfs_failure fail;
    uint64_t size = 0;
    int r = zfs_get(props, ds, false, &rows, &fail, err);
    if (r < 0 && fail == QVM_ZFS_FAIL_MISSING)
        r = qvm_err(err, ENOENT, "image '%s' has no version %s (no snapshot %s)", image, version,
                    snap);
    if (r == 0) {
        const char *v = qvm_zfs_rows_value(&rows, snap, prop);
        if (qvm_zfs_parse_size(v, &size) < 0 || size == 0)
            r = qvm_err(err, EINVAL, "snapshot %s has no valid %s (%s): it was not made by qvm "
                        "image import", snap, prop, v ? v : "not reported");
    }
    if (r == 0) {
        memset(ret, 0, sizeof *ret);
        /* Only a kernel ZFS shows .zfs/snapshot (zfs-fuse has none), and
         * only with snapdev=visible a zvol snapshot's device. */
        ret->path = is_zvol(pool) ? zvol_dev(snap)
                  : xasprintf("%s/images/%s/.zfs/snapshot/%s/%s", pool->path, image, version,
                              QVM_ZFS_DISK_FILE);
        ret->format = xstrdup("raw");
        ret->is_block = is_zvol(pool);
        ret->virtual_size = size;
    }
    qvm_zfs_rows_release(&rows);
    free(props);
    free(snap);
    free(data);
    return r;
}

/* ------------------------------------------------------------- streams */

/* Streams are zfs send streams ("zfs-send-1") of the snapshot that is the
 * version, whole or (-i) as the changes since an older one. zfs send
 * without -p carries no properties, so qvm:virtual-size does not travel:
 * the receiver sets it from the received disk.raw (zvols carry volsize in
 * the stream). zfs recv is atomic per snapshot: a stream cut short or
 * damaged (zfs checks the stream's own checksums too) makes nothing.
 *
 * image.json lives in the live dataset of a dataset-mode image, and a
 * received dataset holds the sender's files as of the snapshot (its
 * image.json and disk.raw). So a full stream is
 * received into the staging dataset DATA:recv, checked, given the
 * version's size and tidied (the sender's image.json goes, the image.json
 * of a version-less image comes in; disk.raw stays as the newest version's,
 * see dataset_version_import), then renamed into the place of the image's
 * empty dataset. An incremental stream can only be received onto the image
 * itself (zfs recv -F: the receiver's image.json, written after the base
 * snapshot, is rolled back, to the sender's); the image is remounted and
 * its image.json put back right after. (core/ rewrites it next, and its
 * journal's undo of the version leaves it as put back.)
 *
 * zfs-fuse renames no mounted filesystem ("dataset is busy"), so the
 * staging dataset is unmounted first and the image mounted after; its zfs
 * recv has no -u, so received datasets are mounted by zfs recv itself. */

#define STREAM_TIMEOUT_MS (24 * 60 * 60 * 1000)
#define IMAGE_JSON "image.json"
#define IMAGE_JSON_MAX (16u << 20)

static int zfs_version_send(const struct qvm_pool *pool, const char *image, const char *version,
                            const char *from, int out_fd, struct qvm_error *err)
{
    char *data = image_data_ds(pool, image);
    char *snap = xasprintf("%s@%s", data, version);
    char **argv = qvm_zfs_argv_send(snap, from);
    struct qvm_run_opts opts = { .timeout_ms = STREAM_TIMEOUT_MS, .use_stdout_fd = true,
                                 .stdout_fd = out_fd };
    int r = zfs_run_opts(argv, &opts, NULL, err);
    if (r < 0)
        qvm_err_wrap(err, "cannot send version %s of image '%s'", version, image);
    qvm_zfs_argv_free(argv);
    free(snap);
    free(data);
    return r;
}

/* zfs recv [-F] SNAPSHOT from IN_FD (core's pipe). */
static int zfs_receive(const char *snapshot, bool force, int in_fd, struct qvm_error *err)
{
    char **argv = qvm_zfs_argv_receive(snapshot, force);
    struct qvm_run_opts opts = { .timeout_ms = STREAM_TIMEOUT_MS, .use_stdin_fd = true,
                                 .stdin_fd = in_fd };
    int r = zfs_run_opts(argv, &opts, NULL, err);
    qvm_zfs_argv_free(argv);
    return r;
}

/* The image's metadata in DIR as it is now, to be kept across a receive
 * that replaces the dataset's files: *RET is NULL if there is none. */
static int read_meta(const char *dir, char **ret, size_t *ret_len, struct qvm_error *err)
{
    char *meta = xasprintf("%s/%s", dir, IMAGE_JSON);
    struct qvm_error e = { 0 };
    int r = qvm_read_file(meta, IMAGE_JSON_MAX, ret, ret_len, &e);
    if (r == -ENOENT) {
        *ret = NULL;
        *ret_len = 0;
        r = 0;
    } else if (r < 0) {
        r = qvm_err(err, e.code, "%s", e.msg);
    }
    free(meta);
    return r;
}

/* Puts image.json KEEP back into DIR if a failed receive changed it. */
static void put_back_meta(const char *dir, const char *keep, size_t keep_len)
{
    char *now = NULL;
    size_t len = 0;
    if (keep && (read_meta(dir, &now, &len, NULL) < 0 || !now || len != keep_len ||
                 memcmp(now, keep, len) != 0)) {
        char *meta = xasprintf("%s/%s", dir, IMAGE_JSON);
        qvm_write_file_atomic(meta, keep, keep_len, 0644, NULL);
        free(meta);
    }
    free(now);
}

/* The size of the disk.raw a received dataset (mounted at DIR) holds: the
 * version's virtual size, as dataset_version_import recorded it. */
static int received_disk_size(const char *dir, uint64_t *ret, struct qvm_error *err)
{
    char *path = xasprintf("%s/%s", dir, QVM_ZFS_DISK_FILE);
    struct stat st;
    int r = 0;
    int e = lstat(path, &st) < 0 ? errno : 0;
    if (e && e != ENOENT)
        r = qvm_err_errno(err, e, "cannot stat %s", path);
    else if (e || !S_ISREG(st.st_mode) || st.st_size == 0)
        r = qvm_err(err, EINVAL, "the stream holds no %s: it is not a version of a qvm image",
                    QVM_ZFS_DISK_FILE);
    else
        *ret = (uint64_t)st.st_size;
    free(path);
    return r;
}

/* Leaves DIR, a received dataset's mountpoint, as an image's dataset is
 * between versions: image.json KEEP (KEEP_LEN bytes; NULL: none), never
 * the sender's; disk.raw, the received version's, stays (the newest
 * version: see dataset_version_import) unless DROP_DISK (the version
 * went again). */
static int tidy_received(const char *dir, const char *keep, size_t keep_len, bool drop_disk,
                         struct qvm_error *err)
{
    char *disk = xasprintf("%s/%s", dir, QVM_ZFS_DISK_FILE);
    char *meta = xasprintf("%s/%s", dir, IMAGE_JSON);
    int r = 0;
    if (drop_disk && unlink(disk) < 0 && errno != ENOENT)
        r = qvm_err_errno(err, errno, "cannot remove %s", disk);
    if (r == 0 && keep)
        r = qvm_write_file_atomic(meta, keep, keep_len, 0644, err);
    else if (r == 0 && unlink(meta) < 0 && errno != ENOENT)
        r = qvm_err_errno(err, errno, "cannot remove %s", meta);
    if (r == 0)
        r = qvm_fsync_dir(dir, err);
    free(disk);
    free(meta);
    return r;
}

/* Unmounts and mounts DATASET after zfs recv -F replaced its files: FUSE
 * keeps the kernel's cached names across zfs-fuse's swap of the contents
 * (the old disk.raw, or its absence, would be what a lookup finds), and
 * OpenZFS's zfs recv -u would leave it unmounted. */
static int remount(const char *dataset, struct qvm_error *err)
{
    char **argv = qvm_zfs_argv_unmount(dataset);
    struct zfs_out o = { 0 };
    int r = zfs_run_busy(argv, &o, err);
    if (r < 0 && strstr(o.err, "not currently mounted")) {
        qvm_err_clear(err);
        r = 0;
    }
    zfs_out_release(&o);
    qvm_zfs_argv_free(argv);
    if (r == 0)
        r = zfs_simple_busy(qvm_zfs_argv_mount(dataset), err);
    return r;
}

/* "v2, v3" */
static char *join_versions(char **v, size_t n)
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < n; i++)
        strbuf_addf(&sb, "%s%s", i ? ", " : "", v[i]);
    return strbuf_detach(&sb, NULL);
}

/* The received staging dataset STAGE (with snapshot STAGE_SNAP) must be of
 * the pool's kind; in dataset mode it must be mounted where the images
 * dataset's children are (a stream that sets properties is not qvm's): at
 * STAGE_DIR. Sample output in qvm_zfs_parse_get. */
static int check_stage(const struct qvm_pool *pool, const char *stage, const char *stage_snap,
                       const char *stage_dir, struct qvm_error *err)
{
    bool zvol = is_zvol(pool);
    const char *const ds[] = { stage, NULL };
    struct qvm_zfs_rows rows;
    int r = zfs_get(zvol ? "type,volsize" : "type,mounted,mountpoint", ds, true, &rows, NULL, err);
    if (r < 0)
        return r;
    const char *want = zvol ? "volume" : "filesystem";
    const char *type = qvm_zfs_rows_value(&rows, stage, "type");
    const char *stype = qvm_zfs_rows_value(&rows, stage_snap, "type");
    uint64_t size = 0;
    if (!type || !stype || strcmp(stype, "snapshot") != 0) {
        r = qvm_err(err, EIO, "zfs recv made no snapshot %s", stage_snap);
    } else if (strcmp(type, want) != 0) {
        r = qvm_err(err, EINVAL, "the stream holds a zfs %s, but pool '%s' (mode %s) keeps "
                    "images as %ss: receive it into a zfs pool in mode %s", type, pool->name,
                    pool->mode, want, zvol ? "dataset" : "zvol");
    } else if (zvol) {
        if (qvm_zfs_parse_size(qvm_zfs_rows_value(&rows, stage_snap, "volsize"), &size) < 0 ||
            size == 0)
            r = qvm_err(err, EINVAL, "the received zvol %s has no valid volsize", stage_snap);
    } else {
        const char *mp = qvm_zfs_rows_value(&rows, stage, "mountpoint");
        const char *mounted = qvm_zfs_rows_value(&rows, stage, "mounted");
        if (!mp || strcmp(mp, stage_dir) != 0)
            r = qvm_err(err, EINVAL, "the received dataset %s has mountpoint %s, not %s: the "
                        "stream set properties, and qvm sends none", stage, mp ? mp : "(none)",
                        stage_dir);
        else if (!mounted || strcmp(mounted, "yes") != 0)
            r = zfs_simple_busy(qvm_zfs_argv_mount(stage), err);
    }
    qvm_zfs_rows_release(&rows);
    return r;
}

/* Sample output in qvm_zfs_snapshots; with mounted (dataset mode):
 *   tank/qvm/images/img	mounted	yes
 *   tank/qvm/images/img@v1	mounted	-
 * Reads the versions of IMAGE (DATA's snapshots, oldest first) and, in
 * dataset mode, its image.json (KEEP). *RET_EXISTS: DATA exists (a new
 * image has no zvol yet). */
static int image_state(const struct qvm_pool *pool, const char *image, const char *data,
                       bool *ret_exists, char ***ret_snaps, size_t *ret_n, char **keep,
                       size_t *keep_len, struct qvm_error *err)
{
    const char *const ds[] = { data, NULL };
    struct qvm_zfs_rows rows;
    enum qvm_zfs_failure fail;
    *ret_exists = false;
    *ret_snaps = NULL;
    *ret_n = 0;
    *keep = NULL;
    *keep_len = 0;
    int r = zfs_get(is_zvol(pool) ? "createtxg" : "createtxg,mounted", ds, true, &rows, &fail,
                    err);
    if (r < 0 && fail == QVM_ZFS_FAIL_MISSING) {
        qvm_err_clear(err);
        return 0;
    }
    if (r < 0)
        return r;
    *ret_exists = true;
    r = qvm_zfs_snapshots(&rows, data, ret_snaps, ret_n, err);
    if (r == 0 && !is_zvol(pool)) {
        const char *mounted = qvm_zfs_rows_value(&rows, data, "mounted");
        char *dir = qvm_storage_image_dir(pool, image);
        if (!mounted || strcmp(mounted, "yes") != 0)
            r = qvm_err(err, EIO, "the image's dataset %s is not mounted (mount it with: zfs "
                        "mount %s)", data, data);
        else
            r = read_meta(dir, keep, keep_len, err);
        free(dir);
    }
    qvm_zfs_rows_release(&rows);
    if (r < 0) {
        qvm_zfs_strv_free(*ret_snaps, *ret_n);
        *ret_snaps = NULL;
        *ret_n = 0;
    }
    return r;
}

/* A full stream: a new image (core has just made its empty dataset), or
 * one whose versions were all removed (its image.json, the history, is
 * carried over). Never onto versions: zfs would have to destroy them. */
static int receive_full(const struct qvm_pool *pool, const char *image, const char *version,
                        int in_fd, struct qvm_error *err)
{
    bool zvol = is_zvol(pool);
    char *data = image_data_ds(pool, image);
    char *stage = stage_ds(pool, image);
    char *stage_snap = xasprintf("%s@%s", stage, version);
    char *dir = qvm_storage_image_dir(pool, image);
    char *stage_dir = xasprintf("%s%s", dir, QVM_ZFS_RECV_SUFFIX);
    char **snaps = NULL, *keep = NULL;
    size_t nsnaps = 0, keep_len = 0;
    bool exists = false, tried = false, data_gone = false, moved = false;
    uint64_t size = 0;
    /* A staging dataset left by a receive that was killed. */
    int r = zfs_destroy(stage, true, NULL, NULL, err);
    if (r == 0)
        r = image_state(pool, image, data, &exists, &snaps, &nsnaps, &keep, &keep_len, err);
    if (r == 0 && nsnaps) {
        char *list = join_versions(snaps, nsnaps);
        r = qvm_err(err, EEXIST, "image '%s' has versions in this pool already (%s): a full "
                    "stream cannot be received onto them; send %s@%s incrementally (qvm image "
                    "send --from %s)", image, list, image, version, snaps[nsnaps - 1]);
        free(list);
    }
    qvm_zfs_strv_free(snaps, nsnaps);
    if (r < 0)
        goto out;
    tried = true;
    r = zfs_receive(stage_snap, false, in_fd, err);
    if (r == 0)
        r = check_stage(pool, stage, stage_snap, stage_dir, err);
    if (r == 0 && !zvol) {
        r = received_disk_size(stage_dir, &size, err);
        if (r == 0)
            r = zfs_simple(qvm_zfs_argv_set_virtual_size(stage_snap, size), NULL, err);
        if (r == 0)
            r = tidy_received(stage_dir, keep, keep_len, false, err);
        if (r == 0)
            r = zfs_simple_busy(qvm_zfs_argv_unmount(stage), err);
    }
    /* The empty dataset (or a zvol without versions) makes way. */
    if (r == 0 && exists) {
        r = zfs_destroy(data, false, NULL, NULL, err);
        data_gone = r == 0;
    }
    if (r == 0) {
        r = zfs_simple_busy(qvm_zfs_argv_rename(stage, data), err);
        moved = r == 0;
    }
    if (moved && !zvol) {
        rmdir(stage_dir);              /* if zfs left the mountpoint behind */
        r = zfs_simple_busy(qvm_zfs_argv_mount(data), err);
    }
out:
    /* Once the image's dataset is gone, the staging dataset is the image
     * (with its image.json): the journal's undo puts it back in place. */
    if (r < 0 && tried && !moved && !data_gone) {
        struct qvm_error e = { 0 };
        if (zfs_destroy(stage, true, NULL, NULL, &e) < 0)
            qvm_err_wrap(err, "%s; also", e.msg);
    }
    free(keep);
    free(data);
    free(stage);
    free(stage_snap);
    free(dir);
    free(stage_dir);
    return r;
}

/* An incremental stream, onto FROM, which must be the image's newest
 * version: zfs applies it only there, and forcing it would destroy the
 * newer ones. */
static int receive_incremental(const struct qvm_pool *pool, const char *image,
                               const char *version, const char *from, int in_fd,
                               struct qvm_error *err)
{
    bool zvol = is_zvol(pool);
    char *data = image_data_ds(pool, image);
    char *snap = xasprintf("%s@%s", data, version);
    char *dir = qvm_storage_image_dir(pool, image);
    char **snaps = NULL, *keep = NULL;
    size_t n = 0, keep_len = 0, base = 0;
    bool exists = false, found = false, received = false;
    int r = image_state(pool, image, data, &exists, &snaps, &n, &keep, &keep_len, err);
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (!strcmp(snaps[i], version))
            r = qvm_err(err, EEXIST, "version %s of image '%s' already exists (snapshot %s)",
                        version, image, snap);
        if (!strcmp(snaps[i], from)) {
            found = true;
            base = i;
        }
    }
    if (r == 0 && !found)
        r = qvm_err(err, ENOENT, "image '%s' has no version %s to apply the stream to", image,
                    from);
    if (r == 0 && base + 1 < n) {
        char *list = join_versions(snaps + base + 1, n - base - 1);
        r = qvm_err(err, EEXIST, "the stream holds the changes since %s, but image '%s' has "
                    "newer versions here (%s): zfs applies a stream only onto the newest "
                    "version, and forcing it would destroy them; send %s@%s as the changes "
                    "since %s", from, image, list, image, version, snaps[n - 1]);
        free(list);
    }
    qvm_zfs_strv_free(snaps, n);
    if (r == 0) {
        r = zfs_receive(snap, true, in_fd, err);
        received = r == 0;
        if (r < 0 && !zvol)
            put_back_meta(dir, keep, keep_len);
    }
    bool mounted = false;
    if (r == 0 && !zvol) {
        r = remount(data, err);
        mounted = r == 0;
        uint64_t size = 0;
        if (r == 0)
            r = received_disk_size(dir, &size, err);
        if (r == 0)
            r = zfs_simple(qvm_zfs_argv_set_virtual_size(snap, size), NULL, err);
        if (r == 0)
            r = tidy_received(dir, keep, keep_len, false, err);
    }
    if (r < 0 && received) {
        struct qvm_error e = { 0 };
        if (zfs_destroy(snap, false, NULL, NULL, &e) < 0)
            qvm_err_wrap(err, "%s; also", e.msg);
        if (mounted)
            tidy_received(dir, keep, keep_len, true, NULL);
    }
    free(keep);
    free(dir);
    free(snap);
    free(data);
    return r;
}

static int zfs_version_receive(const struct qvm_pool *pool, const char *image,
                               const char *version, const char *from, int in_fd,
                               struct qvm_error *err)
{
    int r = from ? receive_incremental(pool, image, version, from, in_fd, err)
                 : receive_full(pool, image, version, in_fd, err);
    if (r < 0)
        qvm_err_wrap(err, "cannot receive version %s of image '%s'", version, image);
    return r;
}

/* A staging dataset left by a receive that was killed: core's journal then
 * calls version_destroy (and image_destroy for a new image). Killed between
 * destroying the image's empty dataset and the rename, the staging dataset
 * is the image (with the image.json of a version-less one): it is put back
 * in place, and its version goes as any other. Otherwise it goes. (Zvol
 * mode: the image's metadata is never in the zvol; it just goes.) */
static int stage_cleanup(const struct qvm_pool *pool, const char *image, struct qvm_error *err)
{
    char *stage = stage_ds(pool, image);
    char *data = image_data_ds(pool, image);
    int r = is_zvol(pool) ? 1 : zfs_exists(stage, err);
    if (r > 0 && !is_zvol(pool)) {
        int d = zfs_exists(data, err);
        r = d < 0 ? d : d == 0 ? 2 : 1;
    }
    if (r == 1) {
        r = zfs_destroy(stage, true, NULL, NULL, err);
    } else if (r == 2) {
        r = zfs_simple_busy(qvm_zfs_argv_rename(stage, data), err);
        if (r == 0)
            r = zfs_simple_busy(qvm_zfs_argv_mount(data), err);
    }
    free(stage);
    free(data);
    return r;
}

/* "tank/qvm/vms/a/disk0 (VM 'a'), other/clone" for messages. */
static char *describe_clones(const struct qvm_pool *pool, char **names, size_t n)
{
    struct strbuf sb = STRBUF_INIT;
    char *vms = xasprintf("%s/vms/", pool->dataset);
    size_t vlen = strlen(vms);
    for (size_t i = 0; i < n; i++) {
        strbuf_addf(&sb, "%s%s", i ? ", " : "", names[i]);
        if (strncmp(names[i], vms, vlen) == 0) {
            const char *vm = names[i] + vlen;
            strbuf_addf(&sb, " (VM '%.*s')", (int)strcspn(vm, "/@"), vm);
        }
    }
    free(vms);
    return strbuf_detach(&sb, NULL);
}

/* WHAT: "image 'img'" or "version v1 of image 'img'". */
static int refuse_clones(const struct qvm_pool *pool, const char *what, char **names, size_t n,
                         struct qvm_error *err)
{
    char *list = describe_clones(pool, names, n);
    int r = qvm_err(err, EBUSY, "%s cannot be removed: %zu VM disk%s %s cloned from it (%s); "
                    "remove %s first", what, n, n == 1 ? "" : "s", n == 1 ? "is" : "are", list,
                    n == 1 ? "that VM" : "those VMs");
    free(list);
    return r;
}

/* Destroys DATASET (an image's dataset, or one version's snapshot) unless
 * clones of ORIGIN@VERSION (VERSION NULL: of any snapshot of ORIGIN) exist:
 * `zfs get -Hp -r -o name,property,value origin tank/qvm` lists every
 * dataset's origin (sample in qvm_zfs_parse_get), so the clones are found
 * and named before anything is destroyed; zfs's own refusal names clones
 * outside the pool's dataset. Missing is success. */
static int destroy_unless_cloned(const struct qvm_pool *pool, const char *dataset,
                                 const char *origin, const char *version, const char *what,
                                 struct qvm_error *err)
{
    const char *const top[] = { pool->dataset, NULL };
    struct qvm_zfs_rows rows;
    size_t n = 0;
    char **clones = NULL, *zfs_err = NULL;
    enum qvm_zfs_failure fail = QVM_ZFS_FAIL_OTHER;
    int r = zfs_get("origin", top, true, &rows, NULL, err);
    if (r == 0) {
        clones = qvm_zfs_clones_of(&rows, origin, version, &n);
        qvm_zfs_rows_release(&rows);
    }
    if (r == 0 && n)
        r = refuse_clones(pool, what, clones, n, err);
    qvm_zfs_strv_free(clones, n);
    if (r == 0)
        r = zfs_destroy(dataset, !version, &fail, &zfs_err, err);
    if (r < 0 && fail == QVM_ZFS_FAIL_DEPENDENTS) {
        clones = qvm_zfs_parse_dependents(zfs_err, &n);
        if (n)
            r = refuse_clones(pool, what, clones, n, err);
        qvm_zfs_strv_free(clones, n);
    }
    free(zfs_err);
    return r;
}

static int zfs_image_destroy(const struct qvm_pool *pool, const char *image, struct qvm_error *err)
{
    char *ds = image_ds(pool, image);
    char *data = image_data_ds(pool, image);
    char *what = xasprintf("image '%s'", image);
    char *stage = stage_ds(pool, image);
    int r = destroy_unless_cloned(pool, ds, data, NULL, what, err);
    /* A receive that was killed (zvol mode: it was inside the image). */
    if (r == 0 && !is_zvol(pool))
        r = zfs_destroy(stage, true, NULL, NULL, err);
    free(stage);
    free(what);
    free(data);
    free(ds);
    return r;
}

/* Dataset mode: whether the live disk.raw goes with VERSION: if VERSION is
 * the newest version, whose blocks it holds (dataset_version_import), it
 * would keep their space. (A commit that failed unlinks it itself; one
 * killed half way through copy_changed leaves the records it wrote there,
 * until the next commit or the removal of the newest version.) Sample
 * output in qvm_zfs_snapshots. */
static int live_disk_goes(const struct qvm_pool *pool, const char *image, const char *version,
                          bool *ret, struct qvm_error *err)
{
    char *data = image_data_ds(pool, image);
    const char *const ds[] = { data, NULL };
    struct qvm_zfs_rows rows;
    enum qvm_zfs_failure fail;
    char **snaps = NULL;
    size_t n = 0;
    *ret = false;
    int r = zfs_get("createtxg", ds, true, &rows, &fail, err);
    if (r < 0 && fail == QVM_ZFS_FAIL_MISSING) {
        qvm_err_clear(err);
        r = 0;
    } else if (r == 0) {
        r = qvm_zfs_snapshots(&rows, data, &snaps, &n, err);
        *ret = r == 0 && n && !strcmp(snaps[n - 1], version);
        qvm_zfs_strv_free(snaps, n);
        qvm_zfs_rows_release(&rows);
    }
    free(data);
    return r;
}

static int zfs_version_destroy(const struct qvm_pool *pool, const char *image, const char *version,
                               struct qvm_error *err)
{
    char *data = image_data_ds(pool, image);
    char *snap = xasprintf("%s@%s", data, version);
    char *what = xasprintf("version %s of image '%s'", version, image);
    bool drop = false;
    int r = stage_cleanup(pool, image, err);
    if (r == 0 && !is_zvol(pool))
        r = live_disk_goes(pool, image, version, &drop, err);
    if (r == 0)
        r = destroy_unless_cloned(pool, snap, data, version, what, err);
    if (r == 0 && drop) {
        char *dir = qvm_storage_image_dir(pool, image);
        char *disk = xasprintf("%s/%s", dir, QVM_ZFS_DISK_FILE);
        if (unlink(disk) < 0 && errno != ENOENT)
            r = qvm_err_errno(err, errno, "cannot remove %s", disk);
        free(disk);
        free(dir);
    }
    free(what);
    free(snap);
    free(data);
    return r;
}

/* --------------------------------------------------------------- disks */

/* In dataset mode a disk is a dataset mounted at MOUNT/vms/VM/DISK, beside
 * the files core/ writes into the bundle: a disk named like one of them
 * would cover it. (core/ writes FILE through FILE.tmp.PID, and rm renames
 * vm.json to vm.json.removed, hence the prefixes.) */
static bool disk_name_reserved(const char *disk)
{
    static const char *const core_files[] = { "vm.json", "vm.yaml", "seed.iso", "console.log" };
    for (size_t i = 0; i < sizeof core_files / sizeof core_files[0]; i++)
        if (strncmp(disk, core_files[i], strlen(core_files[i])) == 0)
            return true;
    return false;
}

/* disk_locate runs while `qvm up` validates, so a refused disk name changes
 * nothing. */
static int zfs_disk_locate(const struct qvm_pool *pool, const char *vm, const char *disk,
                           struct qvm_disk_info *ret, struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    if (!is_zvol(pool) && disk_name_reserved(disk))
        return qvm_err(err, EINVAL, "disk name '%s' is taken by qvm's own files in the VM's "
                       "bundle (vm.json, vm.yaml, seed.iso, console.log); choose another "
                       "disk.zvol.name", disk);
    if (is_zvol(pool)) {
        char *ds = disk_ds(pool, vm, disk);
        ret->path = zvol_dev(ds);
        ret->is_block = true;
        free(ds);
    } else {
        ret->path = disk_file(pool, vm, disk);
    }
    ret->format = xstrdup("raw");
    return 0;
}

/* Grows the clone TARGET to SIZE bytes (it is BASE bytes): the raw file of
 * a dataset clone with truncate(2), a zvol with volsize. */
static int grow_clone(const struct qvm_pool *pool, const char *vm, const char *disk,
                      const char *target, uint64_t base, uint64_t size, struct qvm_error *err)
{
    if (is_zvol(pool)) {
        int r = 0;
        if (size > base)
            r = zfs_simple(qvm_zfs_argv_set_volsize(target, size), NULL, err);
        char *dev = zvol_dev(target);
        if (r == 0)
            r = wait_for_device(dev, err);
        free(dev);
        return r;
    }
    char *path = disk_file(pool, vm, disk);
    struct stat st;
    int r = 0;
    if (stat(path, &st) < 0)
        r = qvm_err_errno(err, errno, "the clone %s has no %s (is it mounted?)", target, path);
    else if ((uint64_t)st.st_size < size && truncate(path, (off_t)size) < 0)
        r = qvm_err_errno(err, errno, "cannot grow %s to %llu bytes", path,
                          (unsigned long long)size);
    free(path);
    return r;
}

static int zfs_disk_clone(const struct qvm_pool *pool, const char *image, const char *version,
                          const char *vm, const char *disk, uint64_t size,
                          const struct qvm_prop *props, size_t nprops,
                          struct qvm_disk_info *ret, struct qvm_error *err)
{
    for (size_t i = 0; i < nprops; i++) {
        int r = qvm_zfs_prop_check(&props[i], err);
        if (r < 0)
            return qvm_err_wrap(err, "disk.zvol");
    }
    struct qvm_disk_info base;
    int r = zfs_disk_locate(pool, vm, disk, &base, err);
    qvm_disk_info_release(&base);
    if (r < 0)
        return r;
    r = zfs_version_info(pool, image, version, &base, err);
    if (r < 0)
        return r;
    if (size == 0)
        size = base.virtual_size;
    if (size < base.virtual_size) {
        r = qvm_err(err, EINVAL, "disk size %llu bytes is smaller than image '%s@%s' (%llu bytes)",
                    (unsigned long long)size, image, version,
                    (unsigned long long)base.virtual_size);
        qvm_disk_info_release(&base);
        return r;
    }
    if (is_zvol(pool))
        size = qvm_zfs_volsize(size);
    char *data = image_data_ds(pool, image);
    char *snap = xasprintf("%s@%s", data, version);
    char *target = disk_ds(pool, vm, disk);
    enum qvm_zfs_failure fail;
    r = zfs_simple(qvm_zfs_argv_clone(snap, target, props, nprops), &fail, err);
    if (r < 0 && fail == QVM_ZFS_FAIL_EXISTS)
        r = qvm_err(err, EEXIST, "VM '%s' already has a disk %s", vm, target);
    if (r == 0) {
        r = grow_clone(pool, vm, disk, target, base.virtual_size, size, err);
        /* The clone is ours: never leave half a disk. */
        struct qvm_error e = { 0 };
        if (r < 0 && zfs_destroy(target, true, NULL, NULL, &e) < 0)
            qvm_err_wrap(err, "%s; also", e.msg);
    }
    if (r < 0) {
        qvm_err_wrap(err, "cannot clone image '%s@%s' for VM '%s'", image, version, vm);
    } else {
        zfs_disk_locate(pool, vm, disk, ret, NULL);   /* the name was checked first */
        ret->virtual_size = size;
    }
    free(target);
    free(snap);
    free(data);
    qvm_disk_info_release(&base);
    return r;
}

/* `qvm image commit` (seed 001's administration step): the stopped VM's
 * disk is written into the image's live disk.raw (or zvol), which holds
 * the newest version, only where it differs, then snapshotted - so the
 * version exists whole or not at all, shares every unchanged record with
 * the newest one, and its incremental stream carries only what the VM
 * changed. (A zfs send of the clone into the image's dataset would share
 * blocks too, but needs the image's live dataset rolled back to the
 * clone's origin, which must then be the newest version, losing image.json
 * changes.) Without a live disk.raw (an older image, or after a failure)
 * the disk is copied whole, as an import. */
static int zfs_version_from_disk(const struct qvm_pool *pool, const char *image,
                                 const char *version, const char *vm, const char *disk,
                                 struct qvm_ui *ui, struct qvm_error *err)
{
    struct qvm_disk_info d;
    zfs_disk_locate(pool, vm, disk, &d, NULL);
    int r = is_zvol(pool)
        ? zvol_version_import(pool, image, version, d.path, "raw", true, ui, err)
        : dataset_version_import(pool, image, version, d.path, "raw", true, ui, err);
    if (r < 0)
        qvm_err_wrap(err, "cannot make %s@%s from the disk of VM '%s'", image, version, vm);
    qvm_disk_info_release(&d);
    return r;
}

/* The snapshots qvm took of other VMs' disks to clone VM's from (their
 * NAME@clone:VM, see zfs_vm_disk_clone): they exist for VM alone. Sample
 * output in qvm_zfs_parse_get. */
static char **own_clone_origins(const struct qvm_pool *pool, const char *vm, size_t *ret_n)
{
    char *ds = vm_ds(pool, vm);
    char *suffix = xasprintf("@clone:%s", vm);
    const char *const dss[] = { ds, NULL };
    struct qvm_zfs_rows rows;
    size_t slen = strlen(suffix), n = 0;
    char **v = NULL;
    if (zfs_get("origin", dss, true, &rows, NULL, NULL) == 0) {
        for (size_t i = 0; i < rows.n; i++) {
            const char *o = rows.v[i].value;
            size_t len = strlen(o);
            if (!strcmp(rows.v[i].property, "origin") && len > slen &&
                !strcmp(o + len - slen, suffix)) {
                v = xrealloc(v, (n + 1) * sizeof *v);
                v[n++] = xstrdup(o);
            }
        }
        qvm_zfs_rows_release(&rows);
    }
    free(ds);
    free(suffix);
    *ret_n = n;
    return v;
}

static int zfs_vm_destroy(const struct qvm_pool *pool, const char *vm, struct qvm_error *err)
{
    char *ds = vm_ds(pool, vm);
    size_t n = 0;
    char **origins = own_clone_origins(pool, vm, &n);
    int r = zfs_destroy(ds, true, NULL, NULL, err);
    /* A clone's own snapshot of its source goes with it (best effort: the
     * source's next snapshot command tidies what is left). */
    for (size_t i = 0; r == 0 && i < n; i++)
        zfs_destroy(origins[i], false, NULL, NULL, NULL);
    qvm_zfs_strv_free(origins, n);
    free(ds);
    return r;
}

/* qvm resize: a dataset's disk.raw grows as any file disk; a zvol by its
 * volsize (rounded up to the volblocksize), which zfs changes even while
 * QEMU has the device open. zfs would shrink a zvol too, cutting the
 * guest's data, so the size is checked here as well as by core/. */
static int zfs_disk_resize(const struct qvm_pool *pool, const char *vm, const char *disk,
                           uint64_t size, uint64_t *ret_size, struct qvm_error *err)
{
    if (!is_zvol(pool))
        return qvm_storage_file_disk_resize(pool, vm, disk, size, ret_size, err);
    char *ds = disk_ds(pool, vm, disk);
    const char *const dss[] = { ds, NULL };
    struct qvm_zfs_rows rows;
    uint64_t now = 0;
    size = qvm_zfs_volsize(size);
    int r = zfs_get("volsize", dss, false, &rows, NULL, err);
    if (r == 0) {
        if (qvm_zfs_parse_size(qvm_zfs_rows_value(&rows, ds, "volsize"), &now) < 0)
            r = qvm_err(err, EINVAL, "zfs get did not report the volsize of %s", ds);
        qvm_zfs_rows_release(&rows);
    }
    if (r == 0 && size < now)
        r = qvm_err(err, EINVAL, "zvol %s is %llu bytes; it is never shrunk to %llu", ds,
                    (unsigned long long)now, (unsigned long long)size);
    if (r == 0 && size > now)
        r = zfs_simple(qvm_zfs_argv_set_volsize(ds, size), NULL, err);
    if (r == 0)
        *ret_size = size > now ? size : now;
    free(ds);
    return r;
}

/* ---------------------------------------- VM disk snapshots (seed 004) */

/* The family of a disk D is in zfs.h. A snapshot is D@SNAP. Reverting to
 * any snapshot S (on member X) keeps every other one, where zfs rollback
 * reaches only the newest and destroys the newer ones. So (seed 004) S is
 * cloned to D:revert, D is set aside as D:old and D:revert takes its name;
 * after the journal commits, D is promoted - again while its origin is a
 * member, and never past the family, which would make the image a clone
 * of the VM's disk - so that it owns S and everything older; D:old, left
 * holding the snapshots newer than S, is rolled back to its newest one
 * (its own data was the disk the revert discarded) and kept as history
 * D:hN, or destroyed if it holds none. A removed snapshot that a history
 * dataset was cloned from is renamed out of sight (NAME:removed:TXG) until
 * the history goes; tidy destroys qvm's own snapshots and empty history
 * once nothing depends on them. zfs destroy -r of the bundle (qvm rm) takes
 * the whole family, whose clones are all inside it. Clones of the disk
 * for other VMs are clones of D@SNAP or of D@clone:VM, and keep the VM
 * from being removed (snapshot_dependents names them). */

char **qvm_zfs_argv_promote(const char *dataset)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "promote");
    argvb_add(&b, dataset);
    return b.v;
}

char **qvm_zfs_argv_rollback(const char *snapshot)
{
    struct argvb b = { 0 };
    argvb_add(&b, "zfs");
    argvb_add(&b, "rollback");
    argvb_add(&b, snapshot);
    return b.v;
}

bool qvm_zfs_family_member(const char *dataset, const char *disk_ds)
{
    size_t n = strlen(disk_ds);
    if (strncmp(dataset, disk_ds, n) != 0)
        return false;
    return dataset[n] == '\0' ||
           (dataset[n] == ':' && dataset[n + 1] && !strpbrk(dataset + n, "/@"));
}

void qvm_zfs_family_release(struct qvm_zfs_family *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nmembers; i++) {
        free(f->members[i]);
        free(f->origins[i]);
    }
    free(f->members);
    free(f->origins);
    free(f->volsizes);
    for (size_t i = 0; i < f->nsnaps; i++) {
        free(f->snaps[i].dataset);
        free(f->snaps[i].name);
        qvm_zfs_strv_free(f->snaps[i].clones, f->snaps[i].nclones);
    }
    free(f->snaps);
    memset(f, 0, sizeof *f);
}

int qvm_zfs_family_index(const struct qvm_zfs_family *f, const char *dataset)
{
    for (size_t i = 0; i < f->nmembers; i++)
        if (!strcmp(f->members[i], dataset))
            return (int)i;
    return -1;
}

static struct qvm_zfs_snap *family_snap(const struct qvm_zfs_family *f, const char *dataset,
                                        size_t dlen, const char *name)
{
    for (size_t i = 0; i < f->nsnaps; i++)
        if (!strcmp(f->snaps[i].name, name) && strlen(f->snaps[i].dataset) == dlen &&
            !strncmp(f->snaps[i].dataset, dataset, dlen))
            return &f->snaps[i];
    return NULL;
}

const struct qvm_zfs_snap *qvm_zfs_family_find(const struct qvm_zfs_family *f, const char *name)
{
    for (size_t i = 0; i < f->nsnaps; i++)
        if (!strcmp(f->snaps[i].name, name))
            return &f->snaps[i];
    return NULL;
}

static int cmp_zfs_snap(const void *a, const void *b)
{
    const struct qvm_zfs_snap *x = a, *y = b;
    return x->txg < y->txg ? -1 : x->txg > y->txg;
}

/* `zfs get -Hp -r -o name,property,value type,origin,createtxg,creation,
 * volsize,qvm:virtual-size tank/qvm/vms/web` (zfs-fuse 0.7):
 *   tank/qvm/vms/web	type	filesystem
 *   tank/qvm/vms/web/disk0	origin	tank/qvm/images/deb@v1
 *   tank/qvm/vms/web/disk0	volsize	-
 *   tank/qvm/vms/web/disk0@s1	createtxg	212
 *   tank/qvm/vms/web/disk0@s1	creation	1763776000
 *   tank/qvm/vms/web/disk0@s1	qvm:virtual-size	67108864
 *   tank/qvm/vms/web/disk0:h1	origin	tank/qvm/vms/web/disk0@s1
 * and the pool-wide origins as in qvm_zfs_parse_get's sample. */
int qvm_zfs_family_read(const struct qvm_zfs_rows *rows, const struct qvm_zfs_rows *origins,
                        const char *disk_ds, struct qvm_zfs_family *ret, struct qvm_error *err)
{
    struct qvm_zfs_family f = { 0 };
    int r = 0;
    for (size_t i = 0; i < rows->n && r == 0; i++) {
        const struct qvm_zfs_row *row = &rows->v[i];
        const char *at = strchr(row->name, '@');
        size_t dlen = at ? (size_t)(at - row->name) : strlen(row->name);
        char *ds = strndup(row->name, dlen);
        if (!ds)
            abort();
        bool member = qvm_zfs_family_member(ds, disk_ds);
        const char *v = row->value;
        bool none = !strcmp(v, "-");
        if (member && at) {
            struct qvm_zfs_snap *s = family_snap(&f, row->name, dlen, at + 1);
            if (!s) {
                f.snaps = xrealloc(f.snaps, (f.nsnaps + 1) * sizeof *f.snaps);
                s = &f.snaps[f.nsnaps++];
                *s = (struct qvm_zfs_snap){ .dataset = xstrdup(ds), .name = xstrdup(at + 1) };
            }
            uint64_t num = 0;
            bool known = !strcmp(row->property, "createtxg") || !strcmp(row->property, "creation") ||
                         !strcmp(row->property, QVM_ZFS_SIZE_PROP);
            if (known && !none && qvm_zfs_parse_size(v, &num) < 0)
                r = qvm_err(err, EINVAL, "zfs get reported %s '%.40s' for %s", row->property, v,
                            row->name);
            else if (!strcmp(row->property, "createtxg"))
                s->txg = num;
            else if (!strcmp(row->property, "creation"))
                s->creation = (long long)num;
            else if (!strcmp(row->property, QVM_ZFS_SIZE_PROP))
                s->size = num;
        } else if (member) {
            int k = qvm_zfs_family_index(&f, ds);
            if (k < 0) {
                f.members = xrealloc(f.members, (f.nmembers + 1) * sizeof *f.members);
                f.origins = xrealloc(f.origins, (f.nmembers + 1) * sizeof *f.origins);
                f.volsizes = xrealloc(f.volsizes, (f.nmembers + 1) * sizeof *f.volsizes);
                k = (int)f.nmembers++;
                f.members[k] = xstrdup(ds);
                f.origins[k] = NULL;
                f.volsizes[k] = 0;
            }
            if (!strcmp(row->property, "origin") && !none) {
                free(f.origins[k]);
                f.origins[k] = xstrdup(v);
            } else if (!strcmp(row->property, "volsize") && !none &&
                       qvm_zfs_parse_size(v, &f.volsizes[k]) < 0) {
                r = qvm_err(err, EINVAL, "zfs get reported volsize '%.40s' for %s", v, row->name);
            }
        }
        free(ds);
    }
    for (size_t i = 0; origins && r == 0 && i < origins->n; i++) {
        const struct qvm_zfs_row *row = &origins->v[i];
        const char *at = strchr(row->value, '@');
        if (strcmp(row->property, "origin") != 0 || !at)
            continue;
        struct qvm_zfs_snap *s = family_snap(&f, row->value, (size_t)(at - row->value), at + 1);
        if (s) {
            s->clones = xrealloc(s->clones, (s->nclones + 1) * sizeof *s->clones);
            s->clones[s->nclones++] = xstrdup(row->name);
        }
    }
    if (r < 0) {
        qvm_zfs_family_release(&f);
        return r;
    }
    if (f.nsnaps)
        qsort(f.snaps, f.nsnaps, sizeof *f.snaps, cmp_zfs_snap);
    *ret = f;
    return 0;
}

/* The family of disk DISK of VM, read with one zfs get (and the pool's
 * origins, for the clones of each snapshot, if CLONES). */
static int family_get(const struct qvm_pool *pool, const char *vm, const char *disk, bool clones,
                      struct qvm_zfs_family *ret, struct qvm_error *err)
{
    char *v = vm_ds(pool, vm), *d = disk_ds(pool, vm, disk);
    const char *const ds[] = { v, NULL }, *const top[] = { pool->dataset, NULL };
    struct qvm_zfs_rows rows = { 0 }, orows = { 0 };
    enum qvm_zfs_failure fail;
    int r = zfs_get(QVM_ZFS_FAMILY_PROPS, ds, true, &rows, &fail, err);
    if (r < 0 && fail == QVM_ZFS_FAIL_MISSING)
        r = qvm_err(err, ENOENT, "VM '%s' has no dataset %s", vm, v);
    if (r == 0 && clones)
        r = zfs_get("origin", top, true, &orows, NULL, err);
    if (r == 0)
        r = qvm_zfs_family_read(&rows, clones ? &orows : NULL, d, ret, err);
    qvm_zfs_rows_release(&rows);
    qvm_zfs_rows_release(&orows);
    free(v);
    free(d);
    return r;
}

static size_t snaps_on(const struct qvm_zfs_family *f, const char *dataset)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nsnaps; i++)
        n += !strcmp(f->snaps[i].dataset, dataset);
    return n;
}

/* A member's mountpoint in dataset mode (it inherits it). Caller frees. */
static char *member_dir(const struct qvm_pool *pool, const char *dataset)
{
    return xasprintf("%s%s", pool->path, dataset + strlen(pool->dataset));
}

/* zfs unmount/mount that accept "already so". zfs-fuse renames no mounted
 * filesystem, and leaves the old mountpoint directory behind. */
static int ds_unmount(const char *dataset, struct qvm_error *err)
{
    char **argv = qvm_zfs_argv_unmount(dataset);
    struct zfs_out o = { 0 };
    int r = zfs_run_busy(argv, &o, err);
    if (r < 0 && strstr(o.err, "not currently mounted")) {
        qvm_err_clear(err);
        r = 0;
    }
    zfs_out_release(&o);
    qvm_zfs_argv_free(argv);
    return r;
}

static int ds_mount(const char *dataset, struct qvm_error *err)
{
    char **argv = qvm_zfs_argv_mount(dataset);
    struct zfs_out o = { 0 };
    int r = zfs_run_busy(argv, &o, err);
    if (r < 0 && strstr(o.err, "already mounted")) {
        qvm_err_clear(err);
        r = 0;
    }
    zfs_out_release(&o);
    qvm_zfs_argv_free(argv);
    return r;
}

/* The filesystems in the pool that are clones of a snapshot of DATASET and
 * whose mounted property is MOUNTED ("yes" or "no"; ones outside
 * pool->dataset are not looked for). Caller frees. */
static int clones_mounted(const struct qvm_pool *pool, const char *dataset, const char *mounted,
                          char ***ret, size_t *ret_n, struct qvm_error *err)
{
    const char *const top[] = { pool->dataset, NULL };
    struct qvm_zfs_rows rows;
    size_t n = 0, k = 0;
    *ret = NULL;
    *ret_n = 0;
    int r = zfs_get("origin,mounted", top, true, &rows, NULL, err);
    if (r < 0)
        return r;
    char **v = qvm_zfs_clones_of(&rows, dataset, NULL, &n);
    for (size_t i = 0; i < n; i++) {
        const char *m = qvm_zfs_rows_value(&rows, v[i], "mounted");
        if (m && !strcmp(m, mounted))
            v[k++] = v[i];
        else
            free(v[i]);
    }
    qvm_zfs_rows_release(&rows);
    *ret = v;
    *ret_n = k;
    return 0;
}

/* Renames member FROM to TO: unmounted around it in dataset mode.
 * zfs rename unmounts FROM and every mounted clone of its snapshots (a
 * history, a staged revert, another VM's disk), renames, and mounts them
 * again. zfs-fuse finishes an unmount asynchronously: until it has, the
 * clone still holds its origin snapshot and with it FROM, and the rename
 * answers "dataset is busy"; zfs then mounts the clone again, so every
 * retry ran the same race (measured on zfs-fuse 0.7: with a clone mounted,
 * 30 renames of 30 busy; with none, the first one renamed). So FROM and its
 * mounted clones are unmounted here first, the rename is retried with
 * nothing mounted again between the tries (zfs-fuse's own teardown of FROM
 * can still answer busy for a moment: retried for up to a minute), and the
 * clones are mounted again after, renamed or not. */
static int member_rename(const struct qvm_pool *pool, const char *from, const char *to,
                         struct qvm_error *err)
{
    char **clones = NULL;
    size_t nclones = 0, unmounted = 0;
    int r = is_zvol(pool) ? 0 : clones_mounted(pool, from, "yes", &clones, &nclones, err);
    while (r == 0 && unmounted < nclones && (r = ds_unmount(clones[unmounted], err)) == 0)
        unmounted++;
    if (r == 0 && !is_zvol(pool))
        r = ds_unmount(from, err);
    for (int tries = 0; r == 0 && tries < 12; tries++) {
        r = zfs_simple_busy(qvm_zfs_argv_rename(from, to), err);
        if (r != -EBUSY)
            break;
    }
    if (r == 0 && !is_zvol(pool)) {
        char *dir = member_dir(pool, from);
        rmdir(dir);
        free(dir);
        r = ds_mount(to, err);
    } else if (r < 0 && !is_zvol(pool)) {
        struct qvm_error e = { 0 };
        ds_mount(from, &e);             /* as it was; the first failure is reported */
        qvm_err_clear(&e);
    }
    for (size_t i = 0; i < unmounted; i++) {
        struct qvm_error e = { 0 };
        int m = ds_mount(clones[i], r < 0 ? &e : err);
        if (r == 0)
            r = m;
        qvm_err_clear(&e);
    }
    qvm_zfs_strv_free(clones, nclones);
    return r;
}

/* Destroys member DATASET (never a snapshot of it: it must hold none). */
static int member_destroy(const struct qvm_pool *pool, const char *dataset, struct qvm_error *err)
{
    int r = zfs_destroy(dataset, false, NULL, NULL, err);
    if (r == 0 && !is_zvol(pool)) {
        char *dir = member_dir(pool, dataset);
        rmdir(dir);
        free(dir);
    }
    return r;
}

static int zfs_snapshot_create(const struct qvm_pool *pool, const char *vm, const char *disk,
                               const char *snap, struct qvm_error *err)
{
    char *d = disk_ds(pool, vm, disk);
    struct qvm_zfs_family f = { 0 };
    uint64_t size = 0;
    int r = family_get(pool, vm, disk, false, &f, err);
    int di = r == 0 ? qvm_zfs_family_index(&f, d) : -1;
    if (r == 0 && di < 0)
        r = qvm_err(err, ENOENT, "VM '%s' has no disk dataset %s", vm, d);
    if (r == 0 && qvm_zfs_family_find(&f, snap))
        r = qvm_err(err, EEXIST, "VM '%s' already has a snapshot '%s'", vm, snap);
    if (r == 0 && is_zvol(pool)) {
        size = f.volsizes[di];
    } else if (r == 0) {
        /* What QEMU wrote is in the file before the snapshot is taken. */
        char *file = disk_file(pool, vm, disk);
        r = sync_file(file, &size, err);
        free(file);
    }
    if (r == 0) {
        char *s = xasprintf("%s@%s", d, snap);
        enum qvm_zfs_failure fail;
        r = zfs_simple(qvm_zfs_argv_snapshot(s, size), &fail, err);
        if (r < 0 && fail == QVM_ZFS_FAIL_EXISTS)
            r = qvm_err(err, EEXIST, "VM '%s' already has a snapshot '%s' (%s)", vm, snap, s);
        free(s);
    }
    if (r < 0)
        qvm_err_wrap(err, "cannot snapshot disk %s of VM '%s'", disk, vm);
    qvm_zfs_family_release(&f);
    free(d);
    return r;
}

static int zfs_snapshot_list(const struct qvm_pool *pool, const char *vm, const char *disk,
                             struct qvm_snapshot_info **ret, size_t *ret_n, struct qvm_error *err)
{
    struct qvm_zfs_family f = { 0 };
    *ret = NULL;
    *ret_n = 0;
    int r = family_get(pool, vm, disk, false, &f, err);
    if (r < 0)
        return r;
    struct qvm_snapshot_info *v = xcalloc(f.nsnaps ? f.nsnaps : 1, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < f.nsnaps; i++)
        if (qvm_name_valid(f.snaps[i].name))
            v[n++] = (struct qvm_snapshot_info){ .name = xstrdup(f.snaps[i].name),
                                                 .created = f.snaps[i].creation,
                                                 .size = f.snaps[i].size };
    qvm_zfs_family_release(&f);
    *ret = v;
    *ret_n = n;
    return 0;
}

/* Only a kernel ZFS shows .zfs/snapshot (zfs-fuse has none), and only with
 * snapdev=visible a zvol snapshot's device. */
static int zfs_snapshot_locate(const struct qvm_pool *pool, const char *vm, const char *disk,
                               const char *snap, struct qvm_disk_info *ret, struct qvm_error *err)
{
    struct qvm_zfs_family f = { 0 };
    int r = family_get(pool, vm, disk, false, &f, err);
    if (r < 0)
        return r;
    const struct qvm_zfs_snap *s = qvm_name_valid(snap) ? qvm_zfs_family_find(&f, snap) : NULL;
    if (!s) {
        r = qvm_err(err, ENOENT, "VM '%s' has no snapshot '%s'", vm, snap);
    } else {
        memset(ret, 0, sizeof *ret);
        if (is_zvol(pool)) {
            char *full = xasprintf("%s@%s", s->dataset, s->name);
            ret->path = zvol_dev(full);
            free(full);
        } else {
            char *dir = member_dir(pool, s->dataset);
            ret->path = xasprintf("%s/.zfs/snapshot/%s/%s", dir, s->name, QVM_ZFS_DISK_FILE);
            free(dir);
        }
        ret->format = xstrdup("raw");
        ret->is_block = is_zvol(pool);
        ret->virtual_size = s->size;
    }
    qvm_zfs_family_release(&f);
    return r;
}

/* "tank/qvm/vms/b/disk0 (VM 'b')" for each clone of S outside the family
 * of DISK_DS, appended to *V. */
static void outside_clones(const struct qvm_pool *pool, const struct qvm_zfs_snap *s,
                           const char *disk_ds, char ***v, size_t *n)
{
    for (size_t k = 0; k < s->nclones; k++) {
        if (qvm_zfs_family_member(s->clones[k], disk_ds))
            continue;
        char *one = describe_clones(pool, &s->clones[k], 1);
        bool dup = false;
        for (size_t i = 0; i < *n && !dup; i++)
            dup = !strcmp((*v)[i], one);
        if (dup) {
            free(one);
            continue;
        }
        *v = xrealloc(*v, (*n + 1) * sizeof **v);
        (*v)[(*n)++] = one;
    }
}

static int zfs_snapshot_dependents(const struct qvm_pool *pool, const char *vm, const char *disk,
                                   char ***ret, size_t *ret_n, struct qvm_error *err)
{
    struct qvm_zfs_family f = { 0 };
    char *d = disk_ds(pool, vm, disk);
    *ret = NULL;
    *ret_n = 0;
    int r = family_get(pool, vm, disk, true, &f, err);
    for (size_t i = 0; r == 0 && i < f.nsnaps; i++)
        outside_clones(pool, &f.snaps[i], d, ret, ret_n);
    qvm_zfs_family_release(&f);
    free(d);
    return r;
}

/* One round of tidying: destroys one empty history dataset, or one of
 * qvm's own snapshots nothing is cloned from. *RET_DONE: nothing was. */
static int tidy_round(const struct qvm_pool *pool, const char *vm, const char *disk,
                      bool *ret_done, struct qvm_error *err)
{
    struct qvm_zfs_family f = { 0 };
    char *d = disk_ds(pool, vm, disk);
    char *staged = xasprintf("%s:revert", d), *old = xasprintf("%s:old", d);
    *ret_done = true;
    int r = family_get(pool, vm, disk, true, &f, err);
    for (size_t i = 0; r == 0 && *ret_done && i < f.nmembers; i++) {
        const char *m = f.members[i];
        if (strcmp(m, d) && strcmp(m, staged) && strcmp(m, old) && snaps_on(&f, m) == 0) {
            *ret_done = false;
            r = member_destroy(pool, m, err);
        }
    }
    for (size_t i = 0; r == 0 && *ret_done && i < f.nsnaps; i++) {
        const struct qvm_zfs_snap *s = &f.snaps[i];
        if (!qvm_name_valid(s->name) && s->nclones == 0 && strcmp(s->dataset, staged) &&
            strcmp(s->dataset, old)) {
            char *full = xasprintf("%s@%s", s->dataset, s->name);
            *ret_done = false;
            r = zfs_destroy(full, false, NULL, NULL, err);
            free(full);
        }
    }
    qvm_zfs_family_release(&f);
    free(d);
    free(staged);
    free(old);
    return r;
}

static int zfs_snapshot_tidy(const struct qvm_pool *pool, const char *vm, const char *disk,
                             struct qvm_error *err)
{
    bool done = false;
    int r = 0;
    /* Each round frees what the last one's removal released. */
    for (int round = 0; r == 0 && !done && round < 1000; round++)
        r = tidy_round(pool, vm, disk, &done, err);
    if (r == -ENOENT)
        qvm_err_clear(err);           /* the VM is gone: nothing to tidy */
    return r == -ENOENT ? 0 : r;
}

static int zfs_snapshot_destroy(const struct qvm_pool *pool, const char *vm, const char *disk,
                                const char *snap, struct qvm_error *err)
{
    struct qvm_zfs_family f = { 0 };
    char *d = disk_ds(pool, vm, disk);
    char **outside = NULL;
    size_t nout = 0;
    int r = family_get(pool, vm, disk, true, &f, err);
    if (r < 0) {
        free(d);
        return r;
    }
    const struct qvm_zfs_snap *s = qvm_zfs_family_find(&f, snap);
    if (s)
        outside_clones(pool, s, d, &outside, &nout);
    char *full = s ? xasprintf("%s@%s", s->dataset, s->name) : NULL;
    if (nout) {
        struct strbuf sb = STRBUF_INIT;
        for (size_t i = 0; i < nout; i++)
            strbuf_addf(&sb, "%s%s", i ? ", " : "", outside[i]);
        r = qvm_err(err, EBUSY, "snapshot '%s' of VM '%s' cannot be removed: %zu VM disk%s %s "
                    "cloned from it (%s); remove %s first", snap, vm, nout, nout == 1 ? "" : "s",
                    nout == 1 ? "is" : "are", sb.buf, nout == 1 ? "that VM" : "those VMs");
        strbuf_release(&sb);
    } else if (s && s->nclones) {
        /* A revert's history was cloned from it: its blocks stay, out of
         * sight, until that history goes (tidy). */
        char *hidden = xasprintf("%s@%s:removed:%llu", s->dataset, s->name,
                                 (unsigned long long)s->txg);
        r = zfs_simple_busy(qvm_zfs_argv_rename(full, hidden), err);
        free(hidden);
    } else if (s) {
        enum qvm_zfs_failure fail;
        char *zerr = NULL;
        r = zfs_destroy(full, false, &fail, &zerr, err);
        if (r < 0 && fail == QVM_ZFS_FAIL_DEPENDENTS) {
            size_t n = 0;
            char **names = qvm_zfs_parse_dependents(zerr, &n);
            char *list = describe_clones(pool, names, n);
            r = qvm_err(err, EBUSY, "snapshot '%s' of VM '%s' cannot be removed: clones depend "
                        "on it (%s)", snap, vm, list);
            free(list);
            qvm_zfs_strv_free(names, n);
        }
        free(zerr);
    }
    qvm_zfs_strv_free(outside, nout);
    qvm_zfs_family_release(&f);
    free(full);
    free(d);
    if (r == 0)
        r = zfs_snapshot_tidy(pool, vm, disk, err);
    return r;
}

static int zfs_snapshot_revert_prepare(const struct qvm_pool *pool, const char *vm,
                                       const char *disk, const char *snap,
                                       struct qvm_error *err)
{
    struct qvm_zfs_family f = { 0 };
    char *d = disk_ds(pool, vm, disk);
    char *staged = xasprintf("%s:revert", d);
    int r = family_get(pool, vm, disk, false, &f, err);
    if (r < 0) {
        free(d);
        free(staged);
        return r;
    }
    const struct qvm_zfs_snap *s = qvm_name_valid(snap) ? qvm_zfs_family_find(&f, snap) : NULL;
    if (!s)
        r = qvm_err(err, ENOENT, "VM '%s' has no snapshot '%s'", vm, snap);
    if (r == 0 && qvm_zfs_family_index(&f, staged) >= 0)
        r = member_destroy(pool, staged, err);     /* left by a revert undone meanwhile */
    if (r == 0) {
        char *full = xasprintf("%s@%s", s->dataset, s->name);
        r = zfs_simple(qvm_zfs_argv_clone(full, staged, NULL, 0), NULL, err);
        free(full);
    }
    if (r < 0)
        qvm_err_wrap(err, "cannot revert VM '%s' to snapshot '%s'", vm, snap);
    qvm_zfs_family_release(&f);
    free(d);
    free(staged);
    return r;
}

static int zfs_snapshot_revert_swap(const struct qvm_pool *pool, const char *vm,
                                    const char *disk, struct qvm_error *err)
{
    struct qvm_zfs_family f = { 0 };
    char *d = disk_ds(pool, vm, disk);
    char *staged = xasprintf("%s:revert", d), *old = xasprintf("%s:old", d);
    int r = family_get(pool, vm, disk, false, &f, err);
    if (r == 0 && (qvm_zfs_family_index(&f, d) < 0 || qvm_zfs_family_index(&f, staged) < 0 ||
                   qvm_zfs_family_index(&f, old) >= 0))
        r = qvm_err(err, EINVAL, "cannot swap %s and %s: a revert of VM '%s' was not prepared",
                    d, staged, vm);
    if (r == 0)
        r = member_rename(pool, d, old, err);
    if (r == 0)
        r = member_rename(pool, staged, d, err);
    if (r == 0 && is_zvol(pool)) {
        char *dev = zvol_dev(d);
        r = wait_for_device(dev, err);
        free(dev);
    }
    qvm_zfs_family_release(&f);
    free(d);
    free(staged);
    free(old);
    return r;
}

/* From any point of prepare and swap back to the disk as it was: the
 * reverted clone is destroyed only if it is what a revert makes (no
 * snapshots, cloned from a member), never a disk holding data of its own. */
static int zfs_snapshot_revert_undo(const struct qvm_pool *pool, const char *vm,
                                    const char *disk, struct qvm_error *err)
{
    struct qvm_zfs_family f = { 0 };
    char *d = disk_ds(pool, vm, disk);
    char *staged = xasprintf("%s:revert", d), *old = xasprintf("%s:old", d);
    int r = family_get(pool, vm, disk, false, &f, err);
    int di = r == 0 ? qvm_zfs_family_index(&f, d) : -1;
    if (r == 0 && qvm_zfs_family_index(&f, old) >= 0) {
        if (di >= 0) {
            const char *o = f.origins[di];
            const char *at = o ? strchr(o, '@') : NULL;
            char *ods = at ? strndup(o, (size_t)(at - o)) : NULL;
            if (snaps_on(&f, d) || !ods || !qvm_zfs_family_member(ods, d) || !strcmp(ods, d))
                r = qvm_err(err, EIO, "cannot undo the revert of VM '%s': both %s and %s hold "
                            "a disk; keep the one to use as %s and destroy the other by hand",
                            vm, d, old, d);
            free(ods);
            if (r == 0)
                r = zfs_destroy(d, false, NULL, NULL, err);
        }
        if (r == 0)
            r = member_rename(pool, old, d, err);
    }
    if (r == 0 && qvm_zfs_family_index(&f, staged) >= 0)
        r = member_destroy(pool, staged, err);
    /* Killed between unmounting the disk (or its clones, member_rename)
     * and renaming it. */
    if (r == 0 && !is_zvol(pool))
        r = ds_mount(d, err);
    char **unmounted = NULL;
    size_t nunmounted = 0;
    if (r == 0 && !is_zvol(pool))
        r = clones_mounted(pool, d, "no", &unmounted, &nunmounted, err);
    for (size_t i = 0; r == 0 && i < nunmounted; i++)
        r = ds_mount(unmounted[i], err);
    qvm_zfs_strv_free(unmounted, nunmounted);
    qvm_zfs_family_release(&f);
    free(d);
    free(staged);
    free(old);
    return r;
}

/* The next free history name D:hN. Caller frees. */
static char *history_name(const struct qvm_zfs_family *f, const char *d)
{
    for (unsigned long n = 1;; n++) {
        char *h = xasprintf("%s:h%lu", d, n);
        if (qvm_zfs_family_index(f, h) < 0)
            return h;
        free(h);
    }
}

static int zfs_snapshot_revert_finish(const struct qvm_pool *pool, const char *vm,
                                      const char *disk, struct qvm_error *err)
{
    struct qvm_zfs_family f = { 0 };
    char *d = disk_ds(pool, vm, disk);
    char *staged = xasprintf("%s:revert", d), *old = xasprintf("%s:old", d);
    int r = family_get(pool, vm, disk, false, &f, err);
    int di = r == 0 ? qvm_zfs_family_index(&f, d) : -1;
    if (r == 0 && di < 0)
        r = qvm_err(err, EIO, "VM '%s' has no disk dataset %s (a revert was interrupted and not "
                    "rolled back)", vm, d);
    if (r == 0 && qvm_zfs_family_index(&f, staged) >= 0)
        r = member_destroy(pool, staged, err);
    /* Promote while the disk is a clone of a member: it takes over the
     * snapshots up to its origin. Never past the family. */
    for (size_t round = 0; r == 0 && round <= f.nmembers + 1; round++) {
        di = qvm_zfs_family_index(&f, d);
        const char *o = di >= 0 ? f.origins[di] : NULL;
        const char *at = o ? strchr(o, '@') : NULL;
        char *ods = at ? strndup(o, (size_t)(at - o)) : NULL;
        bool inside = ods && qvm_zfs_family_member(ods, d) && strcmp(ods, d);
        free(ods);
        if (!inside)
            break;
        r = zfs_simple_busy(qvm_zfs_argv_promote(d), err);
        qvm_zfs_family_release(&f);
        if (r == 0)
            r = family_get(pool, vm, disk, false, &f, err);
    }
    if (r == 0 && qvm_zfs_family_index(&f, old) >= 0) {
        const struct qvm_zfs_snap *newest = NULL;
        for (size_t i = 0; i < f.nsnaps; i++)
            if (!strcmp(f.snaps[i].dataset, old))
                newest = &f.snaps[i];
        if (!newest) {
            r = member_destroy(pool, old, err);
        } else {
            /* Its own data was the disk the revert discarded. */
            char *full = xasprintf("%s@%s", old, newest->name);
            char *hist = history_name(&f, d);
            r = zfs_simple_busy(qvm_zfs_argv_rollback(full), err);
            if (r == 0)
                r = member_rename(pool, old, hist, err);
            free(full);
            free(hist);
        }
    }
    qvm_zfs_family_release(&f);
    free(d);
    free(staged);
    free(old);
    if (r == 0)
        r = zfs_snapshot_tidy(pool, vm, disk, err);
    return r;
}

static int zfs_vm_disk_clone(const struct qvm_pool *pool, const char *src, const char *disk,
                             const char *snap, const char *dst, const char *dst_disk,
                             const struct qvm_prop *props, size_t nprops,
                             struct qvm_disk_info *ret, struct qvm_error *err)
{
    for (size_t i = 0; i < nprops; i++) {
        int r = qvm_zfs_prop_check(&props[i], err);
        if (r < 0)
            return qvm_err_wrap(err, "disk.zvol");
    }
    struct qvm_disk_info loc;
    int r = zfs_disk_locate(pool, dst, dst_disk, &loc, err);
    qvm_disk_info_release(&loc);
    if (r < 0)
        return r;
    struct qvm_zfs_family f = { 0 };
    r = family_get(pool, src, disk, false, &f, err);
    if (r < 0)
        return r;
    char *d = disk_ds(pool, src, disk);
    char *target = disk_ds(pool, dst, dst_disk);
    char *origin = NULL;
    uint64_t size = 0;
    bool made = false, cloned = false;
    int di = qvm_zfs_family_index(&f, d);
    if (snap) {
        const struct qvm_zfs_snap *s = qvm_name_valid(snap) ? qvm_zfs_family_find(&f, snap) : NULL;
        if (!s)
            r = qvm_err(err, ENOENT, "VM '%s' has no snapshot '%s'", src, snap);
        else {
            origin = xasprintf("%s@%s", s->dataset, s->name);
            size = s->size;
        }
    } else if (di < 0) {
        r = qvm_err(err, ENOENT, "VM '%s' has no disk dataset %s", src, d);
    } else {
        /* A clone needs a snapshot: qvm's own, named after the clone. */
        char *name = xasprintf("clone:%s", dst);
        origin = xasprintf("%s@%s", d, name);
        if (family_snap(&f, d, strlen(d), name))
            r = zfs_destroy(origin, false, NULL, NULL, err);   /* stale: nothing is cloned from it */
        free(name);
        if (r == 0 && is_zvol(pool)) {
            size = f.volsizes[di];
        } else if (r == 0) {
            char *file = disk_file(pool, src, disk);
            r = sync_file(file, &size, err);
            free(file);
        }
        if (r == 0)
            r = zfs_simple(qvm_zfs_argv_snapshot(origin, size), NULL, err);
        made = r == 0;
    }
    if (r == 0) {
        enum qvm_zfs_failure fail;
        r = zfs_simple(qvm_zfs_argv_clone(origin, target, props, nprops), &fail, err);
        if (r < 0 && fail == QVM_ZFS_FAIL_EXISTS)
            r = qvm_err(err, EEXIST, "VM '%s' already has a disk %s", dst, target);
        cloned = r == 0;
    }
    if (r == 0 && is_zvol(pool)) {
        char *dev = zvol_dev(target);
        r = wait_for_device(dev, err);
        free(dev);
    }
    if (r == 0) {
        zfs_disk_locate(pool, dst, dst_disk, ret, NULL);   /* the name was checked first */
        ret->virtual_size = size;
    } else {
        /* All or nothing: the clone, then qvm's snapshot. */
        struct qvm_error e = { 0 };
        if (cloned && zfs_destroy(target, true, NULL, NULL, &e) < 0)
            qvm_err_wrap(err, "%s; also", e.msg);
        if (made && zfs_destroy(origin, false, NULL, NULL, &e) < 0)
            qvm_err_wrap(err, "%s; also", e.msg);
        qvm_err_wrap(err, "cannot clone disk %s of VM '%s'%s%s%s", disk, src,
                     snap ? " (snapshot '" : "", snap ? snap : "", snap ? "')" : "");
    }
    qvm_zfs_family_release(&f);
    free(d);
    free(target);
    free(origin);
    return r;
}

const struct qvm_storage_driver qvm_storage_zfs = {
    .name = "zfs",
    .pool_open = zfs_pool_open,
    .pool_init = zfs_pool_init,
    .image_dir = qvm_storage_image_dir,
    .vm_dir = qvm_storage_vm_dir,
    .image_create = zfs_image_create,
    .version_import = zfs_version_import,
    .version_info = zfs_version_info,
    .image_destroy = zfs_image_destroy,
    .version_from_disk = zfs_version_from_disk,
    .stream_format = "zfs-send-1",
    .version_send = zfs_version_send,
    .version_receive = zfs_version_receive,
    .version_destroy = zfs_version_destroy,
    .vm_create = zfs_vm_create,
    .disk_locate = zfs_disk_locate,
    .disk_clone = zfs_disk_clone,
    .disk_create = qvm_zfs_disk_create,
    .disk_resize = zfs_disk_resize,
    .clone_properties = true,
    .vm_destroy = zfs_vm_destroy,
    .snapshot_create = zfs_snapshot_create,
    .snapshot_destroy = zfs_snapshot_destroy,
    .snapshot_list = zfs_snapshot_list,
    .snapshot_locate = zfs_snapshot_locate,
    .snapshot_revert_prepare = zfs_snapshot_revert_prepare,
    .snapshot_revert_swap = zfs_snapshot_revert_swap,
    .snapshot_revert_undo = zfs_snapshot_revert_undo,
    .snapshot_revert_finish = zfs_snapshot_revert_finish,
    .snapshot_tidy = zfs_snapshot_tidy,
    .snapshot_dependents = zfs_snapshot_dependents,
    .vm_disk_clone = zfs_vm_disk_clone,
};
