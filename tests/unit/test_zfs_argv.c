/* test_zfs_argv.c - the zfs driver without ZFS: the exact argv of every
 * command it builds, its parsers against pasted zfs output, the dataset-name
 * and property checks, and then the driver's operations against a fake
 * `zfs` first in PATH that logs its argv and answers from a script, so the
 * sequence of commands of each operation (zvol mode included, which needs a
 * kernel ZFS to run for real) is checked exactly. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "storage/storage.h"
#include "storage/zfs.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

/* "zfs|get|-Hp|..." - the argv joined with '|' so that every element is
 * checked, not a shell rendering of it. Frees ARGV. */
static char *joined(char **argv)
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; argv && argv[i]; i++)
        strbuf_addf(&sb, "%s%s", i ? "|" : "", argv[i]);
    qvm_zfs_argv_free(argv);
    return strbuf_detach(&sb, NULL);
}

#define CHECK_ARGV(argv, want, ...) do { \
    char *j_ = joined(argv); \
    CHECK_STR(j_, want, __VA_ARGS__); \
    free(j_); \
} while (0)

static void test_argv(void)
{
    const char *const one[] = { "tank/qvm", NULL };
    const char *const two[] = { "tank/qvm/images", "tank/qvm/vms", NULL };
    CHECK_ARGV(qvm_zfs_argv_get("type,mountpoint,mounted", one, false),
               "zfs|get|-Hp|-o|name,property,value|type,mountpoint,mounted|tank/qvm",
               "pool_open reads type, mountpoint, mounted with zfs get -Hp");
    CHECK_ARGV(qvm_zfs_argv_get("mountpoint,mounted", two, false),
               "zfs|get|-Hp|-o|name,property,value|mountpoint,mounted|tank/qvm/images|tank/qvm/vms",
               "zfs get of several datasets at once");
    CHECK_ARGV(qvm_zfs_argv_get("origin", one, true),
               "zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm",
               "the clone listing is zfs get -Hp -r origin");
    CHECK_ARGV(qvm_zfs_argv_create("tank/qvm/images", true), "zfs|create|-p|tank/qvm/images",
               "pool_init: zfs create -p");
    CHECK_ARGV(qvm_zfs_argv_create("tank/qvm/vms/web", false), "zfs|create|tank/qvm/vms/web",
               "vm_create: zfs create without -p");
    CHECK_ARGV(qvm_zfs_argv_create_zvol("tank/qvm/images/deb/disk", 2147483648u),
               "zfs|create|-V|2147483648|-o|volblocksize=16K|-o|refreservation=none|"
               "tank/qvm/images/deb/disk",
               "zvol create: -V bytes, volblocksize=16K, refreservation=none (seed 000 3.1.1)");
    CHECK_ARGV(qvm_zfs_argv_snapshot("tank/qvm/images/deb@v1", 2147483648u),
               "zfs|snapshot|-o|qvm:virtual-size=2147483648|tank/qvm/images/deb@v1",
               "dataset-mode snapshot records the virtual size");
    CHECK_ARGV(qvm_zfs_argv_snapshot("tank/qvm/images/deb/disk@v2", 0),
               "zfs|snapshot|tank/qvm/images/deb/disk@v2", "zvol snapshot: no property");
    struct qvm_prop props[] = { { "compression", "lz4" }, { "com.example:owner", "ops" } };
    CHECK_ARGV(qvm_zfs_argv_clone("tank/qvm/images/deb@v1", "tank/qvm/vms/web/disk0", props, 2),
               "zfs|clone|-o|compression=lz4|-o|com.example:owner=ops|tank/qvm/images/deb@v1|"
               "tank/qvm/vms/web/disk0", "clone with properties, in the file's order");
    CHECK_ARGV(qvm_zfs_argv_clone("tank/qvm/images/deb/disk@v1", "tank/qvm/vms/web/disk0", NULL, 0),
               "zfs|clone|tank/qvm/images/deb/disk@v1|tank/qvm/vms/web/disk0",
               "clone without properties");
    CHECK_ARGV(qvm_zfs_argv_set_volsize("tank/qvm/vms/web/disk0", 10737418240u),
               "zfs|set|volsize=10737418240|tank/qvm/vms/web/disk0", "zvol grow: zfs set volsize");
    CHECK_ARGV(qvm_zfs_argv_destroy("tank/qvm/vms/web", true), "zfs|destroy|-r|tank/qvm/vms/web",
               "vm_destroy: zfs destroy -r (never -R)");
    CHECK_ARGV(qvm_zfs_argv_destroy("tank/qvm/images/deb@v1", false),
               "zfs|destroy|tank/qvm/images/deb@v1", "version_destroy: zfs destroy of one snapshot");
    CHECK_ARGV(qvm_zfs_argv_convert("/src/deb.qcow2", "qcow2", "/p/images/deb/disk.raw.part", false, false),
               "qemu-img|convert|-q|-f|qcow2|-O|raw|/src/deb.qcow2|/p/images/deb/disk.raw.part",
               "dataset-mode import: qemu-img convert to a sparse raw file");
    CHECK_ARGV(qvm_zfs_argv_convert("/src/deb.raw", "raw", "/dev/zvol/tank/qvm/images/deb/disk", true, true),
               "qemu-img|convert|-p|-n|-f|raw|-O|raw|/src/deb.raw|/dev/zvol/tank/qvm/images/deb/disk",
               "zvol import: -n into the existing device, -p with progress");
    CHECK(qvm_zfs_volsize(1) == 16384 && qvm_zfs_volsize(16384) == 16384 &&
          qvm_zfs_volsize(16385) == 32768 && qvm_zfs_volsize(2147483648u) == 2147483648u,
          "zvol sizes round up to the 16K volblocksize");
}

