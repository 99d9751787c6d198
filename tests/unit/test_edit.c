/* test_edit.c - what qvm edit, resize and autostart build on: sizes at their
 * edges (qvm_spec_parse_size, qvm_spec_format_gib and disk.size reading
 * back what is written), in-place rewrites of a qvm file (qvm_spec_set_key)
 * that parse to what was asked and keep every other byte, the cloud-init
 * comparison, the autostart key, and the exact qemu-img resize argv. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"
#include "storage/storage.h"
#include "util/strbuf.h"
#include "test.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

static void size_ok(const char *text, uint64_t want, bool want_rel)
{
    uint64_t got = 0;
    bool rel = !want_rel;
    struct qvm_error e = { 0 };
    int r = qvm_spec_parse_size(text, &got, &rel, &e);
    CHECK(r == 0 && got == want && rel == want_rel, "size '%s' is %llu bytes%s", text,
          (unsigned long long)want, want_rel ? ", relative" : "");
    if (r < 0 || got != want)
        printf("#   r=%d got=%llu msg=%s\n", r, (unsigned long long)got, e.msg);
}

static void size_bad(const char *text, int code, const char *msg)
{
    uint64_t got = 0;
    struct qvm_error e = { 0 };
    int r = qvm_spec_parse_size(text, &got, NULL, &e);
    CHECK(r == -code, "size '%s' is refused (%s)", text, strerror(code));
    CHECK_CONTAINS(e.msg, msg, "size '%s': message", text);
}

static void test_sizes(void)
{
    size_ok("20", 20 * GIB, false);
    size_ok("20G", 20 * GIB, false);
    size_ok("20GiB", 20 * GIB, false);
    size_ok("20GB", 20 * GIB, false);
    size_ok("20g", 20 * GIB, false);
    size_ok("+5G", 5 * GIB, true);
    size_ok("0.5", 512 * MIB, false);
    size_ok(".5G", 512 * MIB, false);
    size_ok("512M", 512 * MIB, false);
    size_ok("1M", MIB, false);
    size_ok("1.5T", 1536 * GIB, false);
    size_ok("64T", 65536 * GIB, false);
    size_ok("65536", 65536 * GIB, false);
    size_ok("0.1", 103 * MIB, false);                      /* rounded up to a whole MiB, as disk.size */
    size_ok("0.0009765625", MIB, false);                   /* exactly 1 MiB: ten fraction digits */
    size_ok("0.0000000001", MIB, false);                   /* the smallest fraction: up to 1 MiB */
    size_ok("0.5M", MIB, false);
    size_ok("+1M", MIB, true);
}

static void test_size_errors(void)
{
    size_bad("", EINVAL, "invalid size ''");
    size_bad("+", EINVAL, "invalid size");
    size_bad("G", EINVAL, "invalid size");
    size_bad("20.", EINVAL, "invalid size");
    size_bad("-5G", EINVAL, "invalid size");
    size_bad("5K", EINVAL, "invalid size");
    size_bad("5 G", EINVAL, "invalid size");
    size_bad("5Gx", EINVAL, "invalid size");
    size_bad("1e3", EINVAL, "invalid size");
    size_bad("0x10", EINVAL, "invalid size");
    size_bad("0.00000000001", EINVAL, "invalid size");     /* eleven fraction digits */
    size_bad("1234567890", EINVAL, "invalid size");        /* ten integer digits */
    size_bad("0", ERANGE, "is zero");
    size_bad("+0G", ERANGE, "to grow by");
    size_bad("0.0M", ERANGE, "is zero");
    size_bad("65536.001", ERANGE, "too large");
    size_bad("65T", ERANGE, "too large");
    size_bad("67108865M", ERANGE, "too large");
    size_bad("999999999M", ERANGE, "too large");
    size_bad("999999999T", ERANGE, "too large");           /* would overflow 64 bits */
}

