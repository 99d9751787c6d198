/* test_storage_argv.c - qvm_image_file_format / qvm_image_file_probe and the
 * dir storage driver end to end on a temporary pool (runs the real
 * qemu-img). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "test.h"
#include "storage/storage.h"
#include "util/fsutil.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

static char root[64];

static char *tpath(const char *rel)
{
    return xasprintf("%s/%s", root, rel);
}

static int write_bytes(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, data, len);
    close(fd);
    return n == (ssize_t)len ? 0 : -1;
}

static int read_all(const char *path, char **ret, size_t *ret_len)
{
    return qvm_read_file(path, 64 << 20, ret, ret_len, NULL);
}

/* qemu-img info --output=json of PATH, parsed; caller puts. */
static json_object *img_info(const char *path)
{
    const char *argv[] = { "qemu-img", "info", "--output=json", "-U", path, NULL };
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    json_object *o = NULL;
    if (qvm_run(argv, NULL, &res, &err) == 0)
        o = json_tokener_parse(res.out);
    else
        printf("# qemu-img info %s: %s\n", path, err.msg);
    qvm_run_result_release(&res);
    return o;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static int64_t jint(json_object *o, const char *key)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    return -1;
}

static int run_ok(const char *const argv[])
{
    struct qvm_error err = { 0 };
    int r = qvm_run(argv, NULL, NULL, &err);
    if (r < 0)
        printf("# %s\n", err.msg);
    return r;
}

static void check_refused(const char *name, const void *magic, size_t len, const char *hint)
{
    struct qvm_error err = { 0 };
    char *p = tpath(name);
    char buf[64] = { 0 };
    memcpy(buf, magic, len);
    write_bytes(p, buf, sizeof buf);
    const char *fmt = "untouched";
    int r = qvm_image_file_format(p, &fmt, &err);
    CHECK(r == -EINVAL, "%s is refused with -EINVAL (r=%d)", name, r);
    CHECK_CONTAINS(err.msg, hint, "%s: the message gives the hint", name);
    CHECK_CONTAINS(err.msg, "qvm imports raw or qcow2 images", "%s: the message says what is accepted", name);
    CHECK_CONTAINS(err.msg, p, "%s: the message names the file", name);
    CHECK_STR(fmt, "untouched", "%s: no format returned", name);
    free(p);
}

