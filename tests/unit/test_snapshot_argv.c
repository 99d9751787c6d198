/* test_snapshot_argv.c - the zfs driver's snapshots and clones of VM disks
 * without ZFS (seed 004): the exact argv of promote and rollback, the
 * family parser against pasted zfs output, and each operation against a
 * fake `zfs` first in PATH that logs its argv and answers from a script, so
 * that the exact sequence of commands is checked - in zvol mode, which
 * needs a kernel ZFS to run for real, and in dataset mode where the
 * unmount/rename/mount dance and a disk file are involved. Also the
 * clone's qvm file: the source's with its identity replaced in place. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "core/clone.h"
#include "storage/storage.h"
#include "storage/zfs.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

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

/* ----------------------------------------------------------- fake zfs */

static char fake[64];

static const char fake_script[] =
    "#!/bin/sh\n"
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
    for (int i = 1; i <= 32; i++)
        for (int k = 0; k < 3; k++) {
            p = xasprintf("%s/%d.%s", fake, i, (const char *[]){ "out", "err", "rc" }[k]);
            unlink(p);
            free(p);
        }
}

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

static void open_pool_at(const char *mode, const char *mnt, struct qvm_pool *pool)
{
    fake_reset();
    char *out = xasprintf("tank/qvm\ttype\tfilesystem\ntank/qvm\tmountpoint\t%s\n"
                          "tank/qvm\tmounted\tyes\n", mnt);
    reply(1, out, NULL, 0);
    free(out);
    struct qvm_error err = { 0 };
    CHECK(qvm_pool_open("t", "zfs", NULL, "tank/qvm", mode, pool, &err) == 0,
          "pool_open (mode %s) %s", mode, err.msg);
    fake_reset();
}

/* ------------------------------------------------------------ samples */

#define V "tank/qvm/vms/web"
#define D V "/disk0"
#define GET_FAMILY "zfs|get|-Hp|-r|-o|name,property,value|type,origin,createtxg,creation,volsize," \
                   "qvm:virtual-size|" V "\n"
#define GET_ORIGINS "zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm\n"
#define GET_MOUNTED "zfs|get|-Hp|-r|-o|name,property,value|origin,mounted|tank/qvm\n"

/* One snapshot's rows: createtxg, creation and size. */
#define SNAP(ds, name, txg, size) \
    ds "@" name "\ttype\tsnapshot\n" ds "@" name "\tcreatetxg\t" txg "\n" \
    ds "@" name "\tcreation\t17637760" txg "\n" ds "@" name "\tqvm:virtual-size\t" size "\n"
#define MEMBER(ds, type, origin, volsize) \
    ds "\ttype\t" type "\n" ds "\torigin\t" origin "\n" ds "\tvolsize\t" volsize "\n"
#define BUNDLE MEMBER(V, "filesystem", "-", "-")

static void test_argv(void)
{
    CHECK_ARGV(qvm_zfs_argv_promote(D), "zfs|promote|" D, "zfs promote DATASET");
    CHECK_ARGV(qvm_zfs_argv_rollback(D ":old@s3"), "zfs|rollback|" D ":old@s3",
               "zfs rollback SNAPSHOT, never -r: only the newest snapshot is rolled back to");
    CHECK_STR(QVM_ZFS_FAMILY_PROPS, "type,origin,createtxg,creation,volsize,qvm:virtual-size",
              "the family's properties");
}

