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
    CHECK_ARGV(qvm_zfs_argv_send("tank/qvm/images/deb@v1", NULL), "zfs|send|tank/qvm/images/deb@v1",
               "version_send: a full stream, no -p (no properties travel)");
    CHECK_ARGV(qvm_zfs_argv_send("tank/qvm/images/deb@v2", "v1"),
               "zfs|send|-i|@v1|tank/qvm/images/deb@v2", "version_send: -i @FROM for the changes");
    CHECK_ARGV(qvm_zfs_argv_receive("tank/qvm/images/deb:recv@v1", false),
               "zfs|recv|tank/qvm/images/deb:recv@v1",
               "full receive: into the staging dataset, the snapshot named by qvm, no -u (zfs-fuse has none)");
    CHECK_ARGV(qvm_zfs_argv_receive("tank/qvm/images/deb@v2", true),
               "zfs|recv|-F|tank/qvm/images/deb@v2", "incremental receive: -F onto the image");
    CHECK_ARGV(qvm_zfs_argv_rename("tank/qvm/images/deb:recv", "tank/qvm/images/deb"),
               "zfs|rename|tank/qvm/images/deb:recv|tank/qvm/images/deb", "the staging dataset renamed into place");
    CHECK_ARGV(qvm_zfs_argv_mount("tank/qvm/images/deb"), "zfs|mount|tank/qvm/images/deb", "zfs mount");
    CHECK_ARGV(qvm_zfs_argv_unmount("tank/qvm/images/deb:recv"), "zfs|unmount|tank/qvm/images/deb:recv",
               "zfs unmount");
    CHECK_ARGV(qvm_zfs_argv_set_virtual_size("tank/qvm/images/deb@v2", 67108864),
               "zfs|set|qvm:virtual-size=67108864|tank/qvm/images/deb@v2",
               "a received version's size is set on its snapshot");
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

    /* zfs-fuse: zfs get -Hp -r -o name,property,value createtxg,mounted zxp/qvm/images/img
     * (here with v3 made before v2 and a row of another dataset mixed in) */
    const char *txgs = "zxp/qvm/images/img\tcreatetxg\t100\n"
                       "zxp/qvm/images/img\tmounted\tyes\n"
                       "zxp/qvm/images/img@v1\tcreatetxg\t104\n"
                       "zxp/qvm/images/img@v1\tmounted\t-\n"
                       "zxp/qvm/images/img@v3\tcreatetxg\t133\n"
                       "zxp/qvm/images/img2@v9\tcreatetxg\t140\n"
                       "zxp/qvm/images/img@v2\tcreatetxg\t1000\n";
    char **sv = NULL;
    size_t sn = 0;
    CHECK(qvm_zfs_parse_get(txgs, &rows, &err) == 0 &&
          qvm_zfs_snapshots(&rows, "zxp/qvm/images/img", &sv, &sn, &err) == 0 && sn == 3 &&
          !strcmp(sv[0], "v1") && !strcmp(sv[1], "v3") && !strcmp(sv[2], "v2"),
          "snapshots are ordered by createtxg (numerically), other datasets ignored");
    qvm_zfs_strv_free(sv, sn);
    CHECK(qvm_zfs_snapshots(&rows, "zxp/qvm/images/none", &sv, &sn, &err) == 0 && sn == 0 && !sv,
          "no snapshots");
    qvm_zfs_rows_release(&rows);
    CHECK(qvm_zfs_parse_get("zxp/i@v1\tcreatetxg\t12x\n", &rows, &err) == 0 &&
          qvm_zfs_snapshots(&rows, "zxp/i", &sv, &sn, &err) == -EINVAL && sn == 0 && !sv &&
          strstr(err.msg, "createtxg '12x'"), "a createtxg that is no number: %s", err.msg);
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
    "[ -f \"$d/$n.sh\" ] && . \"$d/$n.sh\"\n"
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
        for (int k = 0; k < 4; k++) {
            p = xasprintf("%s/%d.%s", fake, i, (const char *[]){ "out", "err", "rc", "sh" }[k]);
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
    reply(2, NULL, "cannot open 'tank/qvm/vms/web': dataset does not exist\n", 1);
    CHECK(d->vm_destroy(&pool, "web", &err) == 0, "vm_destroy of a missing VM is success");
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm/vms/web\n"
              "zfs|destroy|-r|tank/qvm/vms/web\n",
              "vm_destroy: its clones' origins (test_snapshot_argv), then zfs destroy -r");
    fake_reset();
    reply(2, NULL, "cannot destroy 'tank/qvm/vms/web': dataset is busy\n", 1);
    CHECK(d->vm_destroy(&pool, "web", &err) == 0, "vm_destroy retries a busy dataset");
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm/vms/web\n"
              "zfs|destroy|-r|tank/qvm/vms/web\nzfs|destroy|-r|tank/qvm/vms/web\n", "twice");
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
    reply(1, NULL, missing_err, 1);
    reply(2, "tank/qvm/images/deb@v1\tcreatetxg\t60\n", NULL, 0);
    reply(3, listing, NULL, 0);
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
    reply(1, NULL, missing_err, 1);
    reply(2, "tank/qvm/images/deb@v1\tcreatetxg\t60\n", NULL, 0);
    reply(3, "tank/qvm\torigin\t-\n", NULL, 0);
    reply(4, NULL, "cannot open 'tank/qvm/images/deb@v2': dataset does not exist\n", 1);
    CHECK(d->version_destroy(&pool, "deb", "v2", &err) == 0, "version_destroy of a missing version");
    CHECK_LOG("zfs|get|-Hp|-o|name,property,value|type|tank/qvm/images/deb:recv\n"
              "zfs|get|-Hp|-r|-o|name,property,value|createtxg|tank/qvm/images/deb\n"
              "zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm\n"
              "zfs|destroy|tank/qvm/images/deb@v2\n",
              "version_destroy: no staging dataset; is it the newest?; destroy the snapshot, no -r");
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
    reply(1, NULL, missing_err, 1);
    reply(2, "tank/qvm\torigin\t-\n", NULL, 0);
    CHECK(d->version_destroy(&pool, "deb", "v1", &err) == 0, "zvol version_destroy");
    CHECK_LOG("zfs|destroy|-r|tank/qvm/images/deb/disk:recv\n"
              "zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm\n"
              "zfs|destroy|tank/qvm/images/deb/disk@v1\n",
              "zvol version_destroy: a stale staging zvol, then the zvol's snapshot");
    fake_reset();
    qvm_pool_release(&pool);
}

