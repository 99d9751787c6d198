/* test_seed.c - the NoCloud seed ISO, checked with blkid and read back with
 * libarchive; and the base64 codec the guest agent client uses. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seed/seed.h"
#include "test.h"
#include "util/fsutil.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

/* From runtime/qga.c. */
char *qvm_base64_encode(const void *data, size_t len);
int qvm_base64_decode(const char *in, size_t in_len, char **ret, size_t *ret_len);

struct seed_file {
    const char *name;
    const char *want;
    char *got;
    int seen;
    unsigned perm;
};

/* Reads every regular file of the ISO at PATH into FILES; returns the
 * number of entries, or -1. */
static int read_iso(const char *path, struct seed_file *files, size_t nfiles)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_iso9660(a);
    if (archive_read_open_filename(a, path, 10240) != ARCHIVE_OK) {
        printf("# cannot open %s: %s\n", path, archive_error_string(a));
        archive_read_free(a);
        return -1;
    }
    int entries = 0;
    struct archive_entry *e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (archive_entry_filetype(e) != AE_IFREG)
            continue;   /* the root directory */
        entries++;
        for (size_t i = 0; i < nfiles; i++) {
            if (strcmp(files[i].name, name) != 0)
                continue;
            files[i].seen++;
            struct strbuf sb = STRBUF_INIT;
            char buf[4096];
            la_ssize_t n;
            while ((n = archive_read_data(a, buf, sizeof buf)) > 0)
                strbuf_add(&sb, buf, (size_t)n);
            free(files[i].got);
            files[i].got = strbuf_detach(&sb, NULL);
            files[i].perm = archive_entry_perm(e);
        }
    }
    archive_read_free(a);
    return entries;
}