static void test_format(void)
{
    struct qvm_error err = { 0 };
    const char *fmt = NULL;
    char *raw = tpath("plain.raw");
    write_bytes(raw, "hello, raw disk image", 21);
    CHECK(qvm_image_file_format(raw, &fmt, &err) == 0, "raw file accepted");
    CHECK_STR(fmt, "raw", "raw detected");

    char *empty = tpath("empty.raw");
    write_bytes(empty, "", 0);
    fmt = NULL;
    CHECK(qvm_image_file_format(empty, &fmt, &err) == 0 && fmt && strcmp(fmt, "raw") == 0,
          "an empty file is raw");

    char *shortq = tpath("short.raw");
    write_bytes(shortq, "QF", 2);
    fmt = NULL;
    CHECK(qvm_image_file_format(shortq, &fmt, &err) == 0 && fmt && strcmp(fmt, "raw") == 0,
          "a 2-byte file starting like qcow2 is raw");

    char *q = tpath("magic.qcow2");
    write_bytes(q, "QFI\xfb\0\0\0\3", 8);
    fmt = NULL;
    CHECK(qvm_image_file_format(q, &fmt, &err) == 0, "qcow2 magic accepted");
    CHECK_STR(fmt, "qcow2", "qcow2 detected by its magic");

    char *realq = tpath("real.qcow2");
    const char *mk[] = { "qemu-img", "create", "-q", "-f", "qcow2", realq, "1M", NULL };
    CHECK(run_ok(mk) == 0, "qemu-img create qcow2");
    fmt = NULL;
    CHECK(qvm_image_file_format(realq, &fmt, &err) == 0 && fmt && strcmp(fmt, "qcow2") == 0,
          "a real qcow2 is detected");

    check_refused("x.gz", "\x1f\x8b\x08\x00", 4, "gzip-compressed (run: gunzip)");
    check_refused("x.xz", "\xfd" "7zXZ\0", 6, "xz-compressed (run: unxz)");
    check_refused("x.zst", "\x28\xb5\x2f\xfd", 4, "zstd-compressed (run: unzstd)");
    check_refused("x.bz2", "BZh91AY&SY", 10, "bzip2-compressed (run: bunzip2)");
    check_refused("x.vmdk", "KDMV\1\0\0\0", 8, "a VMDK image (convert it with qemu-img convert -O qcow2)");
    check_refused("x.vhd", "conectix", 8, "a VHD image (convert it with qemu-img convert -O qcow2)");
    check_refused("x.vhdx", "vhdxfile", 8, "a VHDX image (convert it with qemu-img convert -O qcow2)");

    /* Real files made by the real tools. */
    char *gz = tpath("real.raw.gz");
    const char *gzip[] = { "gzip", "-k", raw, NULL };
    char *rawgz = xasprintf("%s.gz", raw);
    if (run_ok(gzip) == 0) {
        qvm_err_clear(&err);
        CHECK(qvm_image_file_format(rawgz, &fmt, &err) == -EINVAL, "a real gzip file is refused");
        CHECK_CONTAINS(err.msg, "gunzip", "real gzip: hint");
    }
    const char *xz[] = { "xz", "-k", raw, NULL };
    char *rawxz = xasprintf("%s.xz", raw);
    if (run_ok(xz) == 0) {
        qvm_err_clear(&err);
        CHECK(qvm_image_file_format(rawxz, &fmt, &err) == -EINVAL, "a real xz file is refused");
        CHECK_CONTAINS(err.msg, "unxz", "real xz: hint");
    }
    char *vmdk = tpath("real.vmdk");
    const char *mkvmdk[] = { "qemu-img", "create", "-q", "-f", "vmdk", vmdk, "1M", NULL };
    if (run_ok(mkvmdk) == 0) {
        qvm_err_clear(&err);
        CHECK(qvm_image_file_format(vmdk, &fmt, &err) == -EINVAL, "a real VMDK is refused");
        CHECK_CONTAINS(err.msg, "VMDK", "real VMDK: hint");
    }

    char *missing = tpath("no-such-image.raw");
    qvm_err_clear(&err);
    fmt = "untouched";
    int r = qvm_image_file_format(missing, &fmt, &err);
    CHECK(r == -ENOENT, "a missing file: -ENOENT (r=%d)", r);
    CHECK_CONTAINS(err.msg, "cannot open image", "missing file: message");
    CHECK_CONTAINS(err.msg, missing, "missing file: message names the path");
    CHECK_CONTAINS(err.msg, "No such file or directory", "missing file: message says why");
    CHECK_STR(fmt, "untouched", "missing file: no format returned");

    qvm_err_clear(&err);
    r = qvm_image_file_format(root, &fmt, &err);
    CHECK(r == -EISDIR, "a directory: -EISDIR (r=%d)", r);
    CHECK_CONTAINS(err.msg, "cannot read image", "directory: message");

    /* qemu-img info through qvm_image_file_probe. */
    uint64_t size = 0;
    bool backing = true;
    qvm_err_clear(&err);
    r = qvm_image_file_probe(realq, "qcow2", &size, &backing, &err);
    CHECK(r == 0 && size == 1 << 20 && !backing, "probe of a qcow2: 1 MiB, no backing (%s)", err.msg);
    qvm_err_clear(&err);
    r = qvm_image_file_probe(missing, "raw", &size, NULL, &err);
    CHECK(r < 0, "probe of a missing file fails");
    CHECK_CONTAINS(err.msg, "image size of", "probe failure: message");
    CHECK_CONTAINS(err.msg, missing, "probe failure: message names the file");

    unlink(rawgz);
    unlink(rawxz);
    free(rawgz);
    free(rawxz);
    free(gz);
    free(vmdk);
    free(raw);
    free(empty);
    free(shortq);
    free(q);
    free(realq);
    free(missing);
}

