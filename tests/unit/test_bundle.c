/* test_bundle.c - the pieces of a VM bundle that need no pool: the zstd
 * channel inside qvm's framing (round trip over several frames; cut short,
 * flipped byte, trailing data refused), the block delta through a reader
 * and writer (holes stay holes, bytes equal), and the renamed copy's qvm
 * file and seed. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bundle.h"
#include "core/bundle_stream.h"
#include "storage/blockdelta.h"
#include "util/fsutil.h"
#include "util/strbuf.h"
#include "test.h"

static char dir[] = "/tmp/qvm-test-bundle.XXXXXX";

static char *path(const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

/* Writes a bundle of LEN pseudo-random-ish bytes (compressible in part). */
static char *payload(size_t len)
{
    char *p = xmalloc(len);
    unsigned x = 12345;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (i / 4096) % 2 ? (char)(x >> 16) : (char)(i & 7);
    }
    return p;
}

static int write_bundle(const char *file, const char *data, size_t len)
{
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    json_object *h = json_object_new_object();
    json_object_object_add(h, "name", json_object_new_string("t"));
    struct qvm_bundle_writer w;
    struct qvm_error err = { 0 };
    int r = qvm_bundle_writer_open(&w, fd, h, &err);
    for (size_t off = 0; r == 0 && off < len; off += 100000)
        r = qvm_bundle_write(&w, data + off, len - off < 100000 ? len - off : 100000, &err);
    if (r == 0)
        r = qvm_bundle_writer_finish(&w, &err);
    qvm_bundle_writer_release(&w);
    json_object_put(h);
    close(fd);
    return r;
}

/* Reads WANT bytes and finishes; returns the error message ("" if none). */
static const char *read_bundle(const char *file, const char *expect, size_t want,
                               struct qvm_error *err)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    json_object *h = NULL;
    struct qvm_bundle_reader rd;
    int r = qvm_bundle_reader_open(&rd, fd, &h, err);
    char *buf = xmalloc(want ? want : 1);
    if (r == 0)
        r = qvm_bundle_read(&rd, buf, want, err);
    if (r == 0 && expect && memcmp(buf, expect, want) != 0)
        r = qvm_err(err, EINVAL, "content differs");
    if (r == 0)
        r = qvm_bundle_reader_finish(&rd, err);
    qvm_bundle_reader_release(&rd);
    json_object_put(h);
    free(buf);
    close(fd);
    return r == 0 ? "" : err->msg;
}

static void test_channel(void)
{
    size_t len = 3u << 20;
    char *data = payload(len);
    char *f = path("b.qvmb");
    CHECK(write_bundle(f, data, len) == 0, "a 3 MiB payload is written");
    struct stat st;
    stat(f, &st);
    CHECK(st.st_size < (off_t)len, "compressed: %lld bytes for %zu", (long long)st.st_size, len);
    struct qvm_error err = { 0 };
    CHECK_STR(read_bundle(f, data, len, &err), "", "read back byte-equal, checksum checked");
    err = (struct qvm_error){ 0 };
    CHECK_CONTAINS(read_bundle(f, NULL, len + 1, &err), "ends early", "reading past the end is refused");
    err = (struct qvm_error){ 0 };
    CHECK_CONTAINS(read_bundle(f, NULL, len - 1, &err), "more than its manifest",
                   "unread data at the end is refused");

    char *text = NULL;
    size_t n;
    qvm_read_file(f, 64u << 20, &text, &n, NULL);
    char *g = path("cut.qvmb");
    qvm_write_file_atomic(g, text, n - 5, 0644, NULL);
    err = (struct qvm_error){ 0 };
    CHECK_CONTAINS(read_bundle(g, NULL, len, &err), "cut short", "a stream cut in its checksum is refused");
    text[n / 2] ^= 0x10;
    qvm_write_file_atomic(g, text, n, 0644, NULL);
    err = (struct qvm_error){ 0 };
    const char *msg = read_bundle(g, data, len, &err);
    CHECK(*msg != '\0', "a flipped byte is refused: %s", msg);
    memcpy(text, "QVMSTREAM 1\n", 12);
    qvm_write_file_atomic(g, text, n, 0644, NULL);
    err = (struct qvm_error){ 0 };
    CHECK_CONTAINS(read_bundle(g, NULL, len, &err), "not a qvm VM bundle", "a wrong magic is refused");
    free(text);
    free(g);
    free(f);
    free(data);
}

struct membuf {
    struct strbuf sb;
    size_t pos;
};

