/* test_domain_xml.c - the exact libvirt domain XML qvm defines, compared byte
 * for byte with tests/unit/golden/domain-*.xml. A change here is a change in
 * what libvirt runs: review the golden diff as such. QVM_GOLDEN_UPDATE=1
 * rewrites the golden files instead of comparing (then read the diff).
 *
 * The specs come from qvm files through the real parser, so the network
 * spellings (network=NAME, bridge: NAME) are covered on the way. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/domain_xml.h"
#include "spec/spec.h"
#include "test.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#define GOLDEN QVM_SOURCE_ROOT "/tests/unit/golden"

static const char *const docs_tail =
    "---\nqvm: user-data\nruncmd:\n  - [true]\n---\nqvm: meta-data\ninstance-id: x-1\n";

static int parse(const char *vm_doc, struct qvm_vm_spec *s)
{
    char *text = xasprintf("qvm: vm\n%s%s", vm_doc, docs_tail);
    struct qvm_error e = { 0 };
    int r = qvm_spec_parse("test.yaml", text, strlen(text), s, &e);
    if (r < 0)
        printf("#   parse: %s\n", e.msg);
    free(text);
    return r;
}

static struct qvm_domain_config cfg_for(const struct qvm_vm_spec *s, const char *bundle)
{
    static char disk[256], seedp[256], log[256];
    snprintf(disk, sizeof disk, "%s/disk0.qcow2", bundle);
    snprintf(seedp, sizeof seedp, "%s/seed.iso", bundle);
    snprintf(log, sizeof log, "%s/console.log", bundle);
    struct qvm_domain_config c = {
        .spec = s, .uuid = "6f1c9a52-3d4e-4b7a-9c1d-2e8f0a6b5c4d", .accel = "tcg",
        .pool = "default", .image = "debian12", .version = "v1", .disk_path = disk,
        .disk_format = "qcow2", .seed_path = seedp, .console_log = log,
        .mac = "52:54:00:ab:cd:ef", .ssh_port = 2222,
    };
    return c;
}

static void golden(const char *name, const struct qvm_domain_config *c)
{
    char *xml = NULL;
    struct qvm_error e = { 0 };
    int r = qvm_domain_xml(c, &xml, &e);
    CHECK(r == 0, "%s: the domain XML is built (%s)", name, r ? e.msg : "ok");
    if (r < 0)
        return;
    char *path = xasprintf("%s/%s.xml", GOLDEN, name);
    if (getenv("QVM_GOLDEN_UPDATE")) {
        CHECK(qvm_write_file_atomic(path, xml, strlen(xml), 0644, &e) == 0,
              "%s: golden file rewritten", name);
    } else {
        char *want = NULL;
        size_t len;
        r = qvm_read_file(path, 1 << 20, &want, &len, &e);
        CHECK(r == 0, "%s: golden file %s is there", name, path);
        bool same = r == 0 && len == strlen(xml) && memcmp(want, xml, len) == 0;
        CHECK(same, "%s: domain XML equals tests/unit/golden/%s.xml byte for byte", name, name);
        if (!same)
            printf("#   got:\n%s", xml);
        free(want);
    }
    /* What was written reads back: the adopt parser agrees with the writer. */
    struct qvm_domain_info info;
    r = qvm_domain_xml_parse(xml, &info, &e);
    CHECK(r == 0 && strcmp(info.name, c->spec->name) == 0 && strcmp(info.uuid, c->uuid) == 0 &&
              info.ndisks == (c->seed_path ? 2u : 1u) + (c->data_disks ? c->spec->ndata_disks : 0) &&
              strcmp(info.disks[c->data_disks ? c->spec->image_disk_pos : 0].path, c->disk_path) == 0 &&
              info.memory_kib == c->spec->memory_mib * 1024 && info.vcpus == c->spec->vcpus &&
              info.qvm_uuid && strcmp(info.qvm_uuid, c->uuid) == 0,
          "%s: parses back to the same name, UUID, disks, memory, vCPUs and metadata", name);
    if (r == 0)
        qvm_domain_info_release(&info);
    free(path);
    free(xml);
}