#define SRC_SIZE (3u << 20)

/* 3 MiB: 64 KiB of pattern, 2 MiB of zeroes written out, pattern to the end. */
static char *make_src(const char *path)
{
    char *data = calloc(1, SRC_SIZE);
    for (size_t i = 0; i < SRC_SIZE; i++)
        if (i < 65536 || i >= 65536 + (2u << 20))
            data[i] = (char)(i * 31 + 7);
    if (write_bytes(path, data, SRC_SIZE) < 0)
        printf("# cannot write %s\n", path);
    return data;
}

static void test_dir_driver(void)
{
    struct qvm_error err = { 0 };
    struct qvm_pool pool;
    char *pools = tpath("pools");
    int r;

    CHECK(qvm_storage_driver_find("dir") == &qvm_storage_dir, "the dir driver is registered");
    CHECK(qvm_storage_driver_find("no-such-driver") == NULL, "an unknown driver is NULL");
    char *want = xasprintf("%s/default", pools);
    CHECK(qvm_pool_open("Bad/Name", "dir", want, NULL, NULL, &pool, &err) == -EINVAL,
          "pool names are checked");
    CHECK(qvm_pool_open("p", "nodriver", want, NULL, NULL, &pool, &err) == -EINVAL,
          "an unknown driver is refused");
    CHECK_CONTAINS(err.msg, "unknown driver 'nodriver'", "the message names the driver");
    CHECK(qvm_pool_open("p", "dir", "relative/path", NULL, NULL, &pool, &err) == -EINVAL,
          "a dir pool needs an absolute path");
    r = qvm_pool_open("default", "dir", want, NULL, NULL, &pool, &err);
    CHECK(r == 0 && pool.driver == &qvm_storage_dir, "pool_open");
    CHECK_STR(pool.path, want, "pool path is as configured");
    free(want);
    const struct qvm_storage_driver *d = pool.driver;

    r = d->pool_init(&pool, &err);
    CHECK(r == 0, "pool_init (%s)", err.msg);
    char *images = xasprintf("%s/images", pool.path), *vms = xasprintf("%s/vms", pool.path);
    CHECK(qvm_path_exists(images) && qvm_path_exists(vms), "pool_init creates images/ and vms/");
    CHECK(d->pool_init(&pool, &err) == 0, "pool_init is idempotent");

    char *idir = d->image_dir(&pool, "deb");
    char *want_idir = xasprintf("%s/images/deb", pool.path);
    CHECK_STR(idir, want_idir, "image_dir");
    free(want_idir);
    char *vdir = d->vm_dir(&pool, "vm1");
    char *want_vdir = xasprintf("%s/vms/vm1", pool.path);
    CHECK_STR(vdir, want_vdir, "vm_dir");
    free(want_vdir);

    r = d->image_create(&pool, "deb", &err);
    CHECK(r == 0 && qvm_path_exists(idir), "image_create (%s)", err.msg);
    qvm_err_clear(&err);
    r = d->image_create(&pool, "deb", &err);
    CHECK(r == -EEXIST, "image_create a second time: -EEXIST (r=%d)", r);
    CHECK_CONTAINS(err.msg, "image 'deb' already exists", "-EEXIST message");

    /* Import a raw file as v1. */
    char *src = tpath("src.raw");
    char *data = make_src(src);
    qvm_err_clear(&err);
    r = d->version_import(&pool, "deb", "v1", src, "raw", NULL, &err);
    CHECK(r == 0, "version_import v1 from raw (%s)", err.msg);
    char *v1 = xasprintf("%s/v1.raw", idir), *v1part = xasprintf("%s/v1.raw.part", idir);
    char *got = NULL;
    size_t got_len = 0;
    CHECK(read_all(v1, &got, &got_len) == 0 && got_len == SRC_SIZE && memcmp(got, data, SRC_SIZE) == 0,
          "v1 has the same bytes as the source");
    free(got);
    struct stat st;
    CHECK(stat(v1, &st) == 0 && (st.st_mode & 07777) == 0444, "v1 is mode 0444 (%o)", st.st_mode & 07777);
    CHECK((uint64_t)st.st_blocks * 512 <= SRC_SIZE - (1u << 20),
          "v1 is sparse (%llu bytes allocated)", (unsigned long long)st.st_blocks * 512);
    CHECK(!qvm_path_exists(v1part), "no .part left");

    /* Import from qcow2 as v2. */
    char *srcq = tpath("src.qcow2");
    const char *conv[] = { "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", src, srcq, NULL };
    CHECK(run_ok(conv) == 0, "make a qcow2 source");
    r = d->version_import(&pool, "deb", "v2", srcq, "qcow2", NULL, &err);
    CHECK(r == 0, "version_import v2 from qcow2 (%s)", err.msg);
    char *v2 = xasprintf("%s/v2.raw", idir);
    CHECK(read_all(v2, &got, &got_len) == 0 && got_len == SRC_SIZE && memcmp(got, data, SRC_SIZE) == 0,
          "v2 (from qcow2) is raw with the same bytes");
    free(got);
    json_object *info = img_info(v2);
    CHECK_STR(jstr(info, "format"), "raw", "qemu-img sees v2 as raw");
    json_object_put(info);

    /* Failed imports leave nothing behind. */
    char *missing = tpath("missing.raw");
    char *v3 = xasprintf("%s/v3.raw", idir), *v3part = xasprintf("%s/v3.raw.part", idir);
    qvm_err_clear(&err);
    r = d->version_import(&pool, "deb", "v3", missing, "raw", NULL, &err);
    CHECK(r < 0, "import of a missing file fails (r=%d)", r);
    CHECK_CONTAINS(err.msg, "cannot copy", "import failure message");
    CHECK_CONTAINS(err.msg, missing, "import failure message names the source");
    CHECK(!qvm_path_exists(v3) && !qvm_path_exists(v3part), "failed import: no version, no .part");
    qvm_err_clear(&err);
    r = d->version_import(&pool, "deb", "v3", src, "qcow2", NULL, &err);
    CHECK(r < 0, "import with the wrong source format fails (r=%d)", r);
    CHECK(!qvm_path_exists(v3) && !qvm_path_exists(v3part), "wrong format: no version, no .part");

    /* version_info. */
    struct qvm_disk_info di = { 0 };
    r = d->version_info(&pool, "deb", "v1", &di, &err);
    CHECK(r == 0, "version_info v1");
    CHECK_STR(di.path, v1, "version_info path");
    CHECK_STR(di.format, "raw", "version_info format");
    CHECK(di.virtual_size == SRC_SIZE && !di.is_block, "version_info size and not a block device");
    qvm_disk_info_release(&di);
    CHECK(di.path == NULL && di.format == NULL, "disk_info_release clears");
    qvm_err_clear(&err);
    r = d->version_info(&pool, "deb", "v9", &di, &err);
    CHECK(r == -ENOENT, "version_info of a missing version: -ENOENT");
    CHECK_STR(err.msg, "image 'deb' has no version v9", "missing version message");

    /* VM bundle. */
    r = d->vm_create(&pool, "vm1", &err);
    CHECK(r == 0 && qvm_path_exists(vdir), "vm_create");
    qvm_err_clear(&err);
    r = d->vm_create(&pool, "vm1", &err);
    CHECK(r == -EEXIST, "vm_create a second time: -EEXIST");
    CHECK_CONTAINS(err.msg, "VM 'vm1' already exists", "vm -EEXIST message");

    /* Clone v1 as the VM's disk. */
    struct qvm_disk_info disk = { 0 };
    qvm_err_clear(&err);
    r = d->disk_clone(&pool, "deb", "v1", "vm1", "disk0", 0, NULL, 0, &disk, &err);
    CHECK(r == 0, "disk_clone (%s)", err.msg);
    char *want_disk = xasprintf("%s/disk0.qcow2", vdir);
    CHECK_STR(disk.path, want_disk, "clone path VM_DIR/DISK.qcow2");
    CHECK_STR(disk.format, "qcow2", "clone format");
    CHECK(disk.virtual_size == SRC_SIZE, "size 0: the version's size");
    info = img_info(want_disk);
    CHECK_STR(jstr(info, "format"), "qcow2", "qemu-img sees a qcow2");
    CHECK_STR(jstr(info, "backing-filename"), v1, "qemu-img info shows v1 as the backing file");
    CHECK_STR(jstr(info, "backing-filename-format"), "raw", "the backing format is raw");
    CHECK(jint(info, "virtual-size") == SRC_SIZE, "overlay virtual size");
    json_object_put(info);
    uint64_t psize = 0;
    bool has_backing = false;
    CHECK(qvm_image_file_probe(want_disk, "qcow2", &psize, &has_backing, &err) == 0 && has_backing &&
          psize == SRC_SIZE, "probe sees the backing file");
    CHECK(stat(want_disk, &st) == 0 && st.st_size < (off_t)(1u << 20), "the overlay is small (%lld bytes)",
          (long long)st.st_size);
    qvm_disk_info_release(&disk);

    /* Bigger than the base. */
    uint64_t big = SRC_SIZE + (5u << 20);
    r = d->disk_clone(&pool, "deb", "v1", "vm1", "disk1", big, NULL, 0, &disk, &err);
    CHECK(r == 0 && disk.virtual_size == big, "clone grown to a larger size");
    info = disk.path ? img_info(disk.path) : NULL;
    CHECK(jint(info, "virtual-size") == (int64_t)big, "qemu-img info shows the larger size");
    json_object_put(info);
    qvm_disk_info_release(&disk);

    /* Smaller than the base fails and creates nothing. */
    char *disk2 = xasprintf("%s/disk2.qcow2", vdir);
    qvm_err_clear(&err);
    r = d->disk_clone(&pool, "deb", "v1", "vm1", "disk2", SRC_SIZE - 512, NULL, 0, &disk, &err);
    CHECK(r == -EINVAL, "a size smaller than the base: -EINVAL (r=%d)", r);
    CHECK_CONTAINS(err.msg, "is smaller than image 'deb@v1'", "smaller size message");
    CHECK(!qvm_path_exists(disk2), "no disk created");

    qvm_err_clear(&err);
    r = d->disk_clone(&pool, "deb", "v9", "vm1", "disk2", 0, NULL, 0, &disk, &err);
    CHECK(r == -ENOENT, "clone of a missing version: -ENOENT");
    qvm_err_clear(&err);
    r = d->disk_clone(&pool, "deb", "v1", "no-such-vm", "disk0", 0, NULL, 0, &disk, &err);
    CHECK(r < 0, "clone into a missing VM fails (r=%d)", r);
    CHECK_CONTAINS(err.msg, "no-such-vm", "clone failure message names the VM");

    /* v1 is untouched by all this. */
    CHECK(read_all(v1, &got, &got_len) == 0 && got_len == SRC_SIZE && memcmp(got, data, SRC_SIZE) == 0,
          "v1 unchanged after cloning");
    free(got);

    /* Destroy. */
    r = d->vm_destroy(&pool, "vm1", &err);
    CHECK(r == 0 && !qvm_path_exists(vdir), "vm_destroy removes the bundle and its disks");
    CHECK(d->vm_destroy(&pool, "vm1", &err) == 0, "vm_destroy of a missing VM is success");
    CHECK(qvm_path_exists(v1), "vm_destroy leaves the image");
    r = d->image_destroy(&pool, "deb", &err);
    CHECK(r == 0 && !qvm_path_exists(idir), "image_destroy removes the read-only versions too");
    CHECK(d->image_destroy(&pool, "deb", &err) == 0, "image_destroy of a missing image is success");
    CHECK(qvm_path_exists(images) && qvm_path_exists(vms), "the pool layout stays");

    qvm_pool_release(&pool);
    CHECK(pool.path == NULL && pool.name == NULL, "pool_release clears");
    qvm_pool_release(NULL);

    free(disk2);
    free(want_disk);
    free(missing);
    free(v1);
    free(v1part);
    free(v2);
    free(v3);
    free(v3part);
    free(srcq);
    free(src);
    free(data);
    free(idir);
    free(vdir);
    free(images);
    free(vms);
    free(pools);
}

