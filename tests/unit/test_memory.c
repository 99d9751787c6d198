/* test_memory.c - memory admission and the ZFS ARC arithmetic at their
 * edges (core/memory.h, core/arc.h), and the ARC files against a tree made
 * here. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/arc.h"
#include "core/memory.h"
#include "util/fsutil.h"
#include "util/strbuf.h"
#include "test.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

static void test_parse(void)
{
    struct qvm_error err = { 0 };
    uint64_t v = 1;
    CHECK(qvm_memory_parse_size("2G", &v, &err) == 0 && v == 2 * GIB, "2G is 2 GiB");
    CHECK(qvm_memory_parse_size("2048", &v, &err) == 0 && v == 2048 * MIB,
          "a plain number is MiB, as the qvm file's memory");
    CHECK(qvm_memory_parse_size("512M", &v, &err) == 0 && v == 512 * MIB, "512M");
    CHECK(qvm_memory_parse_size("1.5GiB", &v, &err) == 0 && v == 1536 * MIB, "1.5GiB");
    CHECK(qvm_memory_parse_size("1T", &v, &err) == 0 && v == 1024 * GIB, "1T");
    CHECK(qvm_memory_parse_size("0", &v, &err) == 0 && v == 0, "0 is a valid reserve");
    CHECK(qvm_memory_parse_size("0.1", &v, &err) == 0 && v == MIB, "a fraction of a MiB rounds up");
    CHECK(qvm_memory_parse_size("2X", &v, &err) == -EINVAL, "an unknown unit is refused");
    CHECK_CONTAINS(err.msg, "invalid size '2X'", "the error names the value");
    CHECK(qvm_memory_parse_size("", &v, &err) == -EINVAL, "empty is refused");
    CHECK(qvm_memory_parse_size("-1G", &v, &err) == -EINVAL, "negative is refused");
    CHECK(qvm_memory_parse_size("65T", &v, &err) == -ERANGE, "more than 64 TiB is refused");
    unsigned pct = 7;
    CHECK(qvm_memory_parse_share("20%", &pct, &err) == 0 && pct == 20, "20%%");
    CHECK(qvm_memory_parse_share("0", &pct, &err) == 0 && pct == 0, "0");
    CHECK(qvm_memory_parse_share("100%", &pct, &err) == 0 && pct == 100, "100%%");
    CHECK(qvm_memory_parse_share("101%", &pct, &err) == -ERANGE, "101%% is refused");
    CHECK(qvm_memory_parse_share("2.5%", &pct, &err) == -EINVAL, "fractions are refused");
    CHECK(qvm_memory_parse_share("%", &pct, &err) == -EINVAL, "no number is refused");
}

static void test_format(void)
{
    char b[32];
    qvm_memory_format(0, b, sizeof b);
    CHECK_STR(b, "0 MiB", "zero");
    qvm_memory_format(512 * MIB, b, sizeof b);
    CHECK_STR(b, "512 MiB", "below a GiB in MiB");
    qvm_memory_format(2 * GIB, b, sizeof b);
    CHECK_STR(b, "2 GiB", "whole GiB without a fraction");
    qvm_memory_format(24684084ull * 1024, b, sizeof b);
    CHECK_STR(b, "23.5 GiB", "this host's MemTotal, rounded down to a tenth");
    qvm_memory_format(2 * GIB - 1, b, sizeof b);
    CHECK_STR(b, "1.9 GiB", "never rounded up");
}

static char *tmpdir;

static char *write_tmp(const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", tmpdir, name);
    char *dir = xstrdup(p);
    *strrchr(dir, '/') = '\0';
    qvm_mkdir_p(dir, 0755, NULL);
    free(dir);
    qvm_write_file_atomic(p, text, strlen(text), 0644, NULL);
    return p;
}

static void test_meminfo(void)
{
    struct qvm_error err = { 0 };
    uint64_t v = 0;
    char *p = write_tmp("meminfo", "MemTotal:       24684084 kB\nMemFree:        22244208 kB\n");
    CHECK(qvm_meminfo_total(p, &v, &err) == 0 && v == 24684084ull * 1024, "MemTotal in bytes");
    free(p);
    p = write_tmp("meminfo2", "MemFree:        22244208 kB\n");
    CHECK(qvm_meminfo_total(p, &v, &err) == -EINVAL, "no MemTotal line is an error");
    CHECK_CONTAINS(err.msg, "no MemTotal", "which says so");
    free(p);
    p = write_tmp("meminfo3", "MemTotal:       24684084 MB\n");
    CHECK(qvm_meminfo_total(p, &v, &err) == -EINVAL, "a unit other than kB is refused");
    free(p);
    CHECK(qvm_meminfo_total("/proc/meminfo", &v, &err) == 0 && v > 64 * MIB,
          "the real /proc/meminfo");
}

static void test_admission(void)
{
    struct qvm_mem_vm vms[] = {
        { .name = "a", .memory_mib = 8192, .bytes = 8192 * MIB + 128 * MIB },
        { .name = "b", .memory_mib = 8192, .bytes = 8192 * MIB + 128 * MIB },
        { .name = "c", .memory_mib = 3584, .bytes = 3584 * MIB + 128 * MIB },
    };
    struct qvm_mem_budget b = {
        .total = 24 * GIB, .reserve = 2 * GIB, .overhead = 128 * MIB,
        .vms = vms, .nvms = 3, .committed = 20 * GIB,
    };
    struct qvm_error err = { 0 };
    CHECK(qvm_memory_free(&b) == 2 * GIB, "free = total - reserve - committed");
    CHECK(qvm_memory_check(&b, "x", 4096, false, &err) == -ENOMEM, "4 GiB does not fit in 2 GiB");
    CHECK_STR(err.msg, "cannot start 'x' (4096 MiB + 128 MiB QEMU overhead): host has 24 GiB, "
              "reserve 2 GiB, running VMs use 20 GiB (a, b, c); 2 GiB free (--force starts it "
              "anyway)", "the refusal gives every number and the running VMs");
    CHECK(qvm_memory_check(&b, "x", 1920, false, &err) == 0, "exactly the free memory fits");
    CHECK(qvm_memory_check(&b, "x", 1921, false, &err) == -ENOMEM, "one MiB more does not");
    b.tcg_overhead = GIB;
    CHECK(qvm_memory_check(&b, "x", 896, true, &err) == 0 &&
          qvm_memory_check(&b, "x", 897, true, &err) == -ENOMEM,
          "under TCG the translation cache counts too");
    CHECK_CONTAINS(err.msg, "(897 MiB + 1.1 GiB QEMU overhead with TCG)", "and is named");
    CHECK(qvm_memory_overhead(&b, false) == 128 * MIB && qvm_memory_overhead(&b, true) ==
          128 * MIB + GIB, "overhead: base, or base + TCG cache");
    CHECK(qvm_memory_tcg_default(24684084ull * 1024) == GIB, "TCG cache default: 1 GiB ...");
    CHECK(qvm_memory_tcg_default(4 * GIB) == 512 * MIB, "... or an eighth of a smaller host");
    CHECK(qvm_memory_tcg_default(4 * GIB + 8) == 513 * MIB, "rounded up to a MiB");
    struct qvm_mem_budget empty = { .total = 4 * GIB, .reserve = 8 * GIB, .overhead = 128 * MIB };
    CHECK(qvm_memory_free(&empty) == 0, "a reserve larger than RAM leaves nothing (no underflow)");
    CHECK(qvm_memory_check(&empty, "y", 64, false, &err) == -ENOMEM, "and admits nothing");
    CHECK_CONTAINS(err.msg, "reserve 8 GiB, no VMs running; 0 MiB free", "no VMs is said so");
    struct qvm_mem_budget over = b;
    over.committed = 30 * GIB;      /* --force made it so */
    CHECK(qvm_memory_free(&over) == 0, "overcommitted: 0 free, not a wrapped number");
    struct qvm_mem_budget zero = { .total = 4 * GIB, .overhead = 0 };
    CHECK(qvm_memory_check(&zero, "z", 4096, false, &err) == 0, "reserve 0, overhead 0: all of it fits");
    struct qvm_mem_vm many[12];
    for (size_t i = 0; i < 12; i++)
        many[i] = (struct qvm_mem_vm){ .name = "v", .memory_mib = 64, .bytes = 64 * MIB };
    struct qvm_mem_budget m = { .total = GIB, .reserve = 0, .vms = many, .nvms = 12,
                                .committed = 768 * MIB };
    CHECK(qvm_memory_check(&m, "w", 1024, false, &err) == -ENOMEM, "many VMs");
    CHECK_CONTAINS(err.msg, "v, v, v, v, v, v, v, v and 4 more)", "at most 8 names are listed");
}