static void test_goldens(void)
{
    struct qvm_vm_spec s;
    const char *b = "/var/lib/qvm/pools/default/vms/web1";

    /* Defaults: user networking with the SSH port forwarded, TCG. */
    if (parse("name: web1\nmemory: 1024\nvcpus: 1\ndisk:\n  zvol:\n    base: debian12\n", &s) == 0) {
        struct qvm_domain_config c = cfg_for(&s, b);
        golden("domain-minimal", &c);
        /* No forwarded port: a plain libvirt user interface, no custom argv. */
        c.ssh_port = 0;
        golden("domain-user-noport", &c);
        qvm_spec_release(&s);
    }
    /* A zvol: a block device, raw, O_DIRECT with native AIO; KVM. */
    if (parse("name: db1\nmemory: 4096\nvcpus: 4\ncpu: host-passthrough\nnetwork: none\n"
              "disk:\n  cache: none\n  bus: scsi\n  zvol:\n    base: debian12\n", &s) == 0) {
        struct qvm_domain_config c = cfg_for(&s, "/tank/qvm/vms/db1");
        c.disk_path = "/dev/zvol/tank/qvm/vms/db1/disk0";
        c.disk_format = "raw";
        c.disk_is_block = true;
        c.accel = "kvm";
        c.ssh_port = 0;
        c.pool = "tank";
        golden("domain-zvol", &c);
        qvm_spec_release(&s);
    }
    /* A host bridge, virt-install's mapping spelling; machine pc, e1000. */
    if (parse("name: br1\nmachine: pc\nnetwork:\n  bridge: br0\n  model: e1000\n"
              "  mac: 52:54:00:01:02:03\nboot: network,hd\n"
              "disk:\n  bus: sata\n  zvol:\n    base: debian12\n", &s) == 0) {
        struct qvm_domain_config c = cfg_for(&s, "/srv/qvm/vms/br1");
        c.mac = s.net.mac;
        c.ssh_port = 0;
        golden("domain-bridge", &c);
        qvm_spec_release(&s);
    }
    /* A VNC console and a named CPU model. */
    if (parse("name: desk\ngraphics: vnc\ncpu: Skylake-Client\n"
              "disk:\n  zvol:\n    base: debian12\n", &s) == 0) {
        struct qvm_domain_config c = cfg_for(&s, b);
        c.accel = "kvm";
        golden("domain-vnc", &c);
        qvm_spec_release(&s);
    }
    /* A libvirt network, virt-install's scalar spelling. */
    if (parse("name: net1\nnetwork: network=default\ncpu: host-model\n"
              "disk:\n  zvol:\n    base: debian12\n", &s) == 0) {
        struct qvm_domain_config c = cfg_for(&s, b);
        c.ssh_port = 0;
        c.accel = "kvm";
        c.image = NULL;           /* a reused disk: no image in the metadata */
        c.version = NULL;
        golden("domain-network", &c);
        /* The same name as a qvm network: its bridge, where qvm's dnsmasq
         * holds the lease, instead of a libvirt network. */
        snprintf(c.net_bridge, sizeof c.net_bridge, "qvm-default");
        char *xml = NULL;
        struct qvm_error e = { 0 };
        CHECK(qvm_domain_xml(&c, &xml, &e) == 0, "domain XML for a qvm network: %s", e.msg);
        CHECK_CONTAINS(xml, "<interface type=\"bridge\">\n      <source bridge=\"qvm-default\"/>",
                       "a qvm network joins its bridge");
        CHECK(xml && !strstr(xml, "network=\"default\""), "... and names no libvirt network");
        free(xml);
        qvm_spec_release(&s);
    }
    /* A disk list: a scsi data disk first, the image disk booting second, a
     * data disk on another pool; the seed after them all. */
    if (parse("name: data1\ndisk:\n  - {name: scratch, size: 1, bus: scsi}\n"
              "  - {boot: true, zvol: {base: debian12}}\n  - {size: 2, pool: fast}\n", &s) == 0) {
        struct qvm_domain_config c = cfg_for(&s, b);
        const struct qvm_qemu_disk data[] = {
            { "/var/lib/qvm/pools/default/vms/data1/scratch.raw", "raw", false },
            { "/srv/fast/vms/data1/disk2/disk.raw", "raw", false },
        };
        c.data_disks = data;
        golden("domain-disks", &c);
        qvm_spec_release(&s);
    }
}

static void test_escaping(void)
{
    struct qvm_vm_spec s;
    if (parse("name: esc\ndisk:\n  zvol:\n    base: debian12\n", &s) < 0)
        return;
    struct qvm_domain_config c = cfg_for(&s, "/srv/a&b<c>\"d'e");
    char *xml = NULL;
    struct qvm_error e = { 0 };
    int r = qvm_domain_xml(&c, &xml, &e);
    CHECK(r == 0, "a path with & < > \" ' is written");
    CHECK_CONTAINS(xml, "file=\"/srv/a&amp;b&lt;c&gt;&quot;d'e/disk0.qcow2\"",
                   "... escaped in the attribute");
    struct qvm_domain_info info;
    if (r == 0 && qvm_domain_xml_parse(xml, &info, &e) == 0) {
        CHECK_STR(info.disks[0].path, "/srv/a&b<c>\"d'e/disk0.qcow2",
                  "... and parses back to the same bytes");
        qvm_domain_info_release(&info);
    } else {
        CHECK(0, "... and parses back (%s)", e.msg);
    }
    free(xml);

    c = cfg_for(&s, "/srv/tab\there");
    xml = NULL;
    r = qvm_domain_xml(&c, &xml, &e);
    CHECK(r == -EINVAL && xml == NULL, "a path with a control character is refused");
    CHECK_CONTAINS(e.msg, "control characters", "... saying why");
    c = cfg_for(&s, "/srv/bad\xff\xfe");
    r = qvm_domain_xml(&c, &xml, &e);
    CHECK(r == -EINVAL && xml == NULL, "a path that is not UTF-8 is refused");
    c = cfg_for(&s, "/srv/caf\xc3\xa9");
    r = qvm_domain_xml(&c, &xml, &e);
    CHECK(r == 0 && qvm_domain_xml_parse(xml, &info, &e) == 0 &&
              strcmp(info.disks[0].path, "/srv/caf\xc3\xa9/disk0.qcow2") == 0,
          "a UTF-8 path is written and reads back unchanged");
    if (r == 0)
        qvm_domain_info_release(&info);
    free(xml);
    qvm_spec_release(&s);
}

