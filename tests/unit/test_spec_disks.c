/* test_spec_disks.c - disk as a list: one image disk, empty data disks, their
 * names, pools and boot flag, and every error with its FILE:LINE:COL and key. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"
#include "util/strbuf.h"
#include "test.h"

#define TAIL "---\nqvm: user-data\n---\nqvm: meta-data\n"
#define HEAD "qvm: vm\nname: t\n"

static int parse(const char *vm, struct qvm_vm_spec *s, struct qvm_error *e)
{
    char *text = xasprintf("%s%s", vm, TAIL);
    memset(e, 0, sizeof *e);
    int r = qvm_spec_parse("t.yaml", text, strlen(text), s, e);
    free(text);
    return r;
}

static void expect_err(const char *vm, const char *want, const char *what)
{
    struct qvm_vm_spec s;
    struct qvm_error e;
    int r = parse(vm, &s, &e);
    CHECK(r == -EINVAL, "%s: fails with EINVAL (got %d)", what, r);
    if (r == 0)
        qvm_spec_release(&s);
    bool prefix = strncmp(e.msg, want, strlen(want)) == 0;
    CHECK(prefix, "%s: message", what);
    if (!prefix)
        printf("#   got:  '%s'\n#   want: '%s...'\n", e.msg, want);
}

static void test_single_mapping_unchanged(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e;
    int r = parse(HEAD "disk:\n  size: 8\n  zvol: {base: img}\n", &s, &e);
    CHECK(r == 0, "a single mapping parses (%s)", e.msg);
    if (r < 0)
        return;
    CHECK(s.ndata_disks == 0 && s.data_disks == NULL && s.image_disk_pos == 0,
          "a single mapping has no data disks");
    CHECK(s.disk.target_name == NULL && !s.disk.boot, "image disk name and boot flag as before");
    CHECK(qvm_spec_image_disk_boots(&s), "the image disk boots");
    qvm_spec_release(&s);
}

static void test_list(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e;
    int r = parse(HEAD "disk:\n"
                  "  - size: 8\n    zvol: {base: debian12@v2}\n"
                  "  - size: 2\n    pool: fast\n    bus: scsi\n    cache: none\n"
                  "  - {size: 0.5, name: logs}\n"
                  "  - size: 1\n", &s, &e);
    CHECK(r == 0, "a list of four disks parses (%s)", e.msg);
    if (r < 0)
        return;
    CHECK(s.image_disk_pos == 0, "the image disk is entry 0");
    CHECK_STR(s.disk.base, "debian12@v2", "image disk base");
    CHECK(s.disk.size_bytes == 8ull << 30, "image disk size");
    CHECK(s.disk.target_name == NULL, "image disk keeps its default name (disk0)");
    CHECK(s.ndata_disks == 3, "three data disks");
    if (s.ndata_disks == 3) {
        CHECK_STR(s.data_disks[0].target_name, "disk1", "first data disk named disk1");
        CHECK(s.data_disks[0].size_bytes == 2ull << 30, "disk1 is 2 GiB");
        CHECK_STR(s.data_disks[0].pool, "fast", "disk1 pool");
        CHECK_STR(s.data_disks[0].bus, "scsi", "disk1 bus");
        CHECK_STR(s.data_disks[0].cache, "none", "disk1 cache");
        CHECK(s.data_disks[0].base == NULL, "a data disk has no base");
        CHECK_STR(s.data_disks[1].target_name, "logs", "a named data disk");
        CHECK(s.data_disks[1].size_bytes == 512ull << 20, "logs is 0.5 GiB");
        CHECK_STR(s.data_disks[1].bus, "virtio", "bus defaults to virtio");
        CHECK_STR(s.data_disks[1].cache, "writeback", "cache defaults to writeback");
        CHECK(s.data_disks[1].pool == NULL, "pool defaults to the VM's (NULL)");
        CHECK_STR(s.data_disks[2].target_name, "disk3", "third data disk named disk3");
        CHECK(!s.data_disks[0].boot && !s.data_disks[1].boot && !s.data_disks[2].boot,
              "no data disk boots");
    }
    CHECK(qvm_spec_image_disk_boots(&s), "the first entry (the image disk) boots");
    qvm_spec_release(&s);
    CHECK(s.data_disks == NULL && s.ndata_disks == 0, "release frees the list");
}

static void test_boot(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e;
    int r = parse(HEAD "disk:\n  - size: 1\n  - {name: root, zvol: {base: img}}\n", &s, &e);
    CHECK(r == 0, "image disk second (%s)", e.msg);
    if (r == 0) {
        CHECK(s.image_disk_pos == 1, "image disk at entry 1");
        CHECK_STR(s.disk.target_name, "root", "list entry name names the image disk");
        CHECK(s.ndata_disks == 1 && s.data_disks[0].boot, "the first entry (a data disk) boots");
        CHECK(!qvm_spec_image_disk_boots(&s), "so the image disk does not");
        qvm_spec_release(&s);
    }
    r = parse(HEAD "disk:\n  - size: 1\n  - {boot: true, zvol: {base: img}}\n", &s, &e);
    CHECK(r == 0, "boot: true on the image disk (%s)", e.msg);
    if (r == 0) {
        CHECK(!s.data_disks[0].boot && qvm_spec_image_disk_boots(&s), "the image disk boots");
        qvm_spec_release(&s);
    }
    r = parse(HEAD "disk:\n  - {zvol: {base: img}}\n  - {size: 1, boot: yes}\n", &s, &e);
    CHECK(r == 0, "boot: yes on a data disk (%s)", e.msg);
    if (r == 0) {
        CHECK(s.data_disks[0].boot && !qvm_spec_image_disk_boots(&s), "the data disk boots");
        qvm_spec_release(&s);
    }
}

static void test_errors(void)
{
    expect_err(HEAD "disk:\n  - {zvol: {base: img}}\n  - {bus: virtio}\n",
               "t.yaml:5:5: key 'vm.disk[1]': missing key 'size'", "data disk without size");
    expect_err(HEAD "disk:\n  - {zvol: {base: img}}\n  - size: big\n",
               "t.yaml:5:11: key 'vm.disk[1].size': expected a size in GiB", "bad size names vm.disk[1].size");
    expect_err(HEAD "disk:\n  - {zvol: {base: img}}\n  - {size: 1, bus: usb}\n",
               "t.yaml:5:20: key 'vm.disk[1].bus': 'usb' is not supported", "bad bus");
    expect_err(HEAD "disk:\n  - {zvol: {base: img}}\n  - {size: 1, colour: red}\n",
               "t.yaml:5:15: key 'vm.disk[1].colour': unsupported option 'colour'", "unknown key");
    expect_err(HEAD "disk:\n  - {zvol: {base: img}}\n  - {size: 1, name: Big}\n",
               "t.yaml:5:21: key 'vm.disk[1].name': ", "invalid name");
    expect_err(HEAD "disk:\n  - {size: 1}\n  - {size: 2}\n",
               "t.yaml:4:3: key 'vm.disk': no disk has zvol", "no image disk");
    expect_err(HEAD "disk:\n  - {zvol: {base: img}}\n  - {zvol: {base: img2}}\n",
               "t.yaml:5:5: key 'vm.disk[1]': only one disk can have zvol", "two image disks");
    expect_err(HEAD "disk: []\n", "t.yaml:3:7: key 'vm.disk': expected at least one disk", "empty list");
    expect_err(HEAD "disk:\n  - {zvol: {base: img}}\n  - {size: 1, name: disk0}\n",
               "t.yaml:5:5: key 'vm.disk[1]': disk name 'disk0' is used twice (also vm.disk[0])",
               "a data disk named like the image disk");
    expect_err(HEAD "disk:\n  - {zvol: {base: img}, size: 1, boot: true}\n  - {size: 1, boot: true}\n",
               "t.yaml:5:5: key 'vm.disk[1]': only one disk can have boot: true (also vm.disk[0])",
               "two boot disks");
    expect_err(HEAD "disk:\n  - {name: a, zvol: {base: img, name: b}}\n",
               "t.yaml:4:39: key 'vm.disk[0].zvol.name': the disk's name is given twice",
               "name and zvol.name");
    expect_err(HEAD "disk:\n  - {zvol: {base: img}}\n  - {size: 1, boot: maybe}\n",
               "t.yaml:5:21: key 'vm.disk[1].boot': expected a boolean", "boot not a boolean");
    expect_err(HEAD "disk:\n  - {zvol: {base: img}}\n  - 5\n",
               "t.yaml:5:5: key 'vm.disk[1]': expected a mapping, got '5'", "entry not a mapping");
    expect_err(HEAD "disk:\n  zvol: {base: img}\n  boot: true\n",
               "t.yaml:5:3: key 'vm.disk.boot': unsupported option 'boot'", "boot only in a list");
    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, HEAD "disk:\n  - {zvol: {base: img}}\n");
    for (int i = 0; i < QVM_SPEC_MAX_DISKS; i++)
        strbuf_addstr(&sb, "  - {size: 1}\n");
    expect_err(sb.buf, "t.yaml:20:5: key 'vm.disk': too many disks (at most 16)", "17 disks");
    strbuf_release(&sb);
    strbuf_addstr(&sb, HEAD "disk:\n  - {zvol: {base: img}, bus: sata}\n");
    for (int i = 0; i < 6; i++)
        strbuf_addstr(&sb, "  - {size: 1, bus: ide}\n");
    expect_err(sb.buf, "t.yaml:4:3: key 'vm.disk': 7 disks on bus sata or ide: machine q35 has 6 SATA ports",
               "7 SATA disks on q35");
    strbuf_release(&sb);
    expect_err(HEAD "machine: pc\ndisk:\n  - {zvol: {base: img}, bus: ide}\n"
               "  - {size: 1, bus: ide}\n  - {size: 1, bus: ide}\n  - {size: 1, bus: ide}\n"
               "  - {size: 1, bus: ide}\n",
               "t.yaml:5:3: key 'vm.disk': 5 disks on bus ide: machine pc has 4 IDE places",
               "5 IDE disks on pc");
}

int main(void)
{
    test_single_mapping_unchanged();
    test_list();
    test_boot();
    test_errors();
    return test_done();
}