/* ------------------------------------------------------------- streams */

/* A pool whose mountpoint is a real directory of the test, so that the
 * driver's file work on received datasets can be checked. */
static void open_pool_at(const char *mode, const char *mnt, struct qvm_pool *pool)
{
    fake_reset();
    char *out = xasprintf("tank/qvm\ttype\tfilesystem\ntank/qvm\tmountpoint\t%s\n"
                          "tank/qvm\tmounted\tyes\n", mnt);
    reply(1, out, NULL, 0);
    free(out);
    struct qvm_error err = { 0 };
    CHECK(qvm_pool_open("t", "zfs", NULL, "tank/qvm", mode, pool, &err) == 0,
          "pool_open at %s %s", mnt, err.msg);
    fake_reset();
}

static void put_file(const char *path, const char *text)
{
    qvm_write_file_atomic(path, text, strlen(text), 0644, NULL);
}

/* The content of PATH, or "(none)". Caller frees. */
static char *file_text(const char *path)
{
    char *text = NULL;
    size_t len;
    if (qvm_read_file(path, 1 << 20, &text, &len, NULL) < 0)
        text = xstrdup("(none)");
    return text;
}

#define CHECK_FILE(path, want, ...) do { \
    char *f_ = file_text(path); \
    CHECK_STR(f_, want, __VA_ARGS__); \
    free(f_); \
} while (0)

/* What zfs recv would leave in a received dataset mounted at DIR: the
 * sender's files as of its snapshot. */
static void sender_files(const char *dir)
{
    qvm_mkdir_p(dir, 0755, NULL);
    char *p = xasprintf("%s/disk.raw", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0, "the sender's 1 MiB disk.raw in %s", dir);
    close(fd);
    free(p);
    p = xasprintf("%s/image.json", dir);
    put_file(p, "sender");
    free(p);
}