static void test_move_disk(void)
{
    struct qvm_vm_spec s;
    if (parse("name: mv\ndisk:\n  zvol:\n    base: debian12\n", &s) < 0)
        return;
    struct qvm_domain_config c = cfg_for(&s, "/old");
    char *xml = NULL, *moved = NULL;
    struct qvm_error e = { 0 };
    qvm_domain_xml(&c, &xml, &e);
    int r = qvm_domain_xml_move_disk(xml, "/old/disk0.qcow2", "/pool/vms/mv/disk0.qcow2", &moved,
                                     &e);
    struct qvm_domain_info info;
    CHECK(r == 0 && qvm_domain_xml_parse(moved, &info, &e) == 0 &&
              strcmp(info.disks[0].path, "/pool/vms/mv/disk0.qcow2") == 0 &&
              strcmp(info.disks[1].path, "/old/seed.iso") == 0,
          "move_disk changes that disk's source and no other");
    if (r == 0)
        qvm_domain_info_release(&info);
    free(moved);
    moved = NULL;
    r = qvm_domain_xml_move_disk(xml, "/nowhere", "/x", &moved, &e);
    CHECK(r == -ENOENT && !moved, "move_disk of a source no disk has: -ENOENT");
    free(xml);
    qvm_spec_release(&s);
}

static void test_parse_foreign(void)
{
    /* A domain as virt-install defines it (trimmed `virsh dumpxml`). */
    static const char *xml =
        "<domain type='kvm' id='3'>\n"
        "  <name>legacy</name>\n"
        "  <uuid>0b7f6c33-1f6e-4a51-9df7-6f1f0d7f3a10</uuid>\n"
        "  <memory unit='KiB'>2097152</memory>\n"
        "  <vcpu placement='static'>2</vcpu>\n"
        "  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>\n"
        "  <cpu mode='host-passthrough' check='none' migratable='on'/>\n"
        "  <devices>\n"
        "    <disk type='file' device='disk'>\n"
        "      <driver name='qemu' type='qcow2'/>\n"
        "      <source file='/var/lib/libvirt/images/legacy.qcow2'/>\n"
        "      <target dev='vda' bus='virtio'/>\n"
        "    </disk>\n"
        "    <disk type='file' device='cdrom'>\n"
        "      <driver name='qemu' type='raw'/>\n"
        "      <target dev='sda' bus='sata'/>\n"
        "      <readonly/>\n"
        "    </disk>\n"
        "    <interface type='network'>\n"
        "      <mac address='52:54:00:6b:3c:58'/>\n"
        "      <source network='default'/>\n"
        "      <model type='virtio'/>\n"
        "    </interface>\n"
        "  </devices>\n"
        "</domain>\n";
    struct qvm_domain_info info;
    struct qvm_error e = { 0 };
    int r = qvm_domain_xml_parse(xml, &info, &e);
    CHECK(r == 0, "a virt-install domain parses");
    if (r < 0)
        return;
    CHECK(info.memory_kib == 2097152 && info.vcpus == 2, "memory in KiB and vCPUs");
    CHECK_STR(info.machine, "pc-q35-7.2", "machine");
    CHECK(info.ndisks == 2 && !info.disks[1].path && info.disks[1].readonly,
          "an empty CD-ROM has no path");
    CHECK_STR(info.disks[0].format, "qcow2", "disk format");
    CHECK_STR(info.net_type, "network", "interface type");
    CHECK_STR(info.net_source, "default", "interface source network");
    CHECK_STR(info.net_mac, "52:54:00:6b:3c:58", "interface MAC");
    CHECK(info.qvm_uuid == NULL, "no qvm metadata");
    qvm_domain_info_release(&info);
    r = qvm_domain_xml_parse("<network><name>x</name></network>", &info, &e);
    CHECK(r == -EINVAL, "a non-domain document is refused");
    r = qvm_domain_xml_parse("<domain><name>x", &info, &e);
    CHECK(r == -EINVAL, "a broken document is refused");
}

int main(void)
{
    test_goldens();
    test_escaping();
    test_move_disk();
    test_parse_foreign();
    return test_done();
}