static void test_arc_target(void)
{
    struct qvm_arc_input in = { .total = 32 * GIB, .reserve = 2 * GIB, .share_pct = 20 };
    /* No VMs: everything but the reserve. */
    CHECK(qvm_arc_target(&in) == 30 * GIB, "no VMs: total - reserve");
    in.committed = 20 * GIB;
    CHECK(qvm_arc_target(&in) == 10 * GIB, "VMs: total - VMs - reserve when above the share");
    in.committed = 28 * GIB;     /* avail 4 GiB, give 2 GiB, 20% = 819.2 MiB */
    CHECK(qvm_arc_target(&in) == 2 * GIB, "the larger of the two");
    in.reserve = 4 * GIB;        /* give 0: the share keeps 20% of 4 GiB */
    CHECK(qvm_arc_target(&in) == 819 * MIB, "reserve eats the rest: 20%% of non-VM memory, "
          "rounded down to a MiB");
    in.reserve = 64 * GIB;
    CHECK(qvm_arc_target(&in) == 819 * MIB, "reserve larger than RAM: the share still holds");
    in.committed = 32 * GIB;
    CHECK(qvm_arc_target(&in) == QVM_ARC_MIN_MAX, "VMs use everything: ZFS's lowest limit "
          "(64 MiB), never 0 (0 would mean no limit)");
    in.committed = 40 * GIB;
    CHECK(qvm_arc_target(&in) == QVM_ARC_MIN_MAX, "VMs use more than everything (--force)");
    in.arc_min = 1 * GIB;
    CHECK(qvm_arc_target(&in) == GIB + MIB, "above c_min, which ZFS requires");
    in.arc_min = 0;

    struct qvm_arc_input s = { .total = 32 * GIB, .reserve = 2 * GIB, .committed = 16 * GIB };
    s.share_pct = 0;
    CHECK(qvm_arc_target(&s) == 14 * GIB, "share 0%%: total - VMs - reserve");
    s.reserve = 16 * GIB;
    CHECK(qvm_arc_target(&s) == QVM_ARC_MIN_MAX, "share 0%% and nothing left: the minimum");
    s.share_pct = 100;
    CHECK(qvm_arc_target(&s) == 16 * GIB, "share 100%%: all memory not given to VMs");
    s.committed = 0;
    CHECK(qvm_arc_target(&s) == 32 * GIB - MIB, "100%% of all memory is capped below total "
          "(ZFS ignores a limit of all memory)");

    /* Rounding: 1000.5 MiB not given to VMs, 20% = 200.1 MiB -> 200 MiB. */
    struct qvm_arc_input r = { .total = 4 * GIB, .committed = 4 * GIB - 1000 * MIB - 512 * 1024,
                               .reserve = 4 * GIB, .share_pct = 20 };
    CHECK(qvm_arc_target(&r) == 200 * MIB, "rounded down to a whole MiB");
    r.reserve = 500 * MIB;      /* give = 500.5 MiB -> 500 MiB */
    CHECK(qvm_arc_target(&r) == 500 * MIB, "total - VMs - reserve rounded down too");

    struct qvm_arc_input a = { .total = 32 * GIB, .reserve = 2 * GIB, .committed = 20 * GIB,
                               .share_pct = 20, .admin = 4 * GIB };
    CHECK(qvm_arc_target(&a) == 4 * GIB, "the administrator's lower limit is kept");
    a.admin = 16 * GIB;
    CHECK(qvm_arc_target(&a) == 10 * GIB, "a higher administrator's limit is lowered");
    a.admin = 32 * MIB;
    CHECK(qvm_arc_target(&a) == 32 * MIB, "even below ZFS's minimum: it is the admin's own");
    CHECK(qvm_arc_floor(0) == 64 * MIB && qvm_arc_floor(768 * MIB) == 769 * MIB &&
          qvm_arc_floor(768 * MIB + 5) == 769 * MIB, "the floor: 64 MiB, or the MiB above c_min");
}

