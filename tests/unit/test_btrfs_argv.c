/* test_btrfs_argv.c - the exact command lines of the Btrfs backend
 * (storage/btrfs.h), and the driver's refusals that need no Btrfs: a
 * relative or non-Btrfs pool path. The driver against a real Btrfs is
 * tests/integration/btrfs.sh. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "storage/btrfs.h"
#include "storage/storage.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

/* The argv as one line, checking it is NULL-terminated at N. */
static char *line(const char **argv, size_t n)
{
    if (n >= QVM_BTRFS_ARGV_MAX || argv[n] != NULL)
        return xstrdup("(argv not NULL-terminated at its count)");
    return qvm_argv_to_string(argv);
}

static void check_argv(const char **argv, size_t n, const char *want, const char *what)
{
    char *got = line(argv, n);
    CHECK_STR(got, want, "%s", what);
    free(got);
}

static void test_argv(void)
{
    const char *argv[QVM_BTRFS_ARGV_MAX];
    size_t n;

    n = qvm_btrfs_argv_subvol_create(argv, "/p/images/deb");
    check_argv(argv, n, "btrfs subvolume create /p/images/deb", "subvolume create");

    n = qvm_btrfs_argv_snapshot(argv, "/p/images/deb", "/p/images/.versions/deb/v1", true);
    check_argv(argv, n, "btrfs subvolume snapshot -r /p/images/deb /p/images/.versions/deb/v1",
               "read-only snapshot (a version)");

    n = qvm_btrfs_argv_snapshot(argv, "/p/images/.versions/deb/v1", "/p/vms/web/disk0", false);
    check_argv(argv, n, "btrfs subvolume snapshot /p/images/.versions/deb/v1 /p/vms/web/disk0",
               "writable snapshot (a VM disk)");

    n = qvm_btrfs_argv_subvol_delete(argv, "/p/vms/web/disk0", false);
    check_argv(argv, n, "btrfs subvolume delete /p/vms/web/disk0", "subvolume delete");

    n = qvm_btrfs_argv_subvol_delete(argv, "/p/vms/web", true);
    check_argv(argv, n, "btrfs subvolume delete --commit-after /p/vms/web",
               "subvolume delete, committing the transaction");

    n = qvm_btrfs_argv_convert(argv, "/src/deb.qcow2", "qcow2", "/p/images/deb/disk.raw.part",
                               false);
    check_argv(argv, n, "qemu-img convert -q -f qcow2 -O raw /src/deb.qcow2 "
               "/p/images/deb/disk.raw.part", "qemu-img convert, quiet");

    n = qvm_btrfs_argv_convert(argv, "/src/a b.raw", "raw", "/p/images/deb/disk.raw.part", true);
    check_argv(argv, n, "qemu-img convert -p -f raw -O raw '/src/a b.raw' "
               "/p/images/deb/disk.raw.part", "qemu-img convert with progress; one argument "
               "per path, spaces and all");
    CHECK_STR(argv[7], "/src/a b.raw", "a path with a space stays one argument");

    n = qvm_btrfs_argv_send(argv, "/p/images/.versions/deb/v1", NULL);
    check_argv(argv, n, "btrfs send /p/images/.versions/deb/v1", "send, whole");

    n = qvm_btrfs_argv_send(argv, "/p/images/.versions/deb/v2", "/p/images/.versions/deb/v1");
    check_argv(argv, n, "btrfs send -p /p/images/.versions/deb/v1 /p/images/.versions/deb/v2",
               "send, the changes since a base version");

    n = qvm_btrfs_argv_receive(argv, "/p/images/.versions/deb/v2.receiving");
    check_argv(argv, n, "btrfs receive -e /p/images/.versions/deb/v2.receiving",
               "receive into the staging directory, ending at the stream's end command");

    /* The longest command fits with room to spare. */
    n = qvm_btrfs_argv_convert(argv, "s", "raw", "d", true);
    CHECK(n + 1 <= QVM_BTRFS_ARGV_MAX, "QVM_BTRFS_ARGV_MAX holds the longest argv (%zu)", n + 1);
}

static void test_pool_open(void)
{
    struct qvm_pool pool;
    struct qvm_error err = { 0 };

    CHECK(qvm_storage_driver_find("btrfs") == &qvm_storage_btrfs, "the table has btrfs");
    CHECK(!qvm_storage_btrfs.clone_properties, "btrfs clones take no zvol properties");

    int r = qvm_pool_open("fast", "btrfs", "relative/dir", NULL, NULL, &pool, &err);
    CHECK(r == -EINVAL, "a relative path is refused (%d)", r);
    CHECK_CONTAINS(err.msg, "absolute path", "... saying it needs an absolute path");

    qvm_err_clear(&err);
    r = qvm_pool_open("fast", "btrfs", "/nonexistent-qvm-test", NULL, NULL, &pool, &err);
    CHECK(r == -ENOENT, "a missing path is refused (%d)", r);
    CHECK_CONTAINS(err.msg, "/nonexistent-qvm-test: No such file", "... naming it: %s", err.msg);

    qvm_err_clear(&err);
    r = qvm_pool_open("fast", "btrfs", "/proc", NULL, NULL, &pool, &err);
    CHECK(r == -EINVAL, "/proc is not Btrfs (%d)", r);
    CHECK_CONTAINS(err.msg, "pool 'fast': /proc is not on a Btrfs file system (it is proc)",
                   "... and the message names the file system it is on");

    qvm_err_clear(&err);
    r = qvm_pool_open("fast", "btrfs", "/proc/self/status", NULL, NULL, &pool, &err);
    CHECK(r == -ENOTDIR, "a file is not a pool directory (%d)", r);
}

int main(void)
{
    test_argv();
    test_pool_open();
    return test_done();
}