/* Versions are immutable: importing over an existing one must not replace
 * it (VM disks use it as their backing file). */
static void test_import_immutable(void)
{
    struct qvm_error err = { 0 };
    struct qvm_pool pool;
    char *pools = tpath("pools-imm");
    qvm_pool_open("default", "dir", pools, NULL, NULL, &pool, &err);
    pool.driver->pool_init(&pool, &err);
    pool.driver->image_create(&pool, "img", &err);
    char *a = tpath("imm-a.raw"), *b = tpath("imm-b.raw");
    char *da = calloc(1, 1 << 20), *db = calloc(1, 1 << 20);
    memset(da, 'A', 1 << 20);
    memset(db, 'B', 1 << 20);
    write_bytes(a, da, 1 << 20);
    write_bytes(b, db, 1 << 20);
    int r = pool.driver->version_import(&pool, "img", "v1", a, "raw", NULL, &err);
    CHECK(r == 0, "import v1");
    qvm_err_clear(&err);
    r = pool.driver->version_import(&pool, "img", "v1", b, "raw", NULL, &err);
    char *v1 = xasprintf("%s/images/img/v1.raw", pool.path);
    char *got = NULL;
    size_t len = 0;
    int same = read_all(v1, &got, &len) == 0 && len == 1u << 20 && memcmp(got, da, len) == 0;
    CHECK(r < 0 && same, "importing over an existing version fails and keeps its content "
          "(r=%d, content %s)", r, same ? "kept" : "replaced");
    free(got);
    free(v1);
    free(da);
    free(db);
    free(a);
    free(b);
    qvm_pool_release(&pool);
    free(pools);
}