static void test_family(void)
{
    CHECK(qvm_zfs_family_member(D, D) && qvm_zfs_family_member(D ":h1", D) &&
          qvm_zfs_family_member(D ":revert", D), "the disk, its history and staging are family");
    CHECK(!qvm_zfs_family_member(D "1", D) && !qvm_zfs_family_member(D ":", D) &&
          !qvm_zfs_family_member(D ":h1/x", D) && !qvm_zfs_family_member(D "@s1", D) &&
          !qvm_zfs_family_member(V, D), "another disk, a child, a snapshot, the bundle are not");

    struct qvm_zfs_rows rows, origins;
    struct qvm_error err = { 0 };
    CHECK(qvm_zfs_parse_get(BUNDLE
                            MEMBER(D, "volume", "tank/qvm/images/deb/disk@v1", "2147483648")
                            SNAP(D, "s2", "30", "2147483648")
                            SNAP(D, "s1", "20", "1073741824")
                            SNAP(D, "clone:b", "35", "2147483648")
                            MEMBER(D ":h1", "volume", D "@s1", "1073741824")
                            SNAP(D ":h1", "s3", "40", "1073741824")
                            MEMBER(V "/data", "volume", "-", "1048576")
                            SNAP(V "/data", "s9", "50", "-"), &rows, &err) == 0,
          "the family sample parses %s", err.msg);
    CHECK(qvm_zfs_parse_get("tank/qvm\torigin\t-\n"
                            "tank/qvm/vms/b/disk0\torigin\t" D "@clone:b\n"
                            D ":h1\torigin\t" D "@s1\n"
                            "tank/qvm/vms/c/disk0\torigin\t" D "@s2\n"
                            D "\torigin\ttank/qvm/images/deb/disk@v1\n", &origins, &err) == 0,
          "the origins sample parses");
    struct qvm_zfs_family f;
    CHECK(qvm_zfs_family_read(&rows, &origins, D, &f, &err) == 0, "family_read %s", err.msg);
    CHECK(f.nmembers == 2 && !strcmp(f.members[0], D) && !strcmp(f.members[1], D ":h1") &&
          !strcmp(f.origins[0], "tank/qvm/images/deb/disk@v1") && !strcmp(f.origins[1], D "@s1") &&
          f.volsizes[0] == 2147483648u, "members: the disk and its history, origins, volsize");
    CHECK(f.nsnaps == 4 && !strcmp(f.snaps[0].name, "s1") && !strcmp(f.snaps[1].name, "s2") &&
          !strcmp(f.snaps[2].name, "clone:b") && !strcmp(f.snaps[3].name, "s3") &&
          !strcmp(f.snaps[3].dataset, D ":h1"), "snapshots of every member, by createtxg; none of "
          "another disk");
    CHECK(f.snaps[0].size == 1073741824u && f.snaps[0].creation == 1763776020LL &&
          f.snaps[0].txg == 20, "size, creation and txg");
    CHECK(f.snaps[0].nclones == 1 && !strcmp(f.snaps[0].clones[0], D ":h1") &&
          f.snaps[1].nclones == 1 && !strcmp(f.snaps[1].clones[0], "tank/qvm/vms/c/disk0") &&
          f.snaps[2].nclones == 1 && !strcmp(f.snaps[2].clones[0], "tank/qvm/vms/b/disk0") &&
          f.snaps[3].nclones == 0, "each snapshot's clones, inside the family or not");
    const struct qvm_zfs_snap *s = qvm_zfs_family_find(&f, "s3");
    CHECK(s && !strcmp(s->dataset, D ":h1") && !qvm_zfs_family_find(&f, "s9") &&
          qvm_zfs_family_index(&f, D ":h1") == 1 && qvm_zfs_family_index(&f, D ":old") == -1,
          "find and index");
    qvm_zfs_family_release(&f);
    qvm_zfs_rows_release(&rows);
    qvm_zfs_rows_release(&origins);

    CHECK(qvm_zfs_parse_get(D "@s1\tcreatetxg\tlots\n", &rows, &err) == 0, "a bad txg parses");
    CHECK(qvm_zfs_family_read(&rows, NULL, D, &f, &err) == -EINVAL &&
          strstr(err.msg, "createtxg 'lots'"), "... but is refused by family_read: %s", err.msg);
    qvm_zfs_rows_release(&rows);
}

/* ----------------------------------------------------------- zvol mode */