static void test_streams_dataset(void)
{
    struct qvm_pool pool;
    struct qvm_error err = { 0 };
    const struct qvm_storage_driver *d = &qvm_storage_zfs;
    char *mnt = xasprintf("%s/mnt", fake);
    char *idir = xasprintf("%s/images/deb", mnt);
    char *sdir = xasprintf("%s/images/deb:recv", mnt);
    char *meta = xasprintf("%s/image.json", idir), *smeta = xasprintf("%s/image.json", sdir);
    char *disk = xasprintf("%s/disk.raw", idir), *sdisk = xasprintf("%s/disk.raw", sdir);
    char *stream = xasprintf("%s/stream", fake);
    qvm_mkdir_p(idir, 0755, NULL);
    open_pool_at(NULL, mnt, &pool);
    CHECK_STR(d->stream_format, "zfs-send-1", "the stream format is zfs-send-1");

    /* send: zfs send writes straight into the fd. */
    int fd = open(stream, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    reply(1, "ZFS-STREAM-BYTES", NULL, 0);
    CHECK(d->version_send(&pool, "deb", "v1", NULL, fd, &err) == 0, "version_send full %s", err.msg);
    close(fd);
    CHECK_LOG("zfs|send|tank/qvm/images/deb@v1\n", "version_send: zfs send of the snapshot");
    CHECK_FILE(stream, "ZFS-STREAM-BYTES", "zfs send's stdout is the fd, nothing captured");
    fake_reset();
    qvm_err_clear(&err);
    fd = open(stream, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    reply(1, NULL, "cannot open 'tank/qvm/images/deb@v1': dataset does not exist\n", 1);
    CHECK(d->version_send(&pool, "deb", "v2", "v1", fd, &err) == -ENOENT &&
          strstr(err.msg, "cannot send version v2 of image 'deb': zfs send -i @v1 "
                 "tank/qvm/images/deb@v2: cannot open 'tank/qvm/images/deb@v1': dataset does not "
                 "exist"), "version_send names zfs's reason: %s", err.msg);
    close(fd);
    CHECK_LOG("zfs|send|-i|@v1|tank/qvm/images/deb@v2\n", "version_send -i @FROM");
    fake_reset();
    qvm_err_clear(&err);

    /* Full stream, new image: staging dataset, checked, sized, tidied,
     * unmounted (busy once), the empty dataset destroyed, renamed, mounted. */
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    sender_files(sdir);
    char *stage_rows = xasprintf("tank/qvm/images/deb:recv\ttype\tfilesystem\n"
                                 "tank/qvm/images/deb:recv\tmounted\tyes\n"
                                 "tank/qvm/images/deb:recv\tmountpoint\t%s\n"
                                 "tank/qvm/images/deb:recv@v1\ttype\tsnapshot\n"
                                 "tank/qvm/images/deb:recv@v1\tmounted\t-\n"
                                 "tank/qvm/images/deb:recv@v1\tmountpoint\t-\n", sdir);
    const char *new_image = "tank/qvm/images/deb\tcreatetxg\t50\ntank/qvm/images/deb\tmounted\tyes\n";
    reply(1, NULL, missing_err, 1);
    reply(2, new_image, NULL, 0);
    reply(4, stage_rows, NULL, 0);
    reply(6, NULL, "cannot unmount 'tank/qvm/images/deb:recv': dataset is busy\n", 1);
    CHECK(d->version_receive(&pool, "deb", "v1", NULL, in, &err) == 0, "full receive %s", err.msg);
    CHECK_LOG("zfs|destroy|-r|tank/qvm/images/deb:recv\n"
              "zfs|get|-Hp|-r|-o|name,property,value|createtxg,mounted|tank/qvm/images/deb\n"
              "zfs|recv|tank/qvm/images/deb:recv@v1\n"
              "zfs|get|-Hp|-r|-o|name,property,value|type,mounted,mountpoint|tank/qvm/images/deb:recv\n"
              "zfs|set|qvm:virtual-size=1048576|tank/qvm/images/deb:recv@v1\n"
              "zfs|unmount|tank/qvm/images/deb:recv\nzfs|unmount|tank/qvm/images/deb:recv\n"
              "zfs|destroy|tank/qvm/images/deb\n"
              "zfs|rename|tank/qvm/images/deb:recv|tank/qvm/images/deb\n"
              "zfs|mount|tank/qvm/images/deb\n",
              "full receive: the exact sequence (stale staging, versions?, recv, check, size, "
              "unmount, destroy the empty dataset, rename, mount)");
    CHECK(!qvm_path_exists(smeta) && qvm_path_exists(sdisk),
          "the sender's image.json was removed before the rename; disk.raw stays, the newest "
          "version's");
    qvm_rm_rf(sdir, NULL);
    fake_reset();
    qvm_err_clear(&err);

    /* Full stream, an image whose versions were all removed: its image.json
     * (the history) is carried into the received dataset. */
    put_file(meta, "history");
    sender_files(sdir);
    reply(1, NULL, missing_err, 1);
    reply(2, new_image, NULL, 0);
    reply(4, stage_rows, NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v1", NULL, in, &err) == 0, "full receive onto a "
          "version-less image %s", err.msg);
    CHECK_FILE(smeta, "history", "the image's own image.json is carried over, not the sender's");
    qvm_rm_rf(sdir, NULL);
    unlink(meta);
    fake_reset();
    qvm_err_clear(&err);

    /* Full stream onto versions: refused before anything is received. */
    reply(1, NULL, missing_err, 1);
    reply(2, "tank/qvm/images/deb\tcreatetxg\t50\ntank/qvm/images/deb\tmounted\tyes\n"
          "tank/qvm/images/deb@v1\tcreatetxg\t60\ntank/qvm/images/deb@v1\tmounted\t-\n"
          "tank/qvm/images/deb@v2\tcreatetxg\t70\ntank/qvm/images/deb@v2\tmounted\t-\n", NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v3", NULL, in, &err) == -EEXIST &&
          strstr(err.msg, "cannot receive version v3 of image 'deb': image 'deb' has versions in "
                 "this pool already (v1, v2): a full stream cannot be received onto them; send "
                 "deb@v3 incrementally (qvm image send --from v2)"),
          "a full stream onto versions is refused: %s", err.msg);
    CHECK_LOG("zfs|destroy|-r|tank/qvm/images/deb:recv\n"
              "zfs|get|-Hp|-r|-o|name,property,value|createtxg,mounted|tank/qvm/images/deb\n",
              "... with no zfs recv");
    fake_reset();
    qvm_err_clear(&err);
    reply(1, NULL, missing_err, 1);
    reply(2, "tank/qvm/images/deb\tcreatetxg\t50\ntank/qvm/images/deb\tmounted\tno\n", NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v1", NULL, in, &err) == -EIO &&
          strstr(err.msg, "the image's dataset tank/qvm/images/deb is not mounted"),
          "an unmounted image dataset is refused: %s", err.msg);
    fake_reset();
    qvm_err_clear(&err);

    /* zfs recv fails (a stream cut short): the staging dataset goes. */
    reply(1, NULL, missing_err, 1);
    reply(2, new_image, NULL, 0);
    reply(3, NULL, "cannot receive new filesystem stream: invalid backup stream\n", 1);
    CHECK(d->version_receive(&pool, "deb", "v1", NULL, in, &err) == -EIO &&
          strstr(err.msg, "cannot receive version v1 of image 'deb': zfs recv "
                 "tank/qvm/images/deb:recv@v1: cannot receive new filesystem stream: invalid "
                 "backup stream"), "a failed zfs recv: %s", err.msg);
    CHECK_LOG("zfs|destroy|-r|tank/qvm/images/deb:recv\n"
              "zfs|get|-Hp|-r|-o|name,property,value|createtxg,mounted|tank/qvm/images/deb\n"
              "zfs|recv|tank/qvm/images/deb:recv@v1\n"
              "zfs|destroy|-r|tank/qvm/images/deb:recv\n",
              "... and the staging dataset is destroyed");
    fake_reset();
    qvm_err_clear(&err);

    /* Received, but no disk.raw in it: not a qvm version. */
    qvm_rm_rf(sdir, NULL);
    qvm_mkdir_p(sdir, 0755, NULL);
    reply(1, NULL, missing_err, 1);
    reply(2, new_image, NULL, 0);
    reply(4, stage_rows, NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v1", NULL, in, &err) == -EINVAL &&
          strstr(err.msg, "the stream holds no disk.raw: it is not a version of a qvm image"),
          "a stream without disk.raw is refused: %s", err.msg);
    CHECK_LOG("zfs|destroy|-r|tank/qvm/images/deb:recv\n"
              "zfs|get|-Hp|-r|-o|name,property,value|createtxg,mounted|tank/qvm/images/deb\n"
              "zfs|recv|tank/qvm/images/deb:recv@v1\n"
              "zfs|get|-Hp|-r|-o|name,property,value|type,mounted,mountpoint|tank/qvm/images/deb:recv\n"
              "zfs|destroy|-r|tank/qvm/images/deb:recv\n", "... and the staging dataset goes");
    fake_reset();
    qvm_err_clear(&err);
    /* A zvol's stream into a dataset-mode pool; a stream that set a mountpoint. */
    reply(1, NULL, missing_err, 1);
    reply(2, new_image, NULL, 0);
    reply(4, "tank/qvm/images/deb:recv\ttype\tvolume\ntank/qvm/images/deb:recv\tmounted\t-\n"
          "tank/qvm/images/deb:recv\tmountpoint\t-\ntank/qvm/images/deb:recv@v1\ttype\tsnapshot\n",
          NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v1", NULL, in, &err) == -EINVAL &&
          strstr(err.msg, "the stream holds a zfs volume, but pool 't' (mode dataset) keeps images "
                 "as filesystems: receive it into a zfs pool in mode zvol"),
          "a zvol stream is refused by a dataset-mode pool: %s", err.msg);
    fake_reset();
    qvm_err_clear(&err);
    reply(1, NULL, missing_err, 1);
    reply(2, new_image, NULL, 0);
    reply(4, "tank/qvm/images/deb:recv\ttype\tfilesystem\ntank/qvm/images/deb:recv\tmounted\tyes\n"
          "tank/qvm/images/deb:recv\tmountpoint\t/etc\ntank/qvm/images/deb:recv@v1\ttype\tsnapshot\n",
          NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v1", NULL, in, &err) == -EINVAL &&
          strstr(err.msg, "has mountpoint /etc, not "), "a stream that set a mountpoint: %s", err.msg);
    CHECK_LOG("zfs|destroy|-r|tank/qvm/images/deb:recv\n"
              "zfs|get|-Hp|-r|-o|name,property,value|createtxg,mounted|tank/qvm/images/deb\n"
              "zfs|recv|tank/qvm/images/deb:recv@v1\n"
              "zfs|get|-Hp|-r|-o|name,property,value|type,mounted,mountpoint|tank/qvm/images/deb:recv\n"
              "zfs|destroy|-r|tank/qvm/images/deb:recv\n", "... nothing written there; it goes");
    fake_reset();
    qvm_err_clear(&err);

    /* Incremental: onto the newest version, zfs recv -F; the receiver's
     * image.json comes back, the live disk.raw goes, the size is set. */
    const char *v1_only = "tank/qvm/images/deb\tcreatetxg\t50\ntank/qvm/images/deb\tmounted\tyes\n"
                          "tank/qvm/images/deb@v1\tcreatetxg\t60\ntank/qvm/images/deb@v1\tmounted\t-\n";
    put_file(meta, "receiver");
    char *hook = xasprintf("printf sender >'%s'; truncate -s 2097152 '%s'\n", meta, disk);
    reply(1, v1_only, NULL, 0);
    put("2.sh", hook);
    CHECK(d->version_receive(&pool, "deb", "v2", "v1", in, &err) == 0, "incremental receive %s",
          err.msg);
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|createtxg,mounted|tank/qvm/images/deb\n"
              "zfs|recv|-F|tank/qvm/images/deb@v2\n"
              "zfs|unmount|tank/qvm/images/deb\nzfs|mount|tank/qvm/images/deb\n"
              "zfs|set|qvm:virtual-size=2097152|tank/qvm/images/deb@v2\n",
              "incremental receive: versions, recv -F onto the image, remount (FUSE's cache), size");
    CHECK_FILE(meta, "receiver", "the receiver's image.json is put back over the sender's");
    CHECK(qvm_path_exists(disk), "the live disk.raw, v2's, stays");
    fake_reset();
    qvm_err_clear(&err);
    /* Not mounted after zfs recv (OpenZFS with -u would do that): mounted. */
    reply(1, v1_only, NULL, 0);
    put("2.sh", hook);
    reply(3, NULL, "cannot unmount 'tank/qvm/images/deb': not currently mounted\n", 1);
    CHECK(d->version_receive(&pool, "deb", "v2", "v1", in, &err) == 0, "incremental, remount %s",
          err.msg);
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|createtxg,mounted|tank/qvm/images/deb\n"
              "zfs|recv|-F|tank/qvm/images/deb@v2\n"
              "zfs|unmount|tank/qvm/images/deb\nzfs|mount|tank/qvm/images/deb\n"
              "zfs|set|qvm:virtual-size=2097152|tank/qvm/images/deb@v2\n",
              "incremental receive: 'not currently mounted' is fine, it is mounted");
    fake_reset();
    qvm_err_clear(&err);
    /* zfs recv fails: image.json is as before. */
    reply(1, v1_only, NULL, 0);
    put("2.sh", hook);
    reply(2, NULL, "cannot receive incremental stream: invalid backup stream\n", 1);
    CHECK(d->version_receive(&pool, "deb", "v2", "v1", in, &err) == -EIO &&
          strstr(err.msg, "zfs recv -F tank/qvm/images/deb@v2: cannot receive incremental stream"),
          "a failed incremental zfs recv: %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|createtxg,mounted|tank/qvm/images/deb\n"
              "zfs|recv|-F|tank/qvm/images/deb@v2\n", "... nothing else runs");
    CHECK_FILE(meta, "receiver", "... and image.json is the receiver's");
    unlink(disk);
    fake_reset();
    qvm_err_clear(&err);
    /* Received without disk.raw: the new snapshot goes again. */
    reply(1, v1_only, NULL, 0);
    char *hook2 = xasprintf("printf sender >'%s'\n", meta);
    put("2.sh", hook2);
    free(hook2);
    CHECK(d->version_receive(&pool, "deb", "v2", "v1", in, &err) == -EINVAL &&
          strstr(err.msg, "holds no disk.raw"), "an incremental stream without disk.raw: %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|createtxg,mounted|tank/qvm/images/deb\n"
              "zfs|recv|-F|tank/qvm/images/deb@v2\n"
              "zfs|unmount|tank/qvm/images/deb\nzfs|mount|tank/qvm/images/deb\n"
              "zfs|destroy|tank/qvm/images/deb@v2\n", "... its snapshot is destroyed");
    CHECK_FILE(meta, "receiver", "... and image.json is the receiver's");
    CHECK(!qvm_path_exists(disk), "... and the live disk.raw goes with the version");
    fake_reset();
    qvm_err_clear(&err);

    /* Incremental refusals, before zfs recv. */
    reply(1, "tank/qvm/images/deb\tcreatetxg\t50\ntank/qvm/images/deb\tmounted\tyes\n"
          "tank/qvm/images/deb@v3\tcreatetxg\t90\ntank/qvm/images/deb@v1\tcreatetxg\t60\n"
          "tank/qvm/images/deb@v2\tcreatetxg\t70\n", NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v4", "v1", in, &err) == -EEXIST &&
          strstr(err.msg, "the stream holds the changes since v1, but image 'deb' has newer "
                 "versions here (v2, v3): zfs applies a stream only onto the newest version, and "
                 "forcing it would destroy them; send deb@v4 as the changes since v3"),
          "a base that is not the newest version is refused, naming the newer ones: %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|createtxg,mounted|tank/qvm/images/deb\n",
              "... before zfs recv -F could destroy them");
    fake_reset();
    qvm_err_clear(&err);
    reply(1, v1_only, NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v2", "v7", in, &err) == -ENOENT &&
          strstr(err.msg, "image 'deb' has no version v7 to apply the stream to"),
          "a missing base: %s", err.msg);
    fake_reset();
    qvm_err_clear(&err);
    reply(1, v1_only, NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v1", "v1", in, &err) == -EEXIST &&
          strstr(err.msg, "version v1 of image 'deb' already exists"), "an existing version: %s",
          err.msg);
    fake_reset();
    qvm_err_clear(&err);
    reply(1, NULL, "cannot open 'tank/qvm/images/deb': dataset does not exist\n", 1);
    CHECK(d->version_receive(&pool, "deb", "v2", "v1", in, &err) == -ENOENT &&
          strstr(err.msg, "has no version v1"), "no image dataset: %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|createtxg,mounted|tank/qvm/images/deb\n",
              "... one zfs get");
    fake_reset();
    qvm_err_clear(&err);

    /* version_destroy after a receive that was killed. */
    reply(1, "tank/qvm/images/deb:recv\ttype\tfilesystem\n", NULL, 0);
    reply(2, "tank/qvm/images/deb\ttype\tfilesystem\n", NULL, 0);
    reply(4, "tank/qvm/images/deb\tcreatetxg\t50\n", NULL, 0);
    reply(5, "tank/qvm\torigin\t-\n", NULL, 0);
    CHECK(d->version_destroy(&pool, "deb", "v1", &err) == 0, "version_destroy, stale staging %s",
          err.msg);
    CHECK_LOG("zfs|get|-Hp|-o|name,property,value|type|tank/qvm/images/deb:recv\n"
              "zfs|get|-Hp|-o|name,property,value|type|tank/qvm/images/deb\n"
              "zfs|destroy|-r|tank/qvm/images/deb:recv\n"
              "zfs|get|-Hp|-r|-o|name,property,value|createtxg|tank/qvm/images/deb\n"
              "zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm\n"
              "zfs|destroy|tank/qvm/images/deb@v1\n",
              "version_destroy: a staging dataset beside the image is destroyed");
    fake_reset();
    qvm_err_clear(&err);
    reply(1, "tank/qvm/images/deb:recv\ttype\tfilesystem\n", NULL, 0);
    reply(2, NULL, missing_err, 1);
    reply(5, "tank/qvm/images/deb\tcreatetxg\t50\ntank/qvm/images/deb@v1\tcreatetxg\t60\n",
          NULL, 0);
    reply(6, "tank/qvm\torigin\t-\n", NULL, 0);
    CHECK(d->version_destroy(&pool, "deb", "v1", &err) == 0, "version_destroy, killed mid-swap %s",
          err.msg);
    CHECK_LOG("zfs|get|-Hp|-o|name,property,value|type|tank/qvm/images/deb:recv\n"
              "zfs|get|-Hp|-o|name,property,value|type|tank/qvm/images/deb\n"
              "zfs|rename|tank/qvm/images/deb:recv|tank/qvm/images/deb\n"
              "zfs|mount|tank/qvm/images/deb\n"
              "zfs|get|-Hp|-r|-o|name,property,value|createtxg|tank/qvm/images/deb\n"
              "zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm\n"
              "zfs|destroy|tank/qvm/images/deb@v1\n",
              "version_destroy: killed between destroying the image's dataset and the rename, "
              "the staging dataset is put in its place, then the version goes");
    fake_reset();
    qvm_err_clear(&err);
    /* The live disk.raw holds the newest version: it goes with that one,
     * never with an older one or one that is not there (the undo of a
     * receive that was refused). */
    const char *v12 = "tank/qvm/images/deb\tcreatetxg\t50\ntank/qvm/images/deb@v2\tcreatetxg\t70\n"
                      "tank/qvm/images/deb@v1\tcreatetxg\t60\n";
    static const struct { const char *version; bool goes; } cases[] = {
        { "v1", false }, { "v2", true }, { "v3", false },
    };
    for (size_t i = 0; i < 3; i++) {
        put_file(disk, "newest");
        reply(1, NULL, missing_err, 1);
        reply(2, v12, NULL, 0);
        reply(3, "tank/qvm\torigin\t-\n", NULL, 0);
        CHECK(d->version_destroy(&pool, "deb", cases[i].version, &err) == 0 &&
              qvm_path_exists(disk) == !cases[i].goes,
              "version_destroy %s: the live disk.raw %s", cases[i].version,
              cases[i].goes ? "goes" : "stays");
        fake_reset();
        qvm_err_clear(&err);
    }

    /* Commit: the VM's disk is written into the live disk.raw where it
     * differs, then snapshotted. */
    char *vmdisk = xasprintf("%s/vms/web/disk0/disk.raw", mnt);
    char *vmdir = xasprintf("%s/vms/web/disk0", mnt);
    qvm_mkdir_p(vmdir, 0755, NULL);
    {
        size_t rec = 128 * 1024, n = 5 * rec + 1000;
        char *buf = xmalloc(n);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(i * 7 + 1);
        qvm_write_file_atomic(disk, buf, 3 * rec, 0644, NULL);   /* the newest version: 3 records */
        memset(buf + rec, 0, rec);                              /* record 1 zeroed */
        buf[2 * rec + 5] ^= 1;                                  /* record 2 changed */
        qvm_write_file_atomic(vmdisk, buf, n, 0644, NULL);       /* grown to 5 records + 1000 */
        struct stat before, after;
        stat(disk, &before);
        reply(1, NULL, missing_err, 1);
        CHECK(d->version_from_disk(&pool, "deb", "v3", "web", "disk0", NULL, &err) == 0,
              "version_from_disk %s", err.msg);
        CHECK(stat(disk, &after) == 0 && after.st_ino == before.st_ino,
              "the same file was written into (not a new copy renamed over it)");
        char *got = NULL;
        size_t len = 0;
        CHECK(qvm_read_file(disk, 1 << 20, &got, &len, NULL) == 0 && len == n &&
              memcmp(got, buf, n) == 0, "the live disk.raw now holds the VM's disk, byte for byte");
        free(got);
        free(buf);
        char *want = xasprintf("zfs|get|-Hp|-o|name,property,value|type|tank/qvm/images/deb@v3\n"
                               "zfs|snapshot|-o|qvm:virtual-size=%zu|tank/qvm/images/deb@v3\n", n);
        CHECK_LOG(want, "commit: the version is the snapshot of the changed live disk.raw");
        free(want);
        fake_reset();
        qvm_err_clear(&err);
        /* The snapshot fails: the live disk.raw holds no version and goes. */
        reply(1, NULL, missing_err, 1);
        reply(2, NULL, "cannot create snapshot 'tank/qvm/images/deb@v3': out of space\n", 1);
        CHECK(d->version_from_disk(&pool, "deb", "v3", "web", "disk0", NULL, &err) == -EIO &&
              !qvm_path_exists(disk), "a failed commit unlinks the live disk.raw: %s", err.msg);
        fake_reset();
        qvm_err_clear(&err);
    }
    free(vmdisk);
    free(vmdir);

    reply(1, "tank/qvm\torigin\t-\n", NULL, 0);
    CHECK(d->image_destroy(&pool, "deb", &err) == 0, "image_destroy %s", err.msg);
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm\n"
              "zfs|destroy|-r|tank/qvm/images/deb\n"
              "zfs|destroy|-r|tank/qvm/images/deb:recv\n",
              "image_destroy: the image, then a staging dataset beside it");
    fake_reset();
    qvm_err_clear(&err);

    close(in);
    free(hook);
    free(stage_rows);
    qvm_rm_rf(mnt, NULL);
    unlink(stream);
    free(stream);
    free(mnt);
    free(idir);
    free(sdir);
    free(meta);
    free(smeta);
    free(disk);
    free(sdisk);
    qvm_pool_release(&pool);
}