static void gib_is(uint64_t bytes, const char *want)
{
    char buf[32];
    qvm_spec_format_gib(bytes, buf, sizeof buf);
    CHECK_STR(buf, want, "%llu bytes are written %s GiB", (unsigned long long)bytes, want);
}

/* Every size qvm resize may record reads back as the same bytes through
 * disk.size, the parser the qvm file uses. */
static void test_gib_round_trip(void)
{
    gib_is(20 * GIB, "20");
    gib_is(20 * GIB + 512 * MIB, "20.5");
    gib_is(MIB, "0.0009765625");
    gib_is(GIB + 3 * MIB, "1.0029296875");
    gib_is(65536 * GIB, "65536");
    gib_is(GIB + 1, "1.0009765625");       /* not a whole MiB: rounded up first */
    size_t bad = 0;
    for (uint64_t mib = 1; mib <= 4 * 1024; mib++) {
        char v[32];
        qvm_spec_format_gib(mib * MIB, v, sizeof v);
        char *text = xasprintf("qvm: vm\nname: t\ndisk:\n  size: %s\n  zvol:\n    base: img\n"
                               "---\nqvm: user-data\n---\nqvm: meta-data\ninstance-id: t\n", v);
        struct qvm_vm_spec s;
        struct qvm_error e = { 0 };
        if (qvm_spec_parse("t.yaml", text, strlen(text), &s, &e) < 0 || s.disk.size_bytes != mib * MIB)
            bad++;
        else
            qvm_spec_release(&s);
        free(text);
    }
    CHECK(bad == 0, "disk.size reads back every size from 1 MiB to 4 GiB as written (%zu wrong)", bad);
}

#define FILE_A \
    "# my web server\n" \
    "qvm: vm\n" \
    "name: web1\n" \
    "memory: 1024      # MiB\n" \
    "vcpus: 1\n" \
    "network: user\n" \
    "disk:\n" \
    "  bus: virtio\n" \
    "  zvol:\n" \
    "    base: debian12\n" \
    "...\n" \
    "---\n" \
    "qvm: user-data\n" \
    "hostname: web1\n" \
    "---\n" \
    "qvm: meta-data\n" \
    "instance-id: web1-1\n"

static char *set_ok(const char *text, const char *key, const char *value, struct qvm_vm_spec *s)
{
    char *out = NULL;
    size_t len = 0;
    struct qvm_error e = { 0 };
    int r = qvm_spec_set_key("t.yaml", text, strlen(text), key, value, &out, &len, &e);
    CHECK(r == 0, "set %s=%s: %s", key, value, r == 0 ? "ok" : e.msg);
    if (r < 0)
        return NULL;
    r = qvm_spec_parse("t.yaml", out, len, s, &e);
    CHECK(r == 0, "set %s=%s: the result parses: %s", key, value, r == 0 ? "ok" : e.msg);
    if (r < 0) {
        printf("#   %s\n", out);
        free(out);
        return NULL;
    }
    return out;
}