static void test_zvol(void)
{
    struct qvm_pool pool;
    struct qvm_error err = { 0 };
    const struct qvm_storage_driver *d = &qvm_storage_zfs;
    open_pool_at("zvol", "/tank/qvm", &pool);
    const char *disk_only = BUNDLE MEMBER(D, "volume", "tank/qvm/images/deb/disk@v1", "2147483648");

    reply(1, disk_only, NULL, 0);
    CHECK(d->snapshot_create(&pool, "web", "disk0", "s1", &err) == 0, "zvol snapshot_create %s",
          err.msg);
    CHECK_LOG(GET_FAMILY "zfs|snapshot|-o|qvm:virtual-size=2147483648|" D "@s1\n",
              "snapshot_create: the family, then zfs snapshot recording the zvol's size");
    fake_reset();
    char *with_s1 = xasprintf("%s" SNAP(D, "s1", "20", "2147483648"), disk_only);
    reply(1, with_s1, NULL, 0);
    CHECK(d->snapshot_create(&pool, "web", "disk0", "s1", &err) == -EEXIST &&
          strstr(err.msg, "VM 'web' already has a snapshot 's1'"), "a taken name: %s", err.msg);
    CHECK_LOG(GET_FAMILY, "... refused before any change");
    fake_reset();

    const char *fam = BUNDLE MEMBER(D, "volume", "tank/qvm/images/deb/disk@v1", "2147483648")
                      SNAP(D, "s1", "20", "1073741824") SNAP(D, "s2", "30", "2147483648")
                      SNAP(D, "clone:b", "35", "2147483648")
                      MEMBER(D ":h1", "volume", D "@s1", "1073741824")
                      SNAP(D ":h1", "s3", "40", "1073741824");
    struct qvm_snapshot_info *v = NULL;
    size_t n = 0;
    reply(1, fam, NULL, 0);
    CHECK(d->snapshot_list(&pool, "web", "disk0", &v, &n, &err) == 0 && n == 3 &&
          !strcmp(v[0].name, "s1") && !strcmp(v[1].name, "s2") && !strcmp(v[2].name, "s3") &&
          v[0].size == 1073741824u && v[2].created == 1763776040LL,
          "snapshot_list: every member's, oldest first, qvm's own left out");
    qvm_snapshot_info_free(v, n);
    fake_reset();

    struct qvm_disk_info info;
    reply(1, fam, NULL, 0);
    CHECK(d->snapshot_locate(&pool, "web", "disk0", "s3", &info, &err) == 0 &&
          !strcmp(info.path, "/dev/zvol/" D ":h1@s3") && info.is_block &&
          !strcmp(info.format, "raw") && info.virtual_size == 1073741824u,
          "snapshot_locate: the zvol snapshot's device, on the history zvol holding it");
    qvm_disk_info_release(&info);
    CHECK_LOG(GET_FAMILY, "snapshot_locate: one zfs get, nothing made");
    fake_reset();
    reply(1, fam, NULL, 0);
    CHECK(d->snapshot_locate(&pool, "web", "disk0", "clone:b", &info, &err) == -ENOENT,
          "qvm's own snapshots cannot be located");
    fake_reset();

    const char *origins = "tank/qvm\torigin\t-\n" D ":h1\torigin\t" D "@s1\n"
                          "tank/qvm/vms/c/disk0\torigin\t" D "@s2\n"
                          "tank/qvm/vms/b/disk0\torigin\t" D "@clone:b\n";
    reply(1, fam, NULL, 0);
    reply(2, origins, NULL, 0);
    CHECK(d->snapshot_destroy(&pool, "web", "disk0", "s2", &err) == -EBUSY &&
          strstr(err.msg, "snapshot 's2' of VM 'web' cannot be removed: 1 VM disk is cloned from "
                 "it (tank/qvm/vms/c/disk0 (VM 'c')); remove that VM first"),
          "snapshot_destroy refuses while another VM's disk is cloned from it: %s", err.msg);
    CHECK_LOG(GET_FAMILY GET_ORIGINS, "... having changed nothing");
    fake_reset();

    /* s1 is the origin of the history zvol: renamed out of sight. */
    reply(1, fam, NULL, 0);
    reply(2, origins, NULL, 0);
    reply(3, "", NULL, 0);
    reply(4, fam, NULL, 0);
    reply(5, origins, NULL, 0);
    CHECK(d->snapshot_destroy(&pool, "web", "disk0", "s1", &err) == 0, "snapshot_destroy of a "
          "history's origin %s", err.msg);
    CHECK_LOG(GET_FAMILY GET_ORIGINS "zfs|rename|" D "@s1|" D "@s1:removed:20\n"
              GET_FAMILY GET_ORIGINS,
              "... renames it NAME:removed:TXG (never -R), then tidies (nothing to free here)");
    fake_reset();

    /* Tidy: an empty history zvol, then qvm's own snapshot nothing is
     * cloned from, then nothing. */
    const char *untidy = BUNDLE MEMBER(D, "volume", "tank/qvm/images/deb/disk@v1", "2147483648")
                         SNAP(D, "clone:x", "35", "2147483648")
                         MEMBER(D ":h2", "volume", D "@s9", "1073741824");
    const char *half = BUNDLE MEMBER(D, "volume", "tank/qvm/images/deb/disk@v1", "2147483648")
                       SNAP(D, "clone:x", "35", "2147483648");
    reply(1, untidy, NULL, 0);
    reply(2, "tank/qvm\torigin\t-\n", NULL, 0);
    reply(4, half, NULL, 0);
    reply(5, "tank/qvm\torigin\t-\n", NULL, 0);
    reply(7, disk_only, NULL, 0);
    reply(8, "tank/qvm\torigin\t-\n", NULL, 0);
    CHECK(d->snapshot_tidy(&pool, "web", "disk0", &err) == 0, "snapshot_tidy %s", err.msg);
    CHECK_LOG(GET_FAMILY GET_ORIGINS "zfs|destroy|" D ":h2\n"
              GET_FAMILY GET_ORIGINS "zfs|destroy|" D "@clone:x\n"
              GET_FAMILY GET_ORIGINS,
              "snapshot_tidy: one removal a round, each read afresh, until none is left");
    fake_reset();

    reply(1, fam, NULL, 0);
    CHECK(d->snapshot_revert_prepare(&pool, "web", "disk0", "s3", &err) == 0,
          "revert_prepare %s", err.msg);
    CHECK_LOG(GET_FAMILY "zfs|clone|" D ":h1@s3|" D ":revert\n",
              "revert_prepare: a clone of the snapshot (on the history zvol) as DISK:revert");
    fake_reset();
    reply(1, fam, NULL, 0);
    CHECK(d->snapshot_revert_prepare(&pool, "web", "disk0", "nope", &err) == -ENOENT &&
          strstr(err.msg, "VM 'web' has no snapshot 'nope'"), "revert_prepare of an unknown "
          "snapshot: %s", err.msg);
    fake_reset();

    /* Swap: two renames, then the device must appear (here it never does:
     * waits the 10 s device timeout). */
    char *prepared = xasprintf("%s" MEMBER(D ":revert", "volume", D "@s1", "1073741824"), with_s1);
    reply(1, prepared, NULL, 0);
    CHECK(d->snapshot_revert_swap(&pool, "web", "disk0", &err) == -ENODEV &&
          strstr(err.msg, "/dev/zvol/" D), "revert_swap waits for the disk's device: %s", err.msg);
    CHECK_LOG(GET_FAMILY "zfs|rename|" D "|" D ":old\nzfs|rename|" D ":revert|" D "\n",
              "revert_swap: the disk aside as DISK:old, the clone in its place (no mounts)");
    fake_reset();

    /* Undo after the swap: the reverted clone goes, the disk comes back. */
    const char *swapped = BUNDLE MEMBER(D, "volume", D ":old@s1", "1073741824")
                          MEMBER(D ":old", "volume", "tank/qvm/images/deb/disk@v1", "2147483648")
                          SNAP(D ":old", "s1", "20", "1073741824");
    reply(1, swapped, NULL, 0);
    CHECK(d->snapshot_revert_undo(&pool, "web", "disk0", &err) == 0, "revert_undo %s", err.msg);
    CHECK_LOG(GET_FAMILY "zfs|destroy|" D "\nzfs|rename|" D ":old|" D "\n",
              "revert_undo: destroy the reverted clone, rename the disk back");
    fake_reset();
    char *mine = xasprintf("%s" SNAP(D, "mine", "50", "1"), swapped);
    reply(1, mine, NULL, 0);
    CHECK(d->snapshot_revert_undo(&pool, "web", "disk0", &err) == -EIO &&
          strstr(err.msg, "both " D " and " D ":old hold a disk"),
          "revert_undo never destroys a disk with snapshots of its own: %s", err.msg);
    CHECK_LOG(GET_FAMILY, "... and changes nothing");
    fake_reset();
    reply(1, disk_only, NULL, 0);
    CHECK(d->snapshot_revert_undo(&pool, "web", "disk0", &err) == 0, "revert_undo with nothing "
          "to undo");
    CHECK_LOG(GET_FAMILY, "... runs nothing but the zfs get");
    fake_reset();

    /* Finish: promote while the origin is a member (once here), then the
     * set-aside disk keeps s2 as history: rolled back to it, renamed. */
    const char *committed = BUNDLE MEMBER(D, "volume", D ":old@s1", "1073741824")
                            MEMBER(D ":old", "volume", "tank/qvm/images/deb/disk@v1", "2147483648")
                            SNAP(D ":old", "s1", "20", "1073741824")
                            SNAP(D ":old", "s2", "30", "2147483648");
    const char *promoted = BUNDLE MEMBER(D, "volume", "tank/qvm/images/deb/disk@v1", "1073741824")
                           SNAP(D, "s1", "20", "1073741824")
                           MEMBER(D ":old", "volume", D "@s1", "2147483648")
                           SNAP(D ":old", "s2", "30", "2147483648");
    const char *done = BUNDLE MEMBER(D, "volume", "tank/qvm/images/deb/disk@v1", "1073741824")
                       SNAP(D, "s1", "20", "1073741824")
                       MEMBER(D ":h1", "volume", D "@s1", "2147483648")
                       SNAP(D ":h1", "s2", "30", "2147483648");
    reply(1, committed, NULL, 0);
    reply(3, promoted, NULL, 0);
    reply(6, done, NULL, 0);
    reply(7, "tank/qvm\torigin\t-\n" D ":h1\torigin\t" D "@s1\n", NULL, 0);
    CHECK(d->snapshot_revert_finish(&pool, "web", "disk0", &err) == 0, "revert_finish %s",
          err.msg);
    CHECK_LOG(GET_FAMILY "zfs|promote|" D "\n" GET_FAMILY
              "zfs|rollback|" D ":old@s2\nzfs|rename|" D ":old|" D ":h1\n" GET_FAMILY GET_ORIGINS,
              "revert_finish: promote (not past the image), roll the old disk back to its newest "
              "snapshot, keep it as history DISK:h1, tidy");
    fake_reset();

    /* The image's snapshot is never promoted over. */
    reply(1, disk_only, NULL, 0);
    reply(2, disk_only, NULL, 0);
    reply(3, "tank/qvm\torigin\t-\n", NULL, 0);
    CHECK(d->snapshot_revert_finish(&pool, "web", "disk0", &err) == 0, "revert_finish of a disk "
          "cloned from an image");
    CHECK_LOG(GET_FAMILY GET_FAMILY GET_ORIGINS, "... promotes nothing");
    fake_reset();

    reply(1, with_s1, NULL, 0);
    reply(2, NULL, "cannot create 'tank/qvm/vms/b/disk0': dataset already exists\n", 1);
    struct qvm_prop props[] = { { "compression", "lz4" } };
    CHECK(d->vm_disk_clone(&pool, "web", "disk0", "s1", "b", "disk0", props, 1, &info, &err) ==
          -EEXIST && strstr(err.msg, "VM 'b' already has a disk tank/qvm/vms/b/disk0"),
          "vm_disk_clone of a snapshot onto an existing disk: %s", err.msg);
    CHECK_LOG(GET_FAMILY "zfs|clone|-o|compression=lz4|" D "@s1|tank/qvm/vms/b/disk0\n",
              "vm_disk_clone --snapshot: a clone of the snapshot, with the disk.zvol properties");
    fake_reset();

    reply(1, fam, NULL, 0);
    reply(2, origins, NULL, 0);
    char **deps = NULL;
    size_t ndeps = 0;
    CHECK(d->snapshot_dependents(&pool, "web", "disk0", &deps, &ndeps, &err) == 0 && ndeps == 2 &&
          !strcmp(deps[0], "tank/qvm/vms/c/disk0 (VM 'c')") &&
          !strcmp(deps[1], "tank/qvm/vms/b/disk0 (VM 'b')"),
          "snapshot_dependents: the clones outside the family, by VM");
    qvm_zfs_strv_free(deps, ndeps);
    fake_reset();

    reply(1, "tank/qvm/vms/b\torigin\t-\ntank/qvm/vms/b/disk0\torigin\t" D "@clone:b\n", NULL, 0);
    CHECK(d->vm_destroy(&pool, "b", &err) == 0, "vm_destroy of a clone");
    CHECK_LOG("zfs|get|-Hp|-r|-o|name,property,value|origin|tank/qvm/vms/b\n"
              "zfs|destroy|-r|tank/qvm/vms/b\nzfs|destroy|" D "@clone:b\n",
              "vm_destroy: the bundle, then the snapshot qvm took of the source for this clone");
    fake_reset();

    free(with_s1);
    free(prepared);
    free(mine);
    qvm_pool_release(&pool);
}