static int mem_write(void *ctx, const void *buf, size_t len, struct qvm_error *err)
{
    strbuf_add(&((struct membuf *)ctx)->sb, buf, len);
    return 0;
}

static int mem_read(void *ctx, void *buf, size_t len, struct qvm_error *err)
{
    struct membuf *m = ctx;
    if (m->sb.len - m->pos < len)
        return qvm_err(err, EPIPE, "ends early");
    memcpy(buf, m->sb.buf + m->pos, len);
    m->pos += len;
    return 0;
}

static void test_blockdelta(void)
{
    char *src = path("src.raw"), *dst = path("dst.raw");
    int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(ftruncate(fd, 64 << 20) == 0, "a 64 MiB sparse source");
    char *data = payload(1 << 20);
    CHECK(pwrite(fd, data, 1 << 20, 5 << 20) == 1 << 20 && pwrite(fd, "x", 1, (64 << 20) - 1) == 1,
          "1 MiB of data at 5 MiB and one byte at the end");
    close(fd);
    struct membuf m = { STRBUF_INIT, 0 };
    struct qvm_blockdelta_io io = { .write = mem_write, .read = mem_read, .ctx = &m };
    struct qvm_error err = { 0 };
    CHECK(qvm_blockdelta_encode(src, NULL, &io, &err) == 0, "encoded: %s", err.msg);
    CHECK(m.sb.len < (2u << 20), "holes are left out (%zu bytes)", m.sb.len);
    fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    uint64_t size = 0;
    CHECK(qvm_blockdelta_decode(&io, fd, dst, &size, &err) == 0 && size == 64u << 20,
          "decoded into a new file: %s", err.msg);
    close(fd);
    char *a = NULL, *b = NULL;
    size_t la, lb;
    qvm_read_file(src, 128u << 20, &a, &la, NULL);
    qvm_read_file(dst, 128u << 20, &b, &lb, NULL);
    CHECK(la == lb && memcmp(a, b, la) == 0, "byte-equal");
    struct stat st;
    stat(dst, &st);
    CHECK((uint64_t)st.st_blocks * 512 < (4u << 20), "still sparse (%lld KiB allocated)",
          (long long)st.st_blocks / 2);
    free(a);
    free(b);
    strbuf_release(&m.sb);
    free(data);
    free(src);
    free(dst);
}

static void test_rename(void)
{
    static const char yaml[] =
        "# a comment that stays\n"
        "qvm: vm\n"
        "name: web1   # the name\n"
        "disk:\n  zvol:\n    base: deb\n"
        "---\n"
        "qvm: user-data\n"
        "hostname: web1\n"
        "fqdn: web1.example.org\n"
        "---\n"
        "qvm: meta-data\n"
        "instance-id: web1-1\n";
    char *seed = path("seed.iso"), *ny = NULL, *iid = NULL, *host = NULL;
    struct qvm_error err = { 0 };
    int r = qvm_bundle_renamed_seed(yaml, strlen(yaml), "web2", seed, &ny, &iid, &host, &err);
    CHECK(r == 0, "a renamed copy's qvm file and seed: %s", err.msg);
    if (r < 0)
        return;
    CHECK_CONTAINS(ny, "name: \"web2\"   # the name\n", "the name is replaced in place");
    CHECK_CONTAINS(ny, "# a comment that stays\n", "every other byte stays");
    CHECK(strncmp(iid, "web2-", 5) == 0 && strlen(iid) == 21, "a new instance-id: %s", iid);
    CHECK_STR(host, "web2", "the host name is the new name");
    char *iso = NULL;
    size_t n;
    qvm_read_file(seed, 16u << 20, &iso, &n, NULL);
    char *want = xasprintf("instance-id: \"%s\"", iid);
    CHECK(iso && memmem(iso, n, want, strlen(want)), "the seed's meta-data has it");
    CHECK(iso && memmem(iso, n, "local-hostname: \"web2\"", 22), "and local-hostname web2");
    CHECK(iso && memmem(iso, n, "hostname: \"web2\"", 16) && memmem(iso, n, "fqdn: \"web2.example.org\"", 24),
          "user-data's hostname and fqdn are renamed, keeping the domain");
    CHECK(iso && !memmem(iso, n, "web1", 4), "nothing names web1 any more");
    free(want);
    free(iso);
    free(ny);
    free(iid);
    free(host);
    free(seed);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_channel();
    test_blockdelta();
    test_rename();
    qvm_rm_rf(dir, NULL);
    return test_done();
}
