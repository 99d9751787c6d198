#include "storage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/fsutil.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

static const struct qvm_storage_driver *const drivers[] = {
    &qvm_storage_dir,
    &qvm_storage_btrfs,
    &qvm_storage_zfs,
};

const struct qvm_storage_driver *qvm_storage_driver_find(const char *name)
{
    for (size_t i = 0; i < sizeof drivers / sizeof drivers[0]; i++)
        if (strcmp(drivers[i]->name, name) == 0)
            return drivers[i];
    return NULL;
}

void qvm_disk_info_release(struct qvm_disk_info *info)
{
    if (!info)
        return;
    free(info->path);
    free(info->format);
    memset(info, 0, sizeof *info);
}

int qvm_pool_open(const char *name, const char *driver, const char *path, const char *dataset,
                  const char *mode, struct qvm_pool *ret, struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    int r = qvm_name_check("pool", name, err);
    if (r < 0)
        return r;
    const struct qvm_storage_driver *drv = qvm_storage_driver_find(driver);
    if (!drv)
        return qvm_err(err, EINVAL, "pool '%s': unknown driver '%s' (qvm has: %s)", name, driver,
                       qvm_storage_driver_names());
    ret->name = xstrdup(name);
    ret->path = path ? xstrdup(path) : NULL;
    ret->dataset = dataset ? xstrdup(dataset) : NULL;
    ret->mode = mode ? xstrdup(mode) : NULL;
    ret->driver = drv;
    r = drv->pool_open(ret, err);
    if (r < 0) {
        qvm_err_wrap(err, "pool '%s'", name);
        qvm_pool_release(ret);
    }
    return r;
}

char *qvm_storage_image_dir(const struct qvm_pool *pool, const char *image)
{
    return xasprintf("%s/images/%s", pool->path, image);
}

char *qvm_storage_vm_dir(const struct qvm_pool *pool, const char *vm)
{
    return xasprintf("%s/vms/%s", pool->path, vm);
}

const char *qvm_storage_driver_names(void)
{
    static char names[128];
    if (!names[0])
        for (size_t i = 0; i < sizeof drivers / sizeof drivers[0]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     drivers[i]->name);
    return names;
}

void qvm_pool_release(struct qvm_pool *pool)
{
    if (!pool)
        return;
    free(pool->name);
    free(pool->path);
    free(pool->dataset);
    free(pool->mode);
    memset(pool, 0, sizeof *pool);
}

int qvm_image_file_format(const char *path, const char **ret_format, struct qvm_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return qvm_err_errno(err, errno, "cannot open image %s", path);
    unsigned char m[8] = { 0 };
    ssize_t n = read(fd, m, sizeof m);
    int e = errno;
    close(fd);
    if (n < 0)
        return qvm_err_errno(err, e, "cannot read image %s", path);
    static const struct { const char *magic; size_t len; const char *what; } refused[] = {
        { "\xfd" "7zXZ", 5, "xz-compressed (run: unxz)" },
        { "\x1f\x8b", 2, "gzip-compressed (run: gunzip)" },
        { "\x28\xb5\x2f\xfd", 4, "zstd-compressed (run: unzstd)" },
        { "BZh", 3, "bzip2-compressed (run: bunzip2)" },
        { "KDMV", 4, "a VMDK image (convert it with qemu-img convert -O qcow2)" },
        { "conectix", 8, "a VHD image (convert it with qemu-img convert -O qcow2)" },
        { "vhdxfile", 8, "a VHDX image (convert it with qemu-img convert -O qcow2)" },
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if ((size_t)n >= refused[i].len && memcmp(m, refused[i].magic, refused[i].len) == 0)
            return qvm_err(err, EINVAL, "image %s is %s; qvm imports raw or qcow2 images",
                           path, refused[i].what);
    *ret_format = (n >= 4 && memcmp(m, "QFI\xfb", 4) == 0) ? "qcow2" : "raw";
    return 0;
}

/* qemu-img info --output=json prints, e.g.:
 *   { "virtual-size": 2147483648, "filename": "v1.raw", "format": "raw",
 *     "actual-size": 1010946048, "dirty-flag": false }
 * and for an overlay also "backing-filename": "...". */
int qvm_image_file_probe(const char *path, const char *format, uint64_t *ret_size,
                         bool *ret_has_backing, struct qvm_error *err)
{
    const char *argv[] = { "qemu-img", "info", "--output=json", "-f", format, path, NULL };
    struct qvm_run_opts opts = { .timeout_ms = 60000 };
    struct qvm_run_result res;
    int r = qvm_run(argv, &opts, &res, err);
    if (r < 0) {
        qvm_run_result_release(&res);
        return qvm_err_wrap(err, "image size of %s could not be retrieved", path);
    }
    json_object *root = json_tokener_parse(res.out);
    qvm_run_result_release(&res);
    json_object *vs = NULL, *bf = NULL;
    if (!root || !json_object_object_get_ex(root, "virtual-size", &vs) ||
        !json_object_is_type(vs, json_type_int) || json_object_get_int64(vs) <= 0) {
        json_object_put(root);
        return qvm_err(err, EINVAL, "image size of %s could not be retrieved: "
                       "unexpected output from qemu-img info", path);
    }
    *ret_size = (uint64_t)json_object_get_int64(vs);
    if (ret_has_backing)
        *ret_has_backing = json_object_object_get_ex(root, "backing-filename", &bf);
    json_object_put(root);
    return 0;
}