static char *blkid_label(const char *path)
{
    const char *argv[] = { "blkid", "-o", "value", "-s", "LABEL", path, NULL };
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    if (qvm_run(argv, NULL, &res, &err) < 0) {
        printf("# blkid: %s\n", err.msg);
        qvm_run_result_release(&res);
        return NULL;
    }
    char *out = res.out;
    res.out = NULL;
    qvm_run_result_release(&res);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

static void test_seed(const char *dir)
{
    const char *user_data = "#cloud-config\nhostname: web1\nusers:\n  - name: alice\n"
                            "    ssh_authorized_keys: [\"ssh-ed25519 AAAA alice@x\"]\n";
    const char *meta_data = "instance-id: web1-0123abcd\nlocal-hostname: web1\n";
    const char *net = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n";
    char *path = qvm_path_join(dir, "seed.iso");
    struct qvm_error err = { 0 };

    int r = qvm_seed_write(path, user_data, meta_data, net, &err);
    CHECK(r == 0, "seed with network-config written (%s)", err.msg);
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    CHECK(!qvm_path_exists(tmp), "no temporary file left behind");
    free(tmp);
    struct stat st;
    int sr = stat(path, &st);
    CHECK(sr == 0 && st.st_size > 0 && st.st_size % 2048 == 0,
          "image is a whole number of 2 KiB sectors (%lld bytes)", (long long)st.st_size);

    char *label = blkid_label(path);
    CHECK_STR(label, "cidata", "blkid sees volume label cidata");
    free(label);

    struct seed_file files[] = {
        { "user-data", user_data, NULL, 0, 0 },
        { "meta-data", meta_data, NULL, 0, 0 },
        { "network-config", net, NULL, 0, 0 },
    };
    int n = read_iso(path, files, 3);
    CHECK(n == 3, "ISO holds exactly three entries (%d)", n);
    for (size_t i = 0; i < 3; i++) {
        CHECK(files[i].seen == 1, "%s present under its exact name", files[i].name);
        CHECK_STR(files[i].got, files[i].want, "%s content is exact", files[i].name);
        CHECK(files[i].perm == 0644, "%s has mode 0644 (%o)", files[i].name, files[i].perm);
        free(files[i].got);
    }

    /* Overwrite in place, without network-config. */
    r = qvm_seed_write(path, "#cloud-config\n", "instance-id: x\n", NULL, &err);
    CHECK(r == 0, "seed without network-config replaces the old one");
    struct seed_file files2[] = {
        { "user-data", "#cloud-config\n", NULL, 0, 0 },
        { "meta-data", "instance-id: x\n", NULL, 0, 0 },
        { "network-config", NULL, NULL, 0, 0 },
    };
    n = read_iso(path, files2, 3);
    CHECK(n == 2, "ISO holds two entries (%d)", n);
    CHECK_STR(files2[0].got, "#cloud-config\n", "user-data content");
    CHECK_STR(files2[1].got, "instance-id: x\n", "meta-data content");
    CHECK(files2[2].seen == 0, "no network-config entry");
    for (size_t i = 0; i < 3; i++)
        free(files2[i].got);

    /* Empty documents are still files. */
    r = qvm_seed_write(path, "", "", NULL, &err);
    CHECK(r == 0, "empty documents are written");
    struct seed_file files3[] = { { "user-data", "", NULL, 0, 0 }, { "meta-data", "", NULL, 0, 0 } };
    n = read_iso(path, files3, 2);
    CHECK(n == 2 && files3[0].seen && files3[1].seen, "both empty files present");
    free(files3[0].got);
    free(files3[1].got);
    free(path);
}

static void test_seed_errors(const char *dir)
{
    char *path = xasprintf("%s/no-such-dir/seed.iso", dir);
    struct qvm_error err = { 0 };
    int r = qvm_seed_write(path, "#cloud-config\n", "instance-id: x\n", NULL, &err);
    CHECK(r == -ENOENT, "missing directory gives -ENOENT (r=%d)", r);
    char *want = xasprintf("cannot write NoCloud seed %s: cannot create %s.tmp.", path, path);
    CHECK_CONTAINS(err.msg, want, "error names the seed path first");
    CHECK_CONTAINS(err.msg, "No such file or directory", "and the reason");
    free(want);
    free(path);

    qvm_err_clear(&err);
    path = qvm_path_join(dir, "seed2.iso");
    r = qvm_seed_write(path, NULL, "x", NULL, &err);
    CHECK(r == -EINVAL, "NULL user-data is refused");
    CHECK(!qvm_path_exists(path), "and nothing is written");
    free(path);
}

static void check_b64(const char *plain, size_t len, const char *enc)
{
    char *got = qvm_base64_encode(plain, len);
    CHECK_STR(got, enc, "base64 encode of %zu bytes", len);
    free(got);
    char *dec = NULL;
    size_t dlen = 0;
    int r = qvm_base64_decode(enc, strlen(enc), &dec, &dlen);
    CHECK(r == 0 && dlen == len && memcmp(dec, plain, len) == 0 && dec[len] == '\0',
          "base64 decode of '%s'", enc);
    free(dec);
}

static void test_base64(void)
{
    /* RFC 4648, section 10. */
    check_b64("", 0, "");
    check_b64("f", 1, "Zg==");
    check_b64("fo", 2, "Zm8=");
    check_b64("foo", 3, "Zm9v");
    check_b64("foob", 4, "Zm9vYg==");
    check_b64("fooba", 5, "Zm9vYmE=");
    check_b64("foobar", 6, "Zm9vYmFy");
    check_b64("\xff\xfe\x00\x01\x80", 5, "//4AAYA=");

    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char *enc = qvm_base64_encode(all, sizeof all);
    char *dec = NULL;
    size_t dlen = 0;
    int r = qvm_base64_decode(enc, strlen(enc), &dec, &dlen);
    CHECK(r == 0 && dlen == 256 && memcmp(dec, all, 256) == 0, "all 256 byte values round-trip");
    free(enc);
    free(dec);

    static const char *const bad[] = { "Zg=", "Zg", "Z===", "====", "Zm9v!A==", "Zg==Zg==",
                                       "Zm=v", "Zm9v\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dec = NULL;
        r = qvm_base64_decode(bad[i], strlen(bad[i]), &dec, &dlen);
        CHECK(r == -EINVAL && !dec,
              "invalid base64 #%zu (%zu bytes) is refused", i, strlen(bad[i]));
    }
}

int main(void)
{
    char tmpl[] = "/tmp/qvm-test-seed.XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL, "temporary directory");
    if (!dir)
        return test_done();
    test_seed(dir);
    test_seed_errors(dir);
    test_base64();
    qvm_rm_rf(dir, NULL);
    return test_done();
}