/* ---------------------------------------------------------- dataset mode */

static void test_dataset(void)
{
    char mnt[64];
    snprintf(mnt, sizeof mnt, "%s/mnt", fake);
    char *dir = xasprintf("%s/vms/web/disk0", mnt);
    qvm_mkdir_p(dir, 0755, NULL);
    char *file = xasprintf("%s/disk.raw", dir);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 65536) == 0, "a 64 KiB disk file");
    close(fd);
    struct qvm_pool pool;
    struct qvm_error err = { 0 };
    const struct qvm_storage_driver *d = &qvm_storage_zfs;
    open_pool_at("dataset", mnt, &pool);
    const char *disk_only = BUNDLE MEMBER(D, "filesystem", "tank/qvm/images/deb@v1", "-");

    reply(1, disk_only, NULL, 0);
    CHECK(d->snapshot_create(&pool, "web", "disk0", "s1", &err) == 0, "snapshot_create %s", err.msg);
    CHECK_LOG(GET_FAMILY "zfs|snapshot|-o|qvm:virtual-size=65536|" D "@s1\n",
              "dataset snapshot_create records disk.raw's size");
    fake_reset();

    reply(1, disk_only, NULL, 0);
    struct qvm_prop props[] = { { "compression", "gzip-1" } };
    struct qvm_disk_info info;
    CHECK(d->vm_disk_clone(&pool, "web", "disk0", NULL, "b", "disk0", props, 1, &info, &err) == 0 &&
          info.virtual_size == 65536, "vm_disk_clone of the disk as it is %s", err.msg);
    qvm_disk_info_release(&info);
    CHECK_LOG(GET_FAMILY "zfs|snapshot|-o|qvm:virtual-size=65536|" D "@clone:b\n"
              "zfs|clone|-o|compression=gzip-1|" D "@clone:b|tank/qvm/vms/b/disk0\n",
              "vm_disk_clone: qvm's own snapshot clone:DST, then the clone");
    fake_reset();
    reply(1, disk_only, NULL, 0);
    reply(3, NULL, "cannot create 'tank/qvm/vms/b/disk0': out of space\n", 1);
    CHECK(d->vm_disk_clone(&pool, "web", "disk0", NULL, "b", "disk0", NULL, 0, &info, &err) == -EIO &&
          strstr(err.msg, "cannot clone disk disk0 of VM 'web'"), "a failed clone: %s", err.msg);
    CHECK_LOG(GET_FAMILY "zfs|snapshot|-o|qvm:virtual-size=65536|" D "@clone:b\n"
              "zfs|clone|" D "@clone:b|tank/qvm/vms/b/disk0\nzfs|destroy|" D "@clone:b\n",
              "... leaves nothing: qvm's snapshot goes again");
    fake_reset();
    struct qvm_prop bad[] = { { "mountpoint", "/etc" } };
    CHECK(d->vm_disk_clone(&pool, "web", "disk0", NULL, "b", "disk0", bad, 1, &info, &err) == -EINVAL,
          "a property qvm manages is refused");
    CHECK_LOG("", "... before zfs runs");
    fake_reset();

    char *prepared = xasprintf("%s" SNAP(D, "s1", "20", "65536")
                               MEMBER(D ":revert", "filesystem", D "@s1", "-"), disk_only);
    /* disk0:revert, a clone of disk0@s1, is mounted: zfs rename would
     * unmount it and rename at once, before zfs-fuse has let go of it. */
    reply(1, prepared, NULL, 0);
    reply(2, D "\torigin\ttank/qvm/images/deb@v1\n" D "\tmounted\tyes\n"
          D ":revert\torigin\t" D "@s1\n" D ":revert\tmounted\tyes\n"
          "tank/qvm/vms/b/disk0\torigin\t" D "@s1\ntank/qvm/vms/b/disk0\tmounted\tno\n", NULL, 0);
    CHECK(d->snapshot_revert_swap(&pool, "web", "disk0", &err) == 0, "dataset revert_swap %s",
          err.msg);
    CHECK_LOG(GET_FAMILY GET_MOUNTED "zfs|unmount|" D ":revert\nzfs|unmount|" D "\n"
              "zfs|rename|" D "|" D ":old\nzfs|mount|" D ":old\nzfs|mount|" D ":revert\n"
              GET_MOUNTED "zfs|unmount|" D ":revert\nzfs|rename|" D ":revert|" D "\n"
              "zfs|mount|" D "\n",
              "dataset revert_swap: zfs-fuse renames no mounted dataset: the disk and its "
              "mounted clones unmounted (not an unmounted one), rename, all mounted again");
    fake_reset();
    reply(1, prepared, NULL, 0);
    reply(4, NULL, "cannot rename '" D "': dataset is busy\n", 1);
    reply(5, NULL, "cannot rename '" D "': dataset is busy\n", 1);
    CHECK(d->snapshot_revert_swap(&pool, "web", "disk0", &err) == 0, "a busy rename is retried %s",
          err.msg);
    CHECK_LOG(GET_FAMILY GET_MOUNTED "zfs|unmount|" D "\n"
              "zfs|rename|" D "|" D ":old\nzfs|rename|" D "|" D ":old\nzfs|rename|" D "|" D ":old\n"
              "zfs|mount|" D ":old\n"
              GET_MOUNTED "zfs|unmount|" D ":revert\nzfs|rename|" D ":revert|" D "\n"
              "zfs|mount|" D "\n",
              "... only the rename: nothing is mounted again between the tries");
    fake_reset();

    const char *swapped = BUNDLE MEMBER(D, "filesystem", D ":old@s1", "-")
                          MEMBER(D ":old", "filesystem", "tank/qvm/images/deb@v1", "-")
                          SNAP(D ":old", "s1", "20", "65536");
    reply(1, swapped, NULL, 0);
    CHECK(d->snapshot_revert_undo(&pool, "web", "disk0", &err) == 0, "dataset revert_undo %s",
          err.msg);
    CHECK_LOG(GET_FAMILY "zfs|destroy|" D "\n" GET_MOUNTED "zfs|unmount|" D ":old\n"
              "zfs|rename|" D ":old|" D "\nzfs|mount|" D "\nzfs|mount|" D "\n" GET_MOUNTED,
              "dataset revert_undo: the clone goes, the disk is renamed back and mounted "
              "(and any clone of it a kill left unmounted)");
    fake_reset();
    reply(1, swapped, NULL, 0);
    reply(8, D ":h1\torigin\t" D "@s1\n" D ":h1\tmounted\tno\n", NULL, 0);
    CHECK(d->snapshot_revert_undo(&pool, "web", "disk0", &err) == 0, "dataset revert_undo %s",
          err.msg);
    CHECK_LOG(GET_FAMILY "zfs|destroy|" D "\n" GET_MOUNTED "zfs|unmount|" D ":old\n"
              "zfs|rename|" D ":old|" D "\nzfs|mount|" D "\nzfs|mount|" D "\n" GET_MOUNTED
              "zfs|mount|" D ":h1\n",
              "... a clone of the disk that a kill inside the rename left unmounted is mounted");
    fake_reset();

    reply(1, BUNDLE MEMBER(D, "filesystem", D ":h1@s1", "-") SNAP(D ":h1", "s1", "20", "65536")
          MEMBER(D ":h1", "filesystem", "tank/qvm/images/deb@v1", "-"), NULL, 0);
    CHECK(d->snapshot_locate(&pool, "web", "disk0", "s1", &info, &err) == 0 && !info.is_block &&
          !strcmp(info.path + strlen(mnt), "/vms/web/disk0:h1/.zfs/snapshot/s1/disk.raw"),
          "dataset snapshot_locate: the .zfs/snapshot path under the member's mountpoint");
    qvm_disk_info_release(&info);
    fake_reset();

    free(prepared);
    unlink(file);
    free(file);
    rmdir(dir);
    free(dir);
    char *p = xasprintf("%s/vms/web", mnt);
    rmdir(p);
    free(p);
    p = xasprintf("%s/vms", mnt);
    rmdir(p);
    free(p);
    rmdir(mnt);
    qvm_pool_release(&pool);
}