/* A clone that fails must not delete a disk it did not create. */
static void test_clone_keeps_existing_disk(void)
{
    struct qvm_error err = { 0 };
    struct qvm_pool pool;
    char *pools = tpath("pools-clone");
    qvm_pool_open("default", "dir", pools, NULL, NULL, &pool, &err);
    const struct qvm_storage_driver *d = pool.driver;
    d->pool_init(&pool, &err);
    d->image_create(&pool, "img", &err);
    char *src = tpath("clone-src.raw");
    char *data = calloc(1, 1 << 20);
    write_bytes(src, data, 1 << 20);
    free(data);
    d->version_import(&pool, "img", "v1", src, "raw", NULL, &err);
    d->vm_create(&pool, "vm", &err);
    struct qvm_disk_info disk = { 0 };
    int r = d->disk_clone(&pool, "img", "v1", "vm", "disk0", 0, NULL, 0, &disk, &err);
    CHECK(r == 0, "first clone of disk0");
    char *path = disk.path ? xstrdup(disk.path) : NULL;
    qvm_disk_info_release(&disk);

    /* qemu-img refuses this size before touching any file. */
    qvm_err_clear(&err);
    r = d->disk_clone(&pool, "img", "v1", "vm", "disk0", UINT64_MAX, NULL, 0, &disk, &err);
    CHECK(r < 0, "a clone that qemu-img refuses fails (r=%d)", r);
    CHECK(path && qvm_path_exists(path), "the VM's existing disk0 survives a failed clone");
    free(path);
    free(src);
    qvm_pool_release(&pool);
    free(pools);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);  /* no buffered TAP lines duplicated by forks */
    strcpy(root, "/tmp/qvm-test-storage-XXXXXX");
    if (!mkdtemp(root)) {
        printf("Bail out! mkdtemp failed\n");
        return 1;
    }
    test_format();
    test_dir_driver();
    test_import_immutable();
    test_clone_keeps_existing_disk();
    qvm_rm_rf(root, NULL);
    return test_done();
}