static uint64_t read_u64(const char *path)
{
    char *d = NULL;
    size_t l;
    if (qvm_read_file(path, 64, &d, &l, NULL) < 0)
        return UINT64_MAX;
    uint64_t v = strtoull(d, NULL, 10);
    free(d);
    return v;
}

static void set_param(const char *path, const char *v)
{
    qvm_write_file_atomic(path, v, strlen(v), 0644, NULL);
}

static void test_arc_files(void)
{
    struct qvm_error err = { 0 };
    char *root = xasprintf("%s/fake", tmpdir);
    char *state = xasprintf("%s/arc.json", tmpdir);
    struct qvm_arc_input in = { .total = 32 * GIB, .reserve = 2 * GIB, .share_pct = 20 };
    struct qvm_arc_status st;

    CHECK(qvm_arc_apply(root, state, &in, 1, &st, &err) == 0 && !st.present,
          "no zfs module: nothing to do, no error");
    CHECK(!qvm_path_exists(state), "and no state file");

    char *param = write_tmp("fake/sys/module/zfs/parameters/zfs_arc_max", "0\n");
    free(write_tmp("fake/proc/spl/kstat/zfs/arcstats",
                   "13 1 0x01 123 33456 1234 5678\n"
                   "name                            type data\n"
                   "hits                            4    12345\n"
                   "c_min                           4    1073741824\n"
                   "c_max                           4    17179869184\n"));
    in.committed = 20 * GIB;
    CHECK(qvm_arc_apply(root, state, &in, 2, &st, &err) == 0 && st.present && st.managed,
          "first VMs: applied");
    CHECK(read_u64(param) == 10 * GIB, "zfs_arc_max lowered to total - VMs - reserve");
    CHECK(qvm_path_exists(state), "the administrator's value is remembered");
    CHECK(qvm_arc_status(root, state, &st, &err) == 0 && st.admin == 0 &&
          st.arc_min == GIB && st.arc_c_max == 16 * GIB, "status: admin 0, c_min, c_max");

    in.committed = 31 * GIB;
    qvm_arc_apply(root, state, &in, 3, &st, &err);
    CHECK(read_u64(param) == GIB + MIB, "more VMs: the floor above c_min");

    /* A qvm killed after saving the state but before writing: not the admin. */
    set_param(param, "10737418240\n");
    CHECK(qvm_arc_status(root, state, &st, &err) == 0 && st.admin == 0,
          "the value before qvm's last write is not taken for the administrator's");

    in.committed = 0;
    CHECK(qvm_arc_apply(root, state, &in, 0, &st, &err) == 0 && !st.managed,
          "no VM runs: restored");
    CHECK(read_u64(param) == 0, "the administrator's 0 (ZFS's default) is back");
    CHECK(!qvm_path_exists(state), "and the state file is gone");
    CHECK(qvm_arc_apply(root, state, &in, 0, &st, &err) == 0 && read_u64(param) == 0,
          "restoring twice changes nothing");

    /* An administrator's own limit, lower than qvm's target, stays. */
    set_param(param, "4294967296\n");
    in.committed = 8 * GIB;
    qvm_arc_apply(root, state, &in, 1, &st, &err);
    CHECK(read_u64(param) == 4 * GIB, "the admin's 4 GiB is lower than qvm's 22 GiB: kept");
    /* The administrator changes it while VMs run: that is the new value. */
    set_param(param, "34359738368\n");
    qvm_arc_apply(root, state, &in, 1, &st, &err);
    CHECK(read_u64(param) == 22 * GIB && st.admin == 32 * GIB,
          "a value written by someone else becomes the administrator's");
    qvm_arc_apply(root, state, &in, 0, &st, &err);
    CHECK(read_u64(param) == 32 * GIB, "and is what comes back when no VM runs");

    set_param(state, "not json");
    set_param(param, "0\n");
    CHECK(qvm_arc_apply(root, state, &in, 1, &st, &err) < 0, "a broken state file is an error");
    CHECK_CONTAINS(err.msg, "arc.json is not a JSON object", "naming it");
    CHECK(read_u64(param) == 0, "and the parameter is left alone");
    unlink(state);
    set_param(param, "lots\n");
    CHECK(qvm_arc_apply(root, state, &in, 1, &st, &err) < 0, "a parameter that is not a number");
    CHECK_CONTAINS(err.msg, "not a number of bytes", "is reported");
    free(param);
    free(root);
    free(state);
}

int main(void)
{
    char tmpl[] = "/tmp/qvm-test-memory.XXXXXX";
    tmpdir = mkdtemp(tmpl);
    if (!tmpdir)
        return 1;
    test_parse();
    test_format();
    test_meminfo();
    test_admission();
    test_arc_target();
    test_arc_files();
    qvm_rm_rf(tmpdir, NULL);
    return test_done();
}