/* ------------------------------------------------------ the clone's file */

static void rewrite_case(const char *in, const char *want, const char *what)
{
    char *out = NULL;
    struct qvm_error err = { 0 };
    int r = qvm_clone_rewrite_file(in, strlen(in), "dst", "52:54:00:aa:bb:cc", "dst-1234", &out,
                                   &err);
    CHECK(r == 0, "rewrite (%s): %s", what, err.msg);
    CHECK_STR(out, want, "rewrite: %s", what);
    free(out);
}

static void test_rewrite(void)
{
    rewrite_case("qvm: vm\nname: src   # the name\nmemory: 128\n---\nqvm: user-data\n"
                 "hostname: 'src-host'\nfqdn: src-host.example.org\nruncmd: [[true]]\n"
                 "---\nqvm: meta-data\ninstance-id: \"src-1\"\nlocal-hostname: src\n",
                 "qvm: vm\nname: \"dst\"   # the name\nmemory: 128\n---\nqvm: user-data\n"
                 "hostname: \"dst\"\nfqdn: \"dst.example.org\"\nruncmd: [[true]]\n"
                 "---\nqvm: meta-data\ninstance-id: \"dst-1234\"\nlocal-hostname: \"dst\"\n",
                 "plain and quoted values replaced, comments and the rest kept byte for byte");
    rewrite_case("---\nqvm: meta-data\nkeep: [a]\n...\n---\nqvm: vm\nname: src\n"
                 "network: {type: user, mac: \"52:54:00:00:00:01\", ssh-port: 2222}\n"
                 "---\nqvm: user-data\n# h\u00e9llo\nusers: [{name: x, hostname: keep}]\n",
                 "---\nqvm: meta-data\nkeep: [a]\n...\n---\nqvm: vm\nname: \"dst\"\n"
                 "network: {type: user, mac: \"52:54:00:aa:bb:cc\", ssh-port: auto}\n"
                 "---\nqvm: user-data\n# h\u00e9llo\nusers: [{name: x, hostname: keep}]\n",
                 "documents in any order, a flow network mapping: mac and a fixed ssh-port; nested "
                 "hostname keys and absent instance-id untouched");
    rewrite_case("\xef\xbb\xbfqvm: vm\n# \u00e4\u00f6\u00fc\nname: src\nnetwork:\n  ssh-port: none\n",
                 "\xef\xbb\xbfqvm: vm\n# \u00e4\u00f6\u00fc\nname: \"dst\"\nnetwork:\n  ssh-port: none\n",
                 "a BOM and multi-byte characters before a value (marks count characters); "
                 "ssh-port none kept");
    char *out = NULL;
    struct qvm_error err = { 0 };
    const char *block = "qvm: vm\nname: |\n  src\n";
    CHECK(qvm_clone_rewrite_file(block, strlen(block), "dst", "m", "i", &out, &err) == -EINVAL &&
          strstr(err.msg, "the vm document's 'name' is not a plain or quoted value"),
          "a block scalar is refused, naming the key: %s", err.msg);
    const char *bad = "qvm: vm\nname: [unclosed\n";
    CHECK(qvm_clone_rewrite_file(bad, strlen(bad), "dst", "m", "i", &out, &err) == -EINVAL &&
          strstr(err.msg, "does not parse"), "YAML that does not parse: %s", err.msg);
}

int main(void)
{
    test_argv();
    test_family();
    test_rewrite();

    snprintf(fake, sizeof fake, "/tmp/qvm-snapargv.XXXXXX");
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
    char *path = xasprintf("%s:%s", fake, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    setenv("PATH", path, 1);
    free(path);

    test_zvol();
    test_dataset();

    fake_reset();
    unlink(zfs);
    free(zfs);
    rmdir(fake);
    return test_done();
}