static void test_names(void)
{
    static const char *const good[] = { "tank", "tank/qvm", "rpool/ROOT/vm-data_1.2:x",
                                         "a-b/c.d", "0pool/x" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct qvm_error err = { 0 };
        CHECK(qvm_zfs_dataset_check(good[i], &err) == 0, "dataset '%s' is accepted %s", good[i], err.msg);
    }
    static const struct { const char *name, *why; } bad[] = {
        { "", "needs a dataset" },
        { "/tank/qvm", "no leading '/'" },
        { "tank/", "must not end with '/'" },
        { "tank//qvm", "empty component" },
        { "tank/../etc", "'..' is not allowed" },
        { "tank/a..b", "'..' is not allowed" },
        { "tank/./x", "component '.'" },
        { "tank/.", "component '.'" },
        { "-o/x", "start with a letter or a digit" },
        { ".hidden/x", "start with a letter or a digit" },
        { "tank/q vm", "only A-Z" },
        { "tank/qvm@snap", "only A-Z" },
        { "tank/qvm#b", "only A-Z" },
        { "tank/\xc3\xa9", "only A-Z" },
        { "tank/q\nvm", "only A-Z" },
        { "tank/x'y", "only A-Z" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct qvm_error err = { 0 };
        int r = qvm_zfs_dataset_check(bad[i].name, &err);
        CHECK(r == -EINVAL && strstr(err.msg, bad[i].why), "dataset #%zu is refused: %s", i, err.msg);
    }
    char longname[QVM_ZFS_DATASET_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    struct qvm_error err = { 0 };
    CHECK(qvm_zfs_dataset_check(longname, &err) == -EINVAL && strstr(err.msg, "longer than 120"),
          "a dataset over %d bytes is refused", QVM_ZFS_DATASET_MAX);
    longname[QVM_ZFS_DATASET_MAX] = '\0';
    CHECK(qvm_zfs_dataset_check(longname, NULL) == 0, "a dataset of exactly %d bytes is accepted",
          QVM_ZFS_DATASET_MAX);
}

static void test_props(void)
{
    static const struct qvm_prop good[] = {
        { "compression", "lz4" }, { "compression", "gzip-9" }, { "recordsize", "16K" },
        { "checksum", "sha256" }, { "dedup", "sha256,verify" }, { "com.example:owner", "team/a@b" },
        { "sync", "disabled" }, { "copies", "2" },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct qvm_error err = { 0 };
        CHECK(qvm_zfs_prop_check(&good[i], &err) == 0, "property %s=%s is accepted %s",
              good[i].key, good[i].value, err.msg);
    }
    static const struct { struct qvm_prop p; const char *why; } bad[] = {
        { { "Compression", "lz4" }, "invalid zfs property name" },
        { { "compre=ssion", "lz4" }, "invalid zfs property name" },
        { { "compression x", "lz4" }, "invalid zfs property name" },
        { { "-o", "x" }, "invalid zfs property name" },
        { { "", "x" }, "invalid zfs property name" },
        { { "compression", "lz4 -o mountpoint=/" }, "invalid value" },
        { { "compression", "" }, "invalid value" },
        { { "compression", "-r" }, "invalid value" },
        { { "compression", "a\tb" }, "invalid value" },
        { { "compression", "l\"z4" }, "invalid value" },
        { { "mountpoint", "/etc" }, "managed by qvm" },
        { { "canmount", "off" }, "managed by qvm" },
        { { "readonly", "on" }, "managed by qvm" },
        { { "volsize", "1G" }, "managed by qvm" },
        { { "qvm:virtual-size", "1" }, "qvm's own" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct qvm_error err = { 0 };
        int r = qvm_zfs_prop_check(&bad[i].p, &err);
        CHECK(r == -EINVAL && strstr(err.msg, bad[i].why), "property #%zu is refused: %s", i, err.msg);
    }
}

static void test_parsers(void)
{
    struct qvm_zfs_rows rows;
    struct qvm_error err = { 0 };
    /* zfs-fuse 0.7.0: zfs get -Hp -o name,property,value type,mountpoint,mounted zxp/qvm */
    const char *open_out = "zxp/qvm\ttype\tfilesystem\n"
                           "zxp/qvm\tmountpoint\t/zxp/qvm\n"
                           "zxp/qvm\tmounted\tyes\n";
    CHECK(qvm_zfs_parse_get(open_out, &rows, &err) == 0 && rows.n == 3, "pool_open sample parses");
    CHECK_STR(qvm_zfs_rows_value(&rows, "zxp/qvm", "type"), "filesystem", "type");
    CHECK_STR(qvm_zfs_rows_value(&rows, "zxp/qvm", "mountpoint"), "/zxp/qvm", "mountpoint");
    CHECK_STR(qvm_zfs_rows_value(&rows, "zxp/qvm", "mounted"), "yes", "mounted");
    CHECK(qvm_zfs_rows_value(&rows, "zxp/qvm", "origin") == NULL, "an unlisted property is NULL");
    CHECK(qvm_zfs_rows_value(&rows, "zxp", "type") == NULL, "an unlisted dataset is NULL");
    qvm_zfs_rows_release(&rows);

    /* zfs-fuse: zfs get -Hp -o name,property,value qvm:virtual-size,type SNAP1 SNAP2
     * (rows come in the order asked; an unset user property is "-") */
    const char *snap_out = "zxp/qvm/images/img@v1\tqvm:virtual-size\t-\n"
                           "zxp/qvm/images/img@v1\ttype\tsnapshot\n"
                           "zxp/qvm/images/img@v2\tqvm:virtual-size\t67108864\n"
                           "zxp/qvm/images/img@v2\ttype\tsnapshot\n";
    CHECK(qvm_zfs_parse_get(snap_out, &rows, &err) == 0 && rows.n == 4, "snapshot sample parses");
    CHECK_STR(qvm_zfs_rows_value(&rows, "zxp/qvm/images/img@v1", QVM_ZFS_SIZE_PROP), "-",
              "an unset user property reads '-'");
    uint64_t size = 0;
    CHECK(qvm_zfs_parse_size(qvm_zfs_rows_value(&rows, "zxp/qvm/images/img@v2", QVM_ZFS_SIZE_PROP),
                             &size) == 0 && size == 67108864, "qvm:virtual-size is read in bytes");
    qvm_zfs_rows_release(&rows);

    /* zfs-fuse: zfs get -Hp -r -o name,property,value origin zxp/qvm */
    const char *origins = "zxp/qvm\torigin\t-\n"
                          "zxp/qvm/images\torigin\t-\n"
                          "zxp/qvm/images/img\torigin\t-\n"
                          "zxp/qvm/images/img@v1\torigin\t-\n"
                          "zxp/qvm/images/img@v2\torigin\t-\n"
                          "zxp/qvm/images/img2\torigin\t-\n"
                          "zxp/qvm/images/img2@v1\torigin\t-\n"
                          "zxp/qvm/vms\torigin\t-\n"
                          "zxp/qvm/vms/a\torigin\t-\n"
                          "zxp/qvm/vms/a/disk0\torigin\tzxp/qvm/images/img@v1\n"
                          "zxp/qvm/vms/b\torigin\t-\n"
                          "zxp/qvm/vms/b/disk0\torigin\tzxp/qvm/images/img2@v1\n"
                          "zxp/qvm/vms/c/data\torigin\tzxp/qvm/images/img@v2\n";
    CHECK(qvm_zfs_parse_get(origins, &rows, &err) == 0 && rows.n == 13, "origin listing parses");
    size_t n = 0;
    char **c = qvm_zfs_clones_of(&rows, "zxp/qvm/images/img", NULL, &n);
    CHECK(n == 2 && !strcmp(c[0], "zxp/qvm/vms/a/disk0") && !strcmp(c[1], "zxp/qvm/vms/c/data"),
          "clones of any version of img, not of img2 (a longer name with the same prefix)");
    qvm_zfs_strv_free(c, n);
    c = qvm_zfs_clones_of(&rows, "zxp/qvm/images/img", "v2", &n);
    CHECK(n == 1 && !strcmp(c[0], "zxp/qvm/vms/c/data"), "clones of img@v2 only");
    qvm_zfs_strv_free(c, n);
    c = qvm_zfs_clones_of(&rows, "zxp/qvm/images/img", "v9", &n);
    CHECK(n == 0 && c == NULL, "no clones of a version nobody cloned");
    qvm_zfs_rows_release(&rows);

    CHECK(qvm_zfs_parse_get("tank/x\tmountpoint\t/mnt/my disks\tA", &rows, &err) == 0 &&
          rows.n == 1 && !strcmp(rows.v[0].value, "/mnt/my disks\tA"),
          "the value is everything after the second tab; no final newline is needed");
    qvm_zfs_rows_release(&rows);
    CHECK(qvm_zfs_parse_get("", &rows, &err) == 0 && rows.n == 0, "empty output: no rows");
    qvm_zfs_rows_release(&rows);
    static const char *const broken[] = {
        "NAME  PROPERTY  VALUE\n",                /* zfs get without -H */
        "tank/x\ttype\n",                          /* two fields */
        "\ttype\tfilesystem\n",                    /* empty name */
        "tank/x\t\tfilesystem\n",                  /* empty property */
        "tank/x\ttype\tfilesystem\n\n",            /* an empty line */
        "tank/x\ttype\tfilesystem\r\n",            /* CR */
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        struct qvm_error e = { 0 };
        int r = qvm_zfs_parse_get(broken[i], &rows, &e);
        CHECK(r == -EINVAL && strstr(e.msg, "unexpected output from zfs get") && rows.n == 0 &&
              rows.v == NULL, "malformed zfs get output #%zu is refused: %s", i, e.msg);
    }

    static const struct { const char *s; int r; uint64_t v; } sizes[] = {
        { "0", 0, 0 }, { "67108864", 0, 67108864 }, { "18446744073709551615", 0, UINT64_MAX },
        { "18446744073709551616", -EINVAL, 0 }, { "-", -EINVAL, 0 }, { "", -EINVAL, 0 },
        { "64M", -EINVAL, 0 }, { "+1", -EINVAL, 0 }, { " 1", -EINVAL, 0 },
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t v = 0;
        int r = qvm_zfs_parse_size(sizes[i].s, &v);
        CHECK(r == sizes[i].r && (r < 0 || v == sizes[i].v), "size '%s' parses as expected", sizes[i].s);
    }
    CHECK(qvm_zfs_parse_size(NULL, &size) == -EINVAL, "a missing size is invalid");

    static const struct { const char *s; enum qvm_zfs_failure f; } errs[] = {
        { "cannot open 'zxp/nope': dataset does not exist\n", QVM_ZFS_FAIL_MISSING },
        { "cannot create 'zxp/qvm/vms/a': dataset already exists\n", QVM_ZFS_FAIL_EXISTS },
        { "cannot create snapshot 'zxp/qvm/images/img@v1': dataset already exists\n", QVM_ZFS_FAIL_EXISTS },
        { "cannot destroy 'zxp/qvm/vms/b': dataset is busy\n", QVM_ZFS_FAIL_BUSY },
        { "umount: /t/qvm/vms/a/disk0: target is busy.\ncannot unmount '/t/qvm/vms/a/disk0': "
          "umount failed: umount child process failed\n", QVM_ZFS_FAIL_BUSY },
        { "cannot destroy 'zxp/qvm/images/img': filesystem has dependent clones\n"
          "use '-R' to destroy the following datasets:\nzxp/qvm/vms/a/disk0\n", QVM_ZFS_FAIL_DEPENDENTS },
        { "cannot destroy 'zxp/qvm/images/img@v1': snapshot has dependent clones\n", QVM_ZFS_FAIL_DEPENDENTS },
        { "connect: No such file or directory\nPlease make sure that the zfs-fuse daemon is running.\n"
          "internal error: failed to initialize ZFS library\n", QVM_ZFS_FAIL_NO_DAEMON },
        { "The ZFS modules are not loaded.\nTry running '/sbin/modprobe zfs' as root to load them.\n",
          QVM_ZFS_FAIL_NO_MODULE },
        { "internal error: Function not implemented\n", QVM_ZFS_FAIL_NOT_IMPLEMENTED },
        { "cannot create 'x/y': parent does not exist\n", QVM_ZFS_FAIL_OTHER },
        { "", QVM_ZFS_FAIL_OTHER },
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
        CHECK(qvm_zfs_classify(errs[i].s) == errs[i].f, "zfs error #%zu is classified (%d)", i,
              (int)errs[i].f);
    CHECK(qvm_zfs_classify(NULL) == QVM_ZFS_FAIL_OTHER, "no stderr: other");

    c = qvm_zfs_parse_dependents(errs[5].s, &n);
    CHECK(n == 1 && !strcmp(c[0], "zxp/qvm/vms/a/disk0"), "dependent clones named by zfs destroy");
    qvm_zfs_strv_free(c, n);
    c = qvm_zfs_parse_dependents("cannot destroy 'a': filesystem has dependent clones\n"
                                 "use '-R' to destroy the following datasets:\nb/c\nd/e\n", &n);
    CHECK(n == 2 && !strcmp(c[0], "b/c") && !strcmp(c[1], "d/e"), "several dependents");
    qvm_zfs_strv_free(c, n);
    c = qvm_zfs_parse_dependents("cannot destroy 'a': dataset is busy\n", &n);
    CHECK(n == 0 && c == NULL, "no dependents in another error");
}

/* ----------------------------------------------------------- fake zfs */

static char fake[64];          /* the fake's directory, first in PATH */

static const char fake_script[] =
    "#!/bin/sh\n"
    "# fake zfs for test_zfs_argv: logs its argv, answers the scripted reply N\n"
    "d=" "%s" "\n"
    "n=$(cat \"$d/n\" 2>/dev/null || echo 0); n=$((n + 1)); echo $n >\"$d/n\"\n"
    "{ printf zfs; for a in \"$@\"; do printf '|%%s' \"$a\"; done; echo; } >>\"$d/log\"\n"
    "[ -f \"$d/$n.out\" ] && cat \"$d/$n.out\"\n"
    "[ -f \"$d/$n.err\" ] && cat \"$d/$n.err\" >&2\n"
    "exit $(cat \"$d/$n.rc\" 2>/dev/null || echo 0)\n";

static void put(const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", fake, name);
    qvm_write_file_atomic(p, text, strlen(text), 0644, NULL);
    free(p);
}

static void fake_reset(void)
{
    char *p = xasprintf("%s/log", fake);
    unlink(p);
    free(p);
    p = xasprintf("%s/n", fake);
    unlink(p);
    free(p);
    for (int i = 1; i <= 64; i++)
        for (int k = 0; k < 3; k++) {
            p = xasprintf("%s/%d.%s", fake, i, (const char *[]){ "out", "err", "rc" }[k]);
            unlink(p);
            free(p);
        }
}

/* Reply N of the fake: stdout, stderr, exit status. */
static void reply(int n, const char *out, const char *errtext, int rc)
{
    char name[32];
    if (out) {
        snprintf(name, sizeof name, "%d.out", n);
        put(name, out);
    }
    if (errtext) {
        snprintf(name, sizeof name, "%d.err", n);
        put(name, errtext);
    }
    if (rc) {
        char num[16];
        snprintf(name, sizeof name, "%d.rc", n);
        snprintf(num, sizeof num, "%d", rc);
        put(name, num);
    }
}

/* The commands the fake ran, one per line. Caller frees. */
static char *fake_log(void)
{
    char *p = xasprintf("%s/log", fake), *text = NULL;
    size_t len;
    if (qvm_read_file(p, 1 << 20, &text, &len, NULL) < 0)
        text = xstrdup("");
    free(p);
    return text;
}

#define CHECK_LOG(want, ...) do { \
    char *l_ = fake_log(); \
    CHECK_STR(l_, want, __VA_ARGS__); \
    free(l_); \
} while (0)

static const char missing_err[] = "cannot open 'x': dataset does not exist\n";

static void open_pool(const char *mode, struct qvm_pool *pool)
{
    fake_reset();
    reply(1, "tank/qvm\ttype\tfilesystem\ntank/qvm\tmountpoint\t/tank/qvm\ntank/qvm\tmounted\tyes\n",
          NULL, 0);
    struct qvm_error err = { 0 };
    int r = qvm_pool_open("t", "zfs", NULL, "tank/qvm", mode, pool, &err);
    CHECK(r == 0 && !strcmp(pool->path, "/tank/qvm") && !strcmp(pool->mode, mode ? mode : "dataset"),
          "pool_open (mode %s): path is the mountpoint %s", mode ? mode : "default", err.msg);
    CHECK_LOG("zfs|get|-Hp|-o|name,property,value|type,mountpoint,mounted|tank/qvm\n",
              "pool_open runs one zfs get -Hp");
    fake_reset();
}

static void test_pool_open(void)
{
    const struct qvm_storage_driver *drv = &qvm_storage_zfs;
    CHECK(drv->clone_properties, "zfs clones take properties");
    struct qvm_pool pool;
    struct qvm_error err = { 0 };
    fake_reset();
    CHECK(qvm_pool_open("t", "zfs", NULL, NULL, NULL, &pool, &err) == -EINVAL &&
          strstr(err.msg, "needs a dataset"), "no dataset: %s", err.msg);
    CHECK(qvm_pool_open("t", "zfs", NULL, "tank/qvm", "raw", &pool, &err) == -EINVAL &&
          strstr(err.msg, "unknown zfs mode 'raw' (modes: dataset, zvol)"), "bad mode: %s", err.msg);
    CHECK(qvm_pool_open("t", "zfs", NULL, "tank/../x", NULL, &pool, &err) == -EINVAL,
          "bad dataset: %s", err.msg);
    CHECK_LOG("", "invalid configurations run no zfs command");

    reply(1, NULL, "connect: No such file or directory\n"
          "Please make sure that the zfs-fuse daemon is running.\n"
          "internal error: failed to initialize ZFS library\n", 1);
    CHECK(qvm_pool_open("t", "zfs", NULL, "tank/qvm", NULL, &pool, &err) == -ENOTCONN &&
          strstr(err.msg, "is zfs-fuse running?") && strstr(err.msg, "connect: No such file"),
          "daemon down: %s", err.msg);
    fake_reset();
    reply(1, NULL, "The ZFS modules are not loaded.\n"
          "Try running '/sbin/modprobe zfs' as root to load them.\n", 1);
    CHECK(qvm_pool_open("t", "zfs", NULL, "tank/qvm", NULL, &pool, &err) == -ENODEV &&
          strstr(err.msg, "modprobe zfs"), "module not loaded: %s", err.msg);
    fake_reset();
    reply(1, NULL, "cannot open 'tank/qvm': dataset does not exist\n", 1);
    CHECK(qvm_pool_open("t", "zfs", NULL, "tank/qvm", NULL, &pool, &err) == -ENOENT &&
          strstr(err.msg, "pool 't': zfs dataset 'tank/qvm' does not exist (create it with: "
                 "zfs create -p tank/qvm)"), "missing dataset: %s", err.msg);
    fake_reset();
    reply(1, "tank/qvm\ttype\tfilesystem\ntank/qvm\tmountpoint\t/tank/qvm\ntank/qvm\tmounted\tno\n",
          NULL, 0);
    CHECK(qvm_pool_open("t", "zfs", NULL, "tank/qvm", NULL, &pool, &err) == -EINVAL &&
          strstr(err.msg, "is not mounted (mount it with: zfs mount tank/qvm)"), "unmounted: %s", err.msg);
    fake_reset();
    reply(1, "tank/qvm\ttype\tvolume\ntank/qvm\tmountpoint\t-\ntank/qvm\tmounted\t-\n", NULL, 0);
    CHECK(qvm_pool_open("t", "zfs", NULL, "tank/qvm", NULL, &pool, &err) == -EINVAL &&
          strstr(err.msg, "is a volume, not a filesystem"), "a zvol is no pool: %s", err.msg);
    fake_reset();
    reply(1, "tank/qvm\ttype\tfilesystem\ntank/qvm\tmountpoint\tlegacy\ntank/qvm\tmounted\tyes\n",
          NULL, 0);
    CHECK(qvm_pool_open("t", "zfs", NULL, "tank/qvm", NULL, &pool, &err) == -EINVAL &&
          strstr(err.msg, "has no mountpoint (mountpoint=legacy)"), "legacy mountpoint: %s", err.msg);
    fake_reset();
    reply(1, "rpool/ROOT\ttype\tfilesystem\nrpool/ROOT\tmountpoint\t/\nrpool/ROOT\tmounted\tyes\n",
          NULL, 0);
    CHECK(qvm_pool_open("t", "zfs", NULL, "rpool/ROOT", NULL, &pool, &err) == -EINVAL &&
          strstr(err.msg, "is mounted at /; give qvm a dataset of its own"), "root dataset: %s", err.msg);
    fake_reset();
    reply(1, "garbage\n", NULL, 0);
    CHECK(qvm_pool_open("t", "zfs", NULL, "tank/qvm", NULL, &pool, &err) == -EINVAL &&
          strstr(err.msg, "unexpected output from zfs get"), "garbage: %s", err.msg);

    const char *path = getenv("PATH");
    char *saved = xstrdup(path);
    setenv("PATH", "/nonexistent", 1);
    CHECK(qvm_pool_open("t", "zfs", NULL, "tank/qvm", NULL, &pool, &err) == -ENOENT &&
          strstr(err.msg, "cannot run zfs: not found"), "no zfs program: %s", err.msg);
    setenv("PATH", saved, 1);
    free(saved);
}

static void test_dataset_mode(void)
{
    struct qvm_pool pool;
    struct qvm_error err = { 0 };
    const struct qvm_storage_driver *d = &qvm_storage_zfs;
    open_pool(NULL, &pool);

    reply(3, "tank/qvm/images\tmountpoint\t/tank/qvm/images\ntank/qvm/images\tmounted\tyes\n"
          "tank/qvm/vms\tmountpoint\t/tank/qvm/vms\ntank/qvm/vms\tmounted\tyes\n", NULL, 0);
    CHECK(d->pool_init(&pool, &err) == 0, "pool_init %s", err.msg);
    CHECK_LOG("zfs|create|-p|tank/qvm/images\nzfs|create|-p|tank/qvm/vms\n"
              "zfs|get|-Hp|-o|name,property,value|mountpoint,mounted|tank/qvm/images|tank/qvm/vms\n",
              "pool_init: create -p images and vms, then check where they are mounted");
    fake_reset();
    reply(3, "tank/qvm/images\tmountpoint\t/elsewhere\ntank/qvm/images\tmounted\tyes\n"
          "tank/qvm/vms\tmountpoint\t/tank/qvm/vms\ntank/qvm/vms\tmounted\tyes\n", NULL, 0);
    CHECK(d->pool_init(&pool, &err) == -EINVAL &&
          strstr(err.msg, "tank/qvm/images has mountpoint /elsewhere, not /tank/qvm/images"),
          "pool_init refuses an images dataset mounted elsewhere: %s", err.msg);
    fake_reset();

    char *s = d->image_dir(&pool, "deb");
    CHECK_STR(s, "/tank/qvm/images/deb", "image_dir is under the mountpoint");
    free(s);
    s = d->vm_dir(&pool, "web");
    CHECK_STR(s, "/tank/qvm/vms/web", "vm_dir is under the mountpoint");
    free(s);
    struct qvm_disk_info info;
    CHECK(d->disk_locate(&pool, "web", "disk0", &info, &err) == 0 &&
          !strcmp(info.path, "/tank/qvm/vms/web/disk0/disk.raw") && !strcmp(info.format, "raw") &&
          !info.is_block, "disk_locate: the raw file in the clone, not a block device");
    qvm_disk_info_release(&info);
    static const char *const taken[] = { "vm.json", "vm.yaml", "seed.iso", "console.log",
                                         "vm.json.removed", "seed.iso.tmp.1" };
    for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++)
        CHECK(d->disk_locate(&pool, "web", taken[i], &info, &err) == -EINVAL &&
              strstr(err.msg, "is taken by qvm's own files"), "disk name '%s' is refused: %s",
              taken[i], err.msg);
    CHECK(d->disk_clone(&pool, "deb", "v1", "web", "seed.iso", 0, NULL, 0, &info, &err) == -EINVAL,
          "disk_clone refuses a reserved disk name too");
    CHECK_LOG("", "image_dir, vm_dir and disk_locate run nothing");

    CHECK(d->image_create(&pool, "deb", &err) == 0, "image_create");
    CHECK_LOG("zfs|create|tank/qvm/images/deb\n", "image_create: zfs create");
    fake_reset();
    reply(1, NULL, "cannot create 'tank/qvm/images/deb': dataset already exists\n", 1);
    CHECK(d->image_create(&pool, "deb", &err) == -EEXIST &&
          strstr(err.msg, "image 'deb' already exists (dataset tank/qvm/images/deb)"),
          "image_create of an existing image: %s", err.msg);
    fake_reset();
    reply(1, NULL, "cannot create 'tank/qvm/vms/web': dataset already exists\n", 1);
    CHECK(d->vm_create(&pool, "web", &err) == -EEXIST && strstr(err.msg, "VM 'web' already exists"),
          "vm_create of an existing VM: %s", err.msg);
    CHECK_LOG("zfs|create|tank/qvm/vms/web\n", "vm_create: zfs create");
    fake_reset();

    reply(1, "tank/qvm/images/deb@v1\ttype\tsnapshot\n"
          "tank/qvm/images/deb@v1\tqvm:virtual-size\t2147483648\n", NULL, 0);
    CHECK(d->version_info(&pool, "deb", "v1", &info, &err) == 0 && info.virtual_size == 2147483648u &&
          !strcmp(info.format, "raw") &&
          !strcmp(info.path, "/tank/qvm/images/deb/.zfs/snapshot/v1/disk.raw"),
          "version_info: size from qvm:virtual-size %s", err.msg);
    qvm_disk_info_release(&info);
    CHECK_LOG("zfs|get|-Hp|-o|name,property,value|type,qvm:virtual-size|tank/qvm/images/deb@v1\n",
              "version_info: one zfs get of the snapshot");
    fake_reset();
    reply(1, NULL, "cannot open 'tank/qvm/images/deb@v9': dataset does not exist\n", 1);
    CHECK(d->version_info(&pool, "deb", "v9", &info, &err) == -ENOENT &&
          strstr(err.msg, "image 'deb' has no version v9"), "version_info of a missing version: %s", err.msg);
    fake_reset();
    reply(1, "tank/qvm/images/deb@v1\ttype\tsnapshot\ntank/qvm/images/deb@v1\tqvm:virtual-size\t-\n",
          NULL, 0);
    CHECK(d->version_info(&pool, "deb", "v1", &info, &err) == -EINVAL &&
          strstr(err.msg, "no valid qvm:virtual-size (-)"), "a snapshot qvm did not make: %s", err.msg);
    fake_reset();

    /* disk_clone: properties are checked before anything runs. */
    struct qvm_prop bad = { "mountpoint", "/etc" };
    CHECK(d->disk_clone(&pool, "deb", "v1", "web", "disk0", 0, &bad, 1, &info, &err) == -EINVAL &&
          strstr(err.msg, "disk.zvol: zfs property 'mountpoint' is managed by qvm"),
          "a managed property is refused: %s", err.msg);
    CHECK_LOG("", "nothing ran for a refused property");
    reply(1, "tank/qvm/images/deb@v1\ttype\tsnapshot\n"
          "tank/qvm/images/deb@v1\tqvm:virtual-size\t2147483648\n", NULL, 0);
    CHECK(d->disk_clone(&pool, "deb", "v1", "web", "disk0", 1024, NULL, 0, &info, &err) == -EINVAL &&
          strstr(err.msg, "smaller than image 'deb@v1'"), "a smaller disk is refused: %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-o|name,property,value|type,qvm:virtual-size|tank/qvm/images/deb@v1\n",
              "no clone for a disk smaller than its image");
    fake_reset();
    reply(1, "tank/qvm/images/deb@v1\ttype\tsnapshot\n"
          "tank/qvm/images/deb@v1\tqvm:virtual-size\t2147483648\n", NULL, 0);
    reply(2, NULL, "cannot create 'tank/qvm/vms/web/disk0': 'compression' must be one of "
          "'on | off | lzjb | gzip | gzip-[1-9] | zle'\n", 1);
    struct qvm_prop lz4 = { "compression", "lz4" };
    CHECK(d->disk_clone(&pool, "deb", "v1", "web", "disk0", 0, &lz4, 1, &info, &err) == -EIO &&
          strstr(err.msg, "cannot clone image 'deb@v1' for VM 'web': zfs clone -o compression=lz4 "
                 "tank/qvm/images/deb@v1 tank/qvm/vms/web/disk0: cannot create") &&
          strstr(err.msg, "'compression' must be one of"), "zfs's refusal is reported: %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-o|name,property,value|type,qvm:virtual-size|tank/qvm/images/deb@v1\n"
              "zfs|clone|-o|compression=lz4|tank/qvm/images/deb@v1|tank/qvm/vms/web/disk0\n",
              "disk_clone: version_info then clone -o");
    fake_reset();
    reply(1, "tank/qvm/images/deb@v1\ttype\tsnapshot\n"
          "tank/qvm/images/deb@v1\tqvm:virtual-size\t2147483648\n", NULL, 0);
    /* The clone "succeeds" but nothing is mounted at /tank/qvm/...: the
     * clone is destroyed again (busy once, as zfs-fuse is). */
    reply(3, NULL, "cannot destroy 'tank/qvm/vms/web/disk0': dataset is busy\n", 1);
    CHECK(d->disk_clone(&pool, "deb", "v1", "web", "disk0", 0, NULL, 0, &info, &err) == -ENOENT &&
          strstr(err.msg, "has no /tank/qvm/vms/web/disk0/disk.raw (is it mounted?)"),
          "a clone without its file is an error: %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-o|name,property,value|type,qvm:virtual-size|tank/qvm/images/deb@v1\n"
              "zfs|clone|tank/qvm/images/deb@v1|tank/qvm/vms/web/disk0\n"
              "zfs|destroy|-r|tank/qvm/vms/web/disk0\nzfs|destroy|-r|tank/qvm/vms/web/disk0\n",
              "the failed clone is destroyed, busy retried");
    fake_reset();

    reply(1, NULL, "cannot open 'tank/qvm/vms/web': dataset does not exist\n", 1);
    CHECK(d->vm_destroy(&pool, "web", &err) == 0, "vm_destroy of a missing VM is success");
    CHECK_LOG("zfs|destroy|-r|tank/qvm/vms/web\n", "vm_destroy: zfs destroy -r");
    fake_reset();
    reply(1, NULL, "cannot destroy 'tank/qvm/vms/web': dataset is busy\n", 1);
    CHECK(d->vm_destroy(&pool, "web", &err) == 0, "vm_destroy retries a busy dataset");
    CHECK_LOG("zfs|destroy|-r|tank/qvm/vms/web\nzfs|destroy|-r|tank/qvm/vms/web\n", "twice");
    fake_reset();

    const char *listing = "tank/qvm\torigin\t-\ntank/qvm/images/deb\torigin\t-\n"
                          "tank/qvm/images/deb@v1\torigin\t-\n"
                          "tank/qvm/vms/web/disk0\torigin\ttank/qvm/images/deb@v1\n"
                          "tank/qvm/vms/db/disk0\torigin\ttank/qvm/images/deb@v1\n";
    reply(1, listing, NULL, 0);
    CHECK(d->image_destroy(&pool, "deb", &err) == -EBUSY &&
          strstr(err.msg, "image 'deb' cannot be removed: 2 VM disks are cloned from it "
                 "(tank/qvm/vms/web/disk0 (VM 'web'), tank/qvm/vms/db/disk0 (VM 'db')); "
                 "remove those VMs first"), "image_destroy names the clones: %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm\n",
              "image_destroy with clones destroys nothing");
    fake_reset();
    reply(1, listing, NULL, 0);
    CHECK(d->version_destroy(&pool, "deb", "v1", &err) == -EBUSY &&
          strstr(err.msg, "version v1 of image 'deb' cannot be removed: 2 VM disks"),
          "version_destroy names the clones: %s", err.msg);
    fake_reset();
    reply(1, "tank/qvm\torigin\t-\n", NULL, 0);
    reply(2, NULL, "cannot destroy 'tank/qvm/images/deb': filesystem has dependent clones\n"
          "use '-R' to destroy the following datasets:\nother/clone\n", 1);
    CHECK(d->image_destroy(&pool, "deb", &err) == -EBUSY &&
          strstr(err.msg, "1 VM disk is cloned from it (other/clone); remove that VM first"),
          "clones outside the pool are named from zfs's refusal: %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm\n"
              "zfs|destroy|-r|tank/qvm/images/deb\n", "destroy -r, never -R");
    fake_reset();
    reply(1, "tank/qvm\torigin\t-\n", NULL, 0);
    reply(2, NULL, "cannot open 'tank/qvm/images/deb@v2': dataset does not exist\n", 1);
    CHECK(d->version_destroy(&pool, "deb", "v2", &err) == 0, "version_destroy of a missing version");
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm\n"
              "zfs|destroy|tank/qvm/images/deb@v2\n", "version_destroy: destroy the snapshot, no -r");
    fake_reset();
    qvm_pool_release(&pool);
}

static void test_zvol_mode(const char *src)
{
    struct qvm_pool pool;
    struct qvm_error err = { 0 };
    const struct qvm_storage_driver *d = &qvm_storage_zfs;
    open_pool("zvol", &pool);

    struct qvm_disk_info info;
    CHECK(d->disk_locate(&pool, "web", "disk0", &info, &err) == 0 &&
          !strcmp(info.path, "/dev/zvol/tank/qvm/vms/web/disk0") && !strcmp(info.format, "raw") &&
          info.is_block, "zvol disk_locate: the zvol's block device, raw");
    qvm_disk_info_release(&info);
    CHECK(d->disk_locate(&pool, "web", "seed.iso", &info, &err) == 0,
          "zvol disk_locate: a zvol covers no file, any disk name goes");
    qvm_disk_info_release(&info);

    CHECK(d->image_create(&pool, "deb", &err) == 0, "zvol image_create");
    CHECK_LOG("zfs|create|tank/qvm/images/deb\n", "zvol image_create: a filesystem for image.json");
    fake_reset();

    reply(1, "tank/qvm/images/deb/disk@v1\ttype\tsnapshot\n"
          "tank/qvm/images/deb/disk@v1\tvolsize\t2147483648\n", NULL, 0);
    CHECK(d->version_info(&pool, "deb", "v1", &info, &err) == 0 && info.virtual_size == 2147483648u &&
          info.is_block && !strcmp(info.path, "/dev/zvol/tank/qvm/images/deb/disk@v1"),
          "zvol version_info: volsize of the snapshot %s", err.msg);
    qvm_disk_info_release(&info);
    CHECK_LOG("zfs|get|-Hp|-o|name,property,value|type,volsize|tank/qvm/images/deb/disk@v1\n",
              "zvol version_info: one zfs get");
    fake_reset();

    /* Import on zfs-fuse: the snapshot and the zvol are missing, and zvol
     * creation is not implemented. */
    reply(1, NULL, missing_err, 1);
    reply(2, NULL, missing_err, 1);
    reply(3, NULL, "internal error: Function not implemented\n", 134);
    CHECK(d->version_import(&pool, "deb", "v1", src, "raw", NULL, &err) == -ENOSYS &&
          strstr(err.msg, "zvols need a kernel ZFS; zfs-fuse has none"),
          "zvol import without zvols: %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-o|name,property,value|type|tank/qvm/images/deb/disk@v1\n"
              "zfs|get|-Hp|-o|name,property,value|type|tank/qvm/images/deb/disk\n"
              "zfs|create|-V|1048576|-o|volblocksize=16K|-o|refreservation=none|tank/qvm/images/deb/disk\n",
              "zvol import: check the snapshot, then the zvol, create it (qemu-img info sized it)");
    fake_reset();
    reply(1, "tank/qvm/images/deb/disk@v1\ttype\tsnapshot\n", NULL, 0);
    CHECK(d->version_import(&pool, "deb", "v1", src, "raw", NULL, &err) == -EEXIST &&
          strstr(err.msg, "version v1 of image 'deb' already exists (snapshot "
                 "tank/qvm/images/deb/disk@v1)"), "an existing version is refused: %s", err.msg);
    fake_reset();

    reply(1, "tank/qvm/images/deb/disk@v1\ttype\tsnapshot\n"
          "tank/qvm/images/deb/disk@v1\tvolsize\t2147483648\n", NULL, 0);
    reply(2, NULL, "cannot create 'tank/qvm/vms/web/disk0': dataset already exists\n", 1);
    struct qvm_prop props[] = { { "compression", "lz4" }, { "sync", "disabled" } };
    CHECK(d->disk_clone(&pool, "deb", "v1", "web", "disk0", 10737418240u, props, 2, &info, &err) ==
          -EEXIST && strstr(err.msg, "VM 'web' already has a disk tank/qvm/vms/web/disk0"),
          "zvol disk_clone onto an existing disk: %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-o|name,property,value|type,volsize|tank/qvm/images/deb/disk@v1\n"
              "zfs|clone|-o|compression=lz4|-o|sync=disabled|tank/qvm/images/deb/disk@v1|"
              "tank/qvm/vms/web/disk0\n", "zvol disk_clone: clone of the zvol snapshot with -o");
    fake_reset();
    /* Clone, grow (volsize), then the device never appears here: the clone
     * is destroyed. (Waits the 10 s device timeout.) */
    reply(1, "tank/qvm/images/deb/disk@v1\ttype\tsnapshot\n"
          "tank/qvm/images/deb/disk@v1\tvolsize\t2147483648\n", NULL, 0);
    CHECK(d->disk_clone(&pool, "deb", "v1", "web", "disk0", 10737418240u + 1, NULL, 0, &info, &err) ==
          -ENODEV && strstr(err.msg, "zvol device /dev/zvol/tank/qvm/vms/web/disk0 did not appear"),
          "zvol disk_clone waits for the device: %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-o|name,property,value|type,volsize|tank/qvm/images/deb/disk@v1\n"
              "zfs|clone|tank/qvm/images/deb/disk@v1|tank/qvm/vms/web/disk0\n"
              "zfs|set|volsize=10737434624|tank/qvm/vms/web/disk0\n"
              "zfs|destroy|-r|tank/qvm/vms/web/disk0\n",
              "zvol disk_clone: clone, set volsize (rounded up to 16K), destroy on failure");
    fake_reset();

    reply(1, "tank/qvm\torigin\t-\ntank/qvm/vms/web/disk0\torigin\ttank/qvm/images/deb/disk@v1\n",
          NULL, 0);
    CHECK(d->image_destroy(&pool, "deb", &err) == -EBUSY && strstr(err.msg, "(VM 'web')"),
          "zvol image_destroy names the zvol clones: %s", err.msg);
    fake_reset();
    reply(1, "tank/qvm\torigin\t-\n", NULL, 0);
    CHECK(d->image_destroy(&pool, "deb", &err) == 0, "zvol image_destroy");
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm\n"
              "zfs|destroy|-r|tank/qvm/images/deb\n", "zvol image_destroy: destroy -r the image");
    fake_reset();
    reply(1, "tank/qvm\torigin\t-\n", NULL, 0);
    CHECK(d->version_destroy(&pool, "deb", "v1", &err) == 0, "zvol version_destroy");
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm\n"
              "zfs|destroy|tank/qvm/images/deb/disk@v1\n", "zvol version_destroy: the zvol's snapshot");
    fake_reset();
    qvm_pool_release(&pool);
}

int main(void)
{
    test_argv();
    test_names();
    test_props();
    test_parsers();

    snprintf(fake, sizeof fake, "/tmp/qvm-zfsargv.XXXXXX");
    if (!mkdtemp(fake)) {
        CHECK(0, "cannot create a temporary directory");
        return test_done();
    }
    char *script = xasprintf(fake_script, fake);
    char *zfs = xasprintf("%s/zfs", fake);
    int fd = open(zfs, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    CHECK(fd >= 0 && write(fd, script, strlen(script)) == (ssize_t)strlen(script),
          "the fake zfs is written");
    close(fd);
    free(script);
    free(zfs);
    char *path = xasprintf("%s:%s", fake, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    setenv("PATH", path, 1);
    free(path);
    char *src = xasprintf("%s/src.raw", fake);
    fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0, "a 1 MiB source image");
    close(fd);

    test_pool_open();
    test_dataset_mode();
    test_zvol_mode(src);

    fake_reset();
    unlink(src);
    free(src);
    char *p = xasprintf("%s/zfs", fake);
    unlink(p);
    free(p);
    rmdir(fake);
    return test_done();
}