static void test_streams_zvol(void)
{
    struct qvm_pool pool;
    struct qvm_error err = { 0 };
    const struct qvm_storage_driver *d = &qvm_storage_zfs;
    open_pool("zvol", &pool);
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK(d->version_send(&pool, "deb", "v2", "v1", fd, &err) == 0, "zvol version_send %s", err.msg);
    CHECK_LOG("zfs|send|-i|@v1|tank/qvm/images/deb/disk@v2\n", "zvol send: the zvol's snapshot");
    fake_reset();
    qvm_err_clear(&err);

    /* Full stream, new image: no zvol yet; received beside it, renamed. */
    reply(1, NULL, missing_err, 1);
    reply(2, NULL, "cannot open 'tank/qvm/images/deb/disk': dataset does not exist\n", 1);
    reply(4, "tank/qvm/images/deb/disk:recv\ttype\tvolume\n"
          "tank/qvm/images/deb/disk:recv\tvolsize\t2147483648\n"
          "tank/qvm/images/deb/disk:recv@v1\ttype\tsnapshot\n"
          "tank/qvm/images/deb/disk:recv@v1\tvolsize\t2147483648\n", NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v1", NULL, fd, &err) == 0, "zvol full receive %s",
          err.msg);
    CHECK_LOG("zfs|destroy|-r|tank/qvm/images/deb/disk:recv\n"
              "zfs|get|-Hp|-r|-o|name,property,value|createtxg|tank/qvm/images/deb/disk\n"
              "zfs|recv|tank/qvm/images/deb/disk:recv@v1\n"
              "zfs|get|-Hp|-r|-o|name,property,value|type,volsize|tank/qvm/images/deb/disk:recv\n"
              "zfs|rename|tank/qvm/images/deb/disk:recv|tank/qvm/images/deb/disk\n",
              "zvol full receive: staging zvol, checked, renamed (nothing to mount, no size to set)");
    fake_reset();
    qvm_err_clear(&err);
    /* A zvol without versions is replaced. */
    reply(1, NULL, missing_err, 1);
    reply(2, "tank/qvm/images/deb/disk\tcreatetxg\t40\n", NULL, 0);
    reply(4, "tank/qvm/images/deb/disk:recv\ttype\tvolume\n"
          "tank/qvm/images/deb/disk:recv@v1\ttype\tsnapshot\n"
          "tank/qvm/images/deb/disk:recv@v1\tvolsize\t2147483648\n", NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v1", NULL, fd, &err) == 0, "zvol full receive over a "
          "version-less zvol %s", err.msg);
    CHECK_LOG("zfs|destroy|-r|tank/qvm/images/deb/disk:recv\n"
              "zfs|get|-Hp|-r|-o|name,property,value|createtxg|tank/qvm/images/deb/disk\n"
              "zfs|recv|tank/qvm/images/deb/disk:recv@v1\n"
              "zfs|get|-Hp|-r|-o|name,property,value|type,volsize|tank/qvm/images/deb/disk:recv\n"
              "zfs|destroy|tank/qvm/images/deb/disk\n"
              "zfs|rename|tank/qvm/images/deb/disk:recv|tank/qvm/images/deb/disk\n",
              "... the old zvol destroyed first (no -r)");
    fake_reset();
    qvm_err_clear(&err);
    /* A filesystem's stream into a zvol-mode pool. */
    reply(1, NULL, missing_err, 1);
    reply(2, NULL, missing_err, 1);
    reply(4, "tank/qvm/images/deb/disk:recv\ttype\tfilesystem\n"
          "tank/qvm/images/deb/disk:recv@v1\ttype\tsnapshot\n", NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v1", NULL, fd, &err) == -EINVAL &&
          strstr(err.msg, "the stream holds a zfs filesystem, but pool 't' (mode zvol) keeps images "
                 "as volumes: receive it into a zfs pool in mode dataset"),
          "a dataset-mode stream is refused by a zvol pool: %s", err.msg);
    CHECK_LOG("zfs|destroy|-r|tank/qvm/images/deb/disk:recv\n"
              "zfs|get|-Hp|-r|-o|name,property,value|createtxg|tank/qvm/images/deb/disk\n"
              "zfs|recv|tank/qvm/images/deb/disk:recv@v1\n"
              "zfs|get|-Hp|-r|-o|name,property,value|type,volsize|tank/qvm/images/deb/disk:recv\n"
              "zfs|destroy|-r|tank/qvm/images/deb/disk:recv\n", "... and the staging dataset goes");
    fake_reset();
    qvm_err_clear(&err);
    reply(2, "tank/qvm/images/deb/disk\tcreatetxg\t40\ntank/qvm/images/deb/disk@v1\tcreatetxg\t41\n",
          NULL, 0);
    reply(1, NULL, missing_err, 1);
    CHECK(d->version_receive(&pool, "deb", "v2", NULL, fd, &err) == -EEXIST &&
          strstr(err.msg, "has versions in this pool already (v1)"), "zvol: full onto versions: %s",
          err.msg);
    fake_reset();
    qvm_err_clear(&err);

    /* Incremental. */
    reply(1, "tank/qvm/images/deb/disk\tcreatetxg\t40\ntank/qvm/images/deb/disk@v1\tcreatetxg\t41\n",
          NULL, 0);
    CHECK(d->version_receive(&pool, "deb", "v2", "v1", fd, &err) == 0, "zvol incremental %s",
          err.msg);
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|createtxg|tank/qvm/images/deb/disk\n"
              "zfs|recv|-F|tank/qvm/images/deb/disk@v2\n",
              "zvol incremental receive: versions, then recv -F onto the zvol");
    fake_reset();
    qvm_err_clear(&err);
    reply(1, "tank/qvm\torigin\t-\n", NULL, 0);
    CHECK(d->image_destroy(&pool, "deb", &err) == 0, "zvol image_destroy");
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm\n"
              "zfs|destroy|-r|tank/qvm/images/deb\n",
              "zvol image_destroy: the staging zvol is inside the image");
    fake_reset();
    qvm_err_clear(&err);
    close(fd);
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
    test_streams_dataset();
    test_streams_zvol();

    fake_reset();
    unlink(src);
    free(src);
    char *p = xasprintf("%s/zfs", fake);
    unlink(p);
    free(p);
    rmdir(fake);
    return test_done();
}