static void test_set_key(void)
{
    struct qvm_vm_spec s;
    char *out = set_ok(FILE_A, "memory", "2048", &s);
    if (out) {
        CHECK(s.memory_mib == 2048, "memory replaced");
        CHECK(strstr(out, "memory: 2048      # MiB\n") != NULL, "in place: the comment after it is kept");
        char *want = xstrdup(FILE_A);
        char *p = strstr(want, "1024");
        memcpy(p, "2048", 4);
        CHECK_STR(out, want, "every other byte is as it was");
        free(want);
        qvm_spec_release(&s);
        free(out);
    }
    out = set_ok(FILE_A, "disk.size", "20.5", &s);
    if (out) {
        CHECK(s.disk.size_bytes == 20 * GIB + 512 * MIB, "disk.size added to the disk mapping");
        CHECK(strstr(out, "    base: debian12\n  size: 20.5\n...\n") != NULL,
              "the new key goes after the mapping's last entry, indented as its keys");
        qvm_spec_release(&s);
        free(out);
    }
    out = set_ok(FILE_A, "autostart", "true", &s);
    if (out) {
        CHECK(s.autostart, "autostart added to the vm document");
        CHECK(strstr(out, "    base: debian12\nautostart: true\n...\n") != NULL,
              "a top-level key goes at the end of the vm document, before its '...'");
        qvm_spec_release(&s);
        char *again = set_ok(out, "autostart", "false", &s);
        if (again) {
            CHECK(!s.autostart && strstr(again, "autostart: false\n") != NULL, "and set back in place");
            qvm_spec_release(&s);
            free(again);
        }
        free(out);
    }
    char *err_out = NULL;
    size_t len;
    struct qvm_error e = { 0 };
    int r = qvm_spec_set_key("t.yaml", FILE_A, strlen(FILE_A), "network.ssh-port", "2222", &err_out, &len, &e);
    CHECK(r == -EINVAL, "network is a scalar here: --set network.ssh-port is refused");
    CHECK_CONTAINS(e.msg, "t.yaml:6:10: key 'vm.network': is 'user', not a mapping",
                   "... naming file, line and column of the value");
    free(err_out);

    /* Flow mappings, nested keys made on the way, an empty value, CRLF. */
    const char *flow = "qvm: vm\nname: t\ndisk: {zvol: {base: img}}\n---\nqvm: user-data\n---\nqvm: meta-data\n";
    out = set_ok(flow, "disk.size", "4", &s);
    if (out) {
        CHECK(s.disk.size_bytes == 4 * GIB && strstr(out, "disk: {zvol: {base: img}, size: 4}\n"),
              "a key added to a flow mapping, inside its braces");
        qvm_spec_release(&s);
        free(out);
    }
    out = set_ok(flow, "network.ssh-port", "2222", &s);
    if (out) {
        CHECK(s.net.ssh_port == 2222 && strstr(out, "network: {ssh-port: 2222}\n"),
              "missing mappings are made on the way (network: {ssh-port: 2222})");
        qvm_spec_release(&s);
        free(out);
    }
    const char *empty = "qvm: vm\nname: t\nvcpus:\ndisk: {zvol: {base: img}}\n---\nqvm: user-data\n---\nqvm: meta-data\n";
    out = set_ok(empty, "vcpus", "3", &s);
    if (out) {
        CHECK(s.vcpus == 3 && strstr(out, "vcpus: 3\ndisk:"), "an empty value is filled after its ':'");
        qvm_spec_release(&s);
        free(out);
    }
    const char *crlf = "qvm: vm\r\nname: t\r\ndisk:\r\n  zvol:\r\n    base: img\r\n---\r\nqvm: user-data\r\n---\r\nqvm: meta-data\r\n";
    out = set_ok(crlf, "disk.size", "2", &s);
    if (out) {
        CHECK(s.disk.size_bytes == 2 * GIB && strstr(out, "    base: img\r\n  size: 2\r\n---"),
              "CRLF files get CRLF lines");
        qvm_spec_release(&s);
        free(out);
    }
    const char *noeol = "qvm: user-data\n---\nqvm: meta-data\n---\nqvm: vm\nname: t\ndisk:\n  zvol:\n    base: img";
    out = set_ok(noeol, "memory", "512", &s);
    if (out) {
        CHECK(s.memory_mib == 512 && strstr(out, "    base: img\nmemory: 512\n"),
              "a vm document last in a file without a final newline");
        qvm_spec_release(&s);
        free(out);
    }

    static const struct { const char *key, *value, *msg; } bad[] = {
        { "qvm", "x", "invalid key 'qvm'" },
        { "Memory", "1", "invalid key" },
        { "disk..size", "1", "invalid key" },
        { "memory", "", "invalid value ''" },
        { "memory", "1 # x", "invalid value" },
        { "memory", "[1]", "invalid value" },
        { "memory", "-1", "invalid value" },
        { "name", "a:", "invalid value" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *o = NULL;
        memset(&e, 0, sizeof e);
        r = qvm_spec_set_key("t.yaml", FILE_A, strlen(FILE_A), bad[i].key, bad[i].value, &o, &len, &e);
        CHECK(r == -EINVAL, "--set %s=%s is refused", bad[i].key, bad[i].value);
        CHECK_CONTAINS(e.msg, bad[i].msg, "... saying %s", bad[i].msg);
        free(o);
    }
    memset(&e, 0, sizeof e);
    const char *novm = "qvm: user-data\n---\nqvm: meta-data\n";
    r = qvm_spec_set_key("t.yaml", novm, strlen(novm), "memory", "1", &err_out, &len, &e);
    CHECK(r == -EINVAL && strstr(e.msg, "no vm document"), "a file without a vm document");
}

static void test_autostart_key(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e = { 0 };
    const char *t = "qvm: vm\nname: t\nautostart: yes\ndisk: {zvol: {base: img}}\n---\nqvm: user-data\n---\nqvm: meta-data\n";
    int r = qvm_spec_parse("t.yaml", t, strlen(t), &s, &e);
    CHECK(r == 0 && s.autostart, "autostart: yes");
    if (r == 0)
        qvm_spec_release(&s);
    t = "qvm: vm\nname: t\ndisk: {zvol: {base: img}}\n---\nqvm: user-data\n---\nqvm: meta-data\n";
    r = qvm_spec_parse("t.yaml", t, strlen(t), &s, &e);
    CHECK(r == 0 && !s.autostart, "autostart defaults to false");
    if (r == 0)
        qvm_spec_release(&s);
    t = "qvm: vm\nname: t\nautostart: always\ndisk: {zvol: {base: img}}\n---\nqvm: user-data\n---\nqvm: meta-data\n";
    r = qvm_spec_parse("t.yaml", t, strlen(t), &s, &e);
    CHECK(r == -EINVAL, "autostart: always is refused");
    CHECK_CONTAINS(e.msg, "t.yaml:3:12: key 'vm.autostart': expected a boolean", "... with its location");
}

static void test_cloud_init_same(void)
{
    const char *b = FILE_A;
    char *c = xasprintf("%s", FILE_A);
    memcpy(strstr(c, "1024"), "4096", 4);
    bool same = false;
    const char *kind = NULL;
    struct qvm_error e = { 0 };
    int r = qvm_spec_same_cloud_init(b, strlen(b), c, strlen(c), &same, &kind, &e);
    CHECK(r == 0 && same, "a change in the vm document leaves the cloud-init documents the same");
    free(c);
    c = xasprintf("%s", FILE_A);
    memcpy(strstr(c, "web1-1"), "web1-2", 6);
    r = qvm_spec_same_cloud_init(b, strlen(b), c, strlen(c), &same, &kind, &e);
    CHECK(r == 0 && !same && kind && strcmp(kind, "meta-data") == 0, "a changed instance-id: meta-data differs");
    free(c);
    c = xasprintf("%s---\nqvm: network-config\nversion: 2\n", FILE_A);
    r = qvm_spec_same_cloud_init(b, strlen(b), c, strlen(c), &same, &kind, &e);
    CHECK(r == 0 && !same && kind && strcmp(kind, "network-config") == 0, "an added network-config differs");
    free(c);
}

static void test_resize_argv(void)
{
    const char *argv[8];
    char sizebuf[24];
    qvm_storage_argv_qcow2_resize(argv, "/p/vms/a/disk0.qcow2", 21474836480ull, sizebuf);
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; argv[i]; i++)
        strbuf_addf(&sb, "%s%s", i ? " " : "", argv[i]);
    CHECK_STR(sb.buf, "qemu-img resize -q -f qcow2 /p/vms/a/disk0.qcow2 21474836480",
              "qcow2 grow: exact qemu-img argv");
    CHECK(argv[7] == NULL, "argv is NULL-terminated");
    strbuf_release(&sb);
}

int main(void)
{
    test_sizes();
    test_size_errors();
    test_gib_round_trip();
    test_set_key();
    test_autostart_key();
    test_cloud_init_same();
    test_resize_argv();
    return test_done();
}
