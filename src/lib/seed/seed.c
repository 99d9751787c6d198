/* seed.c - the NoCloud seed ISO (see seed.h). Owns the image file it is
 * asked to write and nothing else: the documents arrive finished from
 * spec/. */
#include "seed.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/strbuf.h"

static int add_file(struct archive *a, const char *name, const char *data, time_t mtime,
                    struct qvm_error *err)
{
    size_t len = strlen(data);
    struct archive_entry *e = archive_entry_new();
    if (!e)
        return qvm_err(err, ENOMEM, "cannot allocate an archive entry");
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, mtime, 0);
    int r = 0;
    if (archive_write_header(a, e) != ARCHIVE_OK)
        r = qvm_err(err, EIO, "cannot add %s: %s", name, archive_error_string(a));
    else if (len && archive_write_data(a, data, len) != (la_ssize_t)len)
        r = qvm_err(err, EIO, "cannot write %s: %s", name, archive_error_string(a));
    archive_entry_free(e);
    return r;
}

static int set_option(struct archive *a, const char *key, const char *value,
                      struct qvm_error *err)
{
    if (archive_write_set_format_option(a, "iso9660", key, value) != ARCHIVE_OK)
        return qvm_err(err, EINVAL, "libarchive rejects iso9660 option %s: %s", key,
                       archive_error_string(a));
    return 0;
}

/* Writes the ISO to the open FD. */
static int write_iso(int fd, const char *user_data, const char *meta_data,
                     const char *network_config, struct qvm_error *err)
{
    struct archive *a = archive_write_new();
    if (!a)
        return qvm_err(err, ENOMEM, "cannot allocate a libarchive writer");
    int r = 0;
    if (archive_write_set_format_iso9660(a) != ARCHIVE_OK) {
        r = qvm_err(err, EIO, "libarchive has no ISO 9660 writer: %s", archive_error_string(a));
        goto out;
    }
    /* cloud-init looks the seed up by this label (blkid LABEL=cidata).
     * Joliet and Rock Ridge keep the lower-case, hyphenated names that
     * plain ISO 9660 would turn into USER_DAT;1. Rock Ridge "strict" keeps
     * the entries' own mode and owner; libarchive's default ("useful")
     * rewrites every file to 0444. */
    if ((r = set_option(a, "volume-id", "cidata", err)) < 0 ||
        (r = set_option(a, "joliet", "1", err)) < 0 ||
        (r = set_option(a, "rockridge", "strict", err)) < 0)
        goto out;
    if (archive_write_open_fd(a, fd) != ARCHIVE_OK) {
        r = qvm_err(err, EIO, "cannot start the image: %s", archive_error_string(a));
        goto out;
    }
    /* The files carry the time of writing: the volume descriptor holds the
     * creation time anyway, so a fixed mtime would not make the image
     * reproducible, and a 1970 date only confuses whoever lists the seed. */
    time_t now = time(NULL);
    if ((r = add_file(a, "user-data", user_data, now, err)) < 0 ||
        (r = add_file(a, "meta-data", meta_data, now, err)) < 0 ||
        (network_config && (r = add_file(a, "network-config", network_config, now, err)) < 0))
        goto out;
    /* The ISO writer lays the image out only here. */
    if (archive_write_close(a) != ARCHIVE_OK)
        r = qvm_err(err, EIO, "cannot finish the image: %s", archive_error_string(a));
out:
    archive_write_free(a);
    return r;
}

struct seed_docs {
    const char *user_data, *meta_data, *network_config;
};

static int fill_seed(int fd, const char *tmp_path, void *ctx, struct qvm_error *err)
{
    const struct seed_docs *d = ctx;
    return write_iso(fd, d->user_data, d->meta_data, d->network_config, err);
}

int qvm_seed_write(const char *path, const char *user_data, const char *meta_data,
                   const char *network_config, struct qvm_error *err)
{
    if (!user_data || !meta_data)
        return qvm_err(err, EINVAL, "cannot write NoCloud seed %s: user-data and meta-data "
                       "are required", path);
    struct seed_docs docs = { user_data, meta_data, network_config };
    int r = qvm_write_atomic_with(path, 0644, fill_seed, &docs, err);
    if (r < 0)
        qvm_err_wrap(err, "cannot write NoCloud seed %s", path);
    return r;
}
