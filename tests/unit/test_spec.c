/* test_spec.c - the qvm file parser: every field, the cloud-init texts cut
 * out byte for byte, every error with its exact FILE:LINE:COL, and the limits. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"
#include "util/strbuf.h"
#include "test.h"

#ifndef QVM_SOURCE_ROOT
#define QVM_SOURCE_ROOT "."
#endif

/* The two documents every vm-document test needs after its own. */
#define TAIL "---\nqvm: user-data\n---\nqvm: meta-data\n"
/* A minimal valid vm document. */
#define VM_OK "qvm: vm\nname: t\ndisk:\n  zvol:\n    base: img\n"

static int parse(const char *text, struct qvm_vm_spec *s, struct qvm_error *e)
{
    memset(e, 0, sizeof *e);
    return qvm_spec_parse("t.yaml", text, strlen(text), s, e);
}

/* The parse fails with -EINVAL and the message starts with WANT (WANT
 * carries the location, so line and column are always checked exactly). */
static void expect_err(const char *text, const char *want, const char *what)
{
    struct qvm_vm_spec s;
    struct qvm_error e;
    int r = parse(text, &s, &e);
    CHECK(r == -EINVAL, "%s: fails with EINVAL (got %d)", what, r);
    if (r == 0)
        qvm_spec_release(&s);
    bool prefix = strncmp(e.msg, want, strlen(want)) == 0;
    CHECK(prefix, "%s: message", what);
    if (!prefix)
        printf("#   got:  '%s'\n#   want: '%s...'\n", e.msg, want);
}

/* The same for a vm document followed by TAIL. */
static void expect_vm_err(const char *vm, const char *want, const char *what)
{
    char *text = xasprintf("%s%s", vm, TAIL);
    expect_err(text, want, what);
    free(text);
}

static bool is_hex(const char *s, size_t n)
{
    return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

static void test_full(void)
{
    const char *text =
        "# a full qvm file\n"
        "---\n"
        "qvm: vm\n"
        "name: web1\n"
        "memory: 2048\n"
        "vcpus: 4\n"
        "cpu: host-passthrough\n"
        "virt-type: kvm\n"
        "machine: pc\n"
        "os-variant: debian12\n"
        "import: yes\n"
        "noautoconsole: false\n"
        "boot: cdrom,hd\n"
        "graphics: vnc\n"
        "disk:\n"
        "  bus: scsi\n"
        "  size: 20\n"
        "  cache: none\n"
        "  pool: fast\n"
        "  zvol:\n"
        "    base: debian12@v3\n"
        "    name: root\n"
        "    compression: lz4\n"
        "    volblocksize: 16K\n"
        "    com.example:owner: ops\n"
        "network:\n"
        "  type: user\n"
        "  model: e1000\n"
        "  mac: 52:54:00:AA:bb:01\n"
        "  ssh-port: 2222\n"
        "...\n"
        "---\n"
        "qvm: user-data\n"
        "packages: [vim]\n"
        "...\n"
        "---\n"
        "qvm: meta-data\n"
        "...\n"
        "---\n"
        "qvm: network-config\n"
        "version: 2\n"
        "ethernets:\n"
        "  eth0:\n"
        "    dhcp4: true\n";
    struct qvm_vm_spec s;
    struct qvm_error e;
    int r = parse(text, &s, &e);
    CHECK(r == 0, "full file parses: %s", e.msg);
    if (r < 0)
        return;
    CHECK_STR(s.name, "web1", "name");
    CHECK(s.memory_mib == 2048, "memory");
    CHECK(s.vcpus == 4, "vcpus");
    CHECK_STR(s.cpu, "host-passthrough", "cpu");
    CHECK_STR(s.accel, "kvm", "virt-type kvm sets accel kvm");
    CHECK_STR(s.machine, "pc", "machine");
    CHECK_STR(s.os_variant, "debian12", "os-variant");
    CHECK(s.import, "import: yes");
    CHECK(!s.noautoconsole, "noautoconsole: false");
    CHECK_STR(s.boot, "cdrom,hd", "boot");
    CHECK(s.graphics == QVM_GRAPHICS_VNC, "graphics vnc");
    CHECK_STR(s.disk.bus, "scsi", "disk.bus");
    CHECK(s.disk.size_bytes == 20ull << 30, "disk.size 20 GiB in bytes");
    CHECK_STR(s.disk.cache, "none", "disk.cache");
    CHECK_STR(s.disk.pool, "fast", "disk.pool");
    CHECK_STR(s.disk.base, "debian12@v3", "disk.zvol.base");
    CHECK_STR(s.disk.target_name, "root", "disk.zvol.name");
    CHECK(s.disk.nprops == 3, "three zvol properties");
    if (s.disk.nprops == 3) {
        CHECK_STR(s.disk.props[0].key, "compression", "prop 0 key");
        CHECK_STR(s.disk.props[0].value, "lz4", "prop 0 value");
        CHECK_STR(s.disk.props[1].key, "volblocksize", "prop 1 key");
        CHECK_STR(s.disk.props[1].value, "16K", "prop 1 value");
        CHECK_STR(s.disk.props[2].key, "com.example:owner", "user property key");
        CHECK_STR(s.disk.props[2].value, "ops", "user property value");
    }
    CHECK(s.net.type == QVM_NET_USER, "network type user");
    CHECK_STR(s.net.model, "e1000", "network model");
    CHECK_STR(s.net.mac, "52:54:00:aa:bb:01", "MAC, lower-cased (and not read as sexagesimal)");
    CHECK(s.net.ssh_port == 2222, "ssh-port");
    CHECK_STR(s.user_data, "#cloud-config\npackages: [vim]\n", "user-data");
    CHECK(strncmp(s.instance_id, "web1-", 5) == 0 && is_hex(s.instance_id + 5, 16),
          "generated instance-id is NAME-<16 hex>: %s", s.instance_id);
    CHECK_STR(s.hostname, "web1", "hostname defaults to the VM name");
    char *want_meta = xasprintf("instance-id: %s\nlocal-hostname: web1\n", s.instance_id);
    CHECK_STR(s.meta_data, want_meta, "meta-data gets instance-id and local-hostname");
    free(want_meta);
    CHECK_STR(s.network_config, "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n", "network-config");
    qvm_spec_release(&s);
    CHECK(s.name == NULL && s.user_data == NULL && s.disk.nprops == 0, "release zeroes the struct");
}

static void test_defaults(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e;
    int r = parse(VM_OK TAIL, &s, &e);
    CHECK(r == 0, "minimal file parses: %s", e.msg);
    if (r < 0)
        return;
    CHECK(s.memory_mib == 1024, "memory defaults to 1024");
    CHECK(s.vcpus == 1, "vcpus defaults to 1");
    CHECK_STR(s.cpu, "host-model", "cpu defaults to host-model");
    CHECK_STR(s.accel, "auto", "accel defaults to auto");
    CHECK_STR(s.machine, "q35", "machine defaults to q35");
    CHECK(s.os_variant == NULL, "no os-variant");
    CHECK(!s.import && !s.noautoconsole, "booleans default to false");
    CHECK_STR(s.boot, "hd", "boot defaults to hd");
    CHECK(s.graphics == QVM_GRAPHICS_NONE, "graphics defaults to none");
    CHECK_STR(s.disk.bus, "virtio", "bus defaults to virtio");
    CHECK_STR(s.disk.cache, "writeback", "cache defaults to writeback");
    CHECK(s.disk.size_bytes == 0 && s.disk.pool == NULL && s.disk.target_name == NULL && s.disk.nprops == 0,
          "no size, pool, target name or properties");
    CHECK(s.net.type == QVM_NET_USER && s.net.ssh_port == 0 && s.net.mac == NULL, "user network, auto port");
    CHECK_STR(s.net.model, "virtio", "model defaults to virtio");
    CHECK_STR(s.user_data, "#cloud-config\n", "empty user-data is just the header");
    CHECK(s.network_config == NULL, "no network-config document: NULL");
    qvm_spec_release(&s);
}

static void test_forms(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e;
    int r = parse("qvm: vm\nname: t\nmemory: {memory: 512}\nvcpus:\n  vcpus: 3\ngraphics: {type: none}\n"
                  "virt-type: qemu\naccel: tcg\ncpu: Skylake-Server-v4\nimport: TRUE\nnoautoconsole: on\n"
                  "network: none\n"
                  "disk: {size: 0.5, zvol: {base: tank/images/deb12@base, compression: \"zstd-3\"}}\n" TAIL,
                  &s, &e);
    CHECK(r == 0, "mapping forms parse: %s", e.msg);
    if (r < 0)
        return;
    CHECK(s.memory_mib == 512, "memory: {memory: N}");
    CHECK(s.vcpus == 3, "vcpus: {vcpus: N}");
    CHECK(s.graphics == QVM_GRAPHICS_NONE, "graphics: {type: none}");
    CHECK_STR(s.accel, "tcg", "virt-type qemu means tcg");
    CHECK_STR(s.cpu, "Skylake-Server-v4", "a QEMU CPU model");
    CHECK(s.import && s.noautoconsole, "TRUE and on are true");
    CHECK(s.net.type == QVM_NET_NONE && s.net.ssh_port == -1, "network none: no SSH port");
    CHECK(s.disk.size_bytes == 512ull << 20, "size 0.5 GiB is 512 MiB");
    CHECK_STR(s.disk.base, "tank/images/deb12@base", "raw ZFS snapshot kept as given");
    CHECK(s.disk.nprops == 1 && strcmp(s.disk.props[0].value, "zstd-3") == 0, "quoted property value");
    qvm_spec_release(&s);

    r = parse("qvm: vm\nname: t\ndisk: {size: 0.1, zvol: {base: a@v12}}\n"
              "network: {type: none, ssh-port: none, model: rtl8139}\n" TAIL, &s, &e);
    CHECK(r == 0, "fractional size and network mapping with type none: %s", e.msg);
    if (r == 0) {
        CHECK(s.disk.size_bytes == 103ull << 20, "0.1 GiB rounds up to a whole MiB (103 MiB)");
        CHECK(s.net.type == QVM_NET_NONE && s.net.ssh_port == -1, "ssh-port none");
        CHECK_STR(s.net.model, "rtl8139", "model rtl8139");
        qvm_spec_release(&s);
    }

    r = parse("qvm: vm\nname: t\ndisk: {zvol: {base: a}}\nnetwork: {ssh-port: auto}\naccel: kvm\nvirt-type: kvm\n"
              TAIL, &s, &e);
    CHECK(r == 0, "ssh-port auto; accel and virt-type agreeing: %s", e.msg);
    if (r == 0) {
        CHECK(s.net.ssh_port == 0, "ssh-port auto is 0");
        CHECK_STR(s.accel, "kvm", "accel kvm");
        qvm_spec_release(&s);
    }
}

static void test_nic_lists(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e;
    int r = parse("qvm: vm\nname: t\ndisk: {zvol: {base: a}}\nnetwork:\n  - network=lan\n"
                  "  - {bridge: br0, model: e1000, mac: 52:54:00:AA:bb:01}\n  - user\n" TAIL, &s, &e);
    CHECK(r == 0, "a list of three NICs parses: %s", e.msg);
    if (r == 0) {
        CHECK(qvm_spec_nic_count(&s) == 3, "three NICs");
        CHECK(s.net.type == QVM_NET_NETWORK && !strcmp(s.net.source, "lan"), "NIC 0: network lan");
        CHECK(s.net.ssh_port == -1, "NIC 0 on a network forwards no SSH");
        CHECK(s.extra_nets[0].type == QVM_NET_BRIDGE && !strcmp(s.extra_nets[0].source, "br0"),
              "NIC 1: bridge br0");
        CHECK_STR(s.extra_nets[0].model, "e1000", "NIC 1 model");
        CHECK_STR(s.extra_nets[0].mac, "52:54:00:aa:bb:01", "NIC 1 MAC, lower-cased");
        CHECK(s.extra_nets[1].type == QVM_NET_USER && s.extra_nets[1].ssh_port == -1,
              "NIC 2: user, no forward (only the first NIC forwards)");
        CHECK_STR(s.extra_nets[1].model, "virtio", "NIC 2 gets the default model");
        qvm_spec_release(&s);
    }
    r = parse("qvm: vm\nname: t\ndisk: {zvol: {base: a}}\nnetwork: [user]\n" TAIL, &s, &e);
    CHECK(r == 0 && qvm_spec_nic_count(&s) == 1 && s.net.ssh_port == 0,
          "a list of one user NIC is the single form");
    if (r == 0)
        qvm_spec_release(&s);
    expect_vm_err("qvm: vm\nname: t\ndisk: {zvol: {base: a}}\nnetwork: []\n",
                  "t.yaml:4:10: key 'vm.network': an empty list", "an empty NIC list");
    expect_vm_err("qvm: vm\nname: t\ndisk: {zvol: {base: a}}\nnetwork: [user, user, user, user, user, user, user, user, user]\n",
                  "t.yaml:4:10: key 'vm.network': 9 NICs: at most 8", "nine NICs");
    expect_vm_err("qvm: vm\nname: t\ndisk: {zvol: {base: a}}\nnetwork:\n  - user\n  - {type: user, ssh-port: 2200}\n",
                  "t.yaml:6:28: key 'vm.network[1].ssh-port': only the first NIC forwards SSH",
                  "a forward on a second NIC");
    expect_vm_err("qvm: vm\nname: t\ndisk: {zvol: {base: a}}\nnetwork:\n  - none\n  - user\n",
                  "t.yaml:5:5: key 'vm.network[1]': 'none' is only for a VM's only NIC",
                  "none beside another NIC");
    expect_vm_err("qvm: vm\nname: t\ndisk: {zvol: {base: a}}\nnetwork:\n  - user\n  - {bogus: 1}\n",
                  "t.yaml:6:6: key 'vm.network[1].bogus': unsupported option 'bogus'",
                  "an unknown key in a list item names its index");
}

static void test_hello_example(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e = { 0 };
    int r = qvm_spec_load(QVM_SOURCE_ROOT "/examples/hello.yaml", &s, &e);
    CHECK(r == 0, "examples/hello.yaml loads: %s", e.msg);
    if (r < 0)
        return;
    CHECK_STR(s.name, "hello", "hello: name");
    CHECK(s.memory_mib == 1024 && s.vcpus == 2, "hello: memory 1024, vcpus 2");
    CHECK_STR(s.disk.bus, "virtio", "hello: bus");
    CHECK(s.disk.size_bytes == 4ull << 30, "hello: 4 GiB");
    CHECK_STR(s.disk.base, "debian12", "hello: base");
    CHECK(s.net.type == QVM_NET_USER && s.graphics == QVM_GRAPHICS_NONE, "hello: user network, no graphics");
    CHECK_STR(s.os_variant, "debian12", "hello: os-variant");
    CHECK(s.import && s.noautoconsole, "hello: import, noautoconsole");
    CHECK(strncmp(s.user_data, "#cloud-config\n", 14) == 0, "hello: user-data header");
    CHECK(strstr(s.user_data, "qvm: user-data") == NULL, "hello: no qvm line in user-data");
    CHECK_CONTAINS(s.user_data, "hostname: hello-qvm\n", "hello: hostname");
    CHECK_CONTAINS(s.user_data, "  - name: qvm\n", "hello: user qvm");
    CHECK_CONTAINS(s.user_data, "    content: |\n      hello from qvm user-data\n", "hello: write_files");
    CHECK_CONTAINS(s.user_data, "uname -r > /var/lib/qvm-hello/runcmd.txt", "hello: runcmd");
    CHECK_CONTAINS(s.user_data, "# A file the end-to-end test reads back", "hello: comments kept");
    CHECK(strstr(s.user_data, "...") == NULL && strstr(s.user_data, "---") == NULL, "hello: no document markers");
    CHECK_STR(s.meta_data, "instance-id: hello-1\nlocal-hostname: hello-qvm\n", "hello: meta-data as written");
    CHECK_STR(s.instance_id, "hello-1", "hello: instance-id");
    CHECK_STR(s.hostname, "hello-qvm", "hello: hostname");
    qvm_spec_release(&s);

    r = qvm_spec_load(QVM_SOURCE_ROOT "/examples/seed-format.yaml", &s, &e);
    CHECK(r == 0, "examples/seed-format.yaml loads: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.name, "seed-vm", "seed-format: name");
        CHECK_STR(s.instance_id, "seed-vm-1", "seed-format: 'qvm: metadata' document read");
        qvm_spec_release(&s);
    }
}

static void test_user_data_text(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e;
    const char *text =
        VM_OK
        "---   # user data follows\n"
        "# leading comment\n"
        "hostname: h1   # trailing comment\n"
        "qvm: user-data   # the qvm line goes\n"
        "\n"
        "runcmd:\n"
        "  - echo 'qvm: user-data'\n"
        "write_files:\n"
        "  - content: |\n"
        "      keep   this\n"
        "\n"
        "# last comment\n"
        "...\n"
        "---\n"
        "qvm: meta-data\n";
    int r = parse(text, &s, &e);
    CHECK(r == 0, "user-data with comments parses: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.user_data,
                  "#cloud-config\n"
                  "# leading comment\n"
                  "hostname: h1   # trailing comment\n"
                  "\n"
                  "runcmd:\n"
                  "  - echo 'qvm: user-data'\n"
                  "write_files:\n"
                  "  - content: |\n"
                  "      keep   this\n"
                  "\n"
                  "# last comment\n",
                  "user-data: byte for byte, qvm line and markers removed, comments kept");
        qvm_spec_release(&s);
    }

    r = parse(VM_OK "---\nqvm: user-data\n#cloud-config\nusers: []\n---\nqvm: meta-data\n", &s, &e);
    CHECK(r == 0, "user-data with its own header parses: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.user_data, "#cloud-config\nusers: []\n", "an existing #cloud-config line is not doubled");
        qvm_spec_release(&s);
    }

    r = parse(VM_OK "---\n\n#cloud-config\n\"qvm\": 'user-data'\nusers: []\n---\nqvm: meta-data\n", &s, &e);
    CHECK(r == 0, "quoted qvm entry: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.user_data, "#cloud-config\nusers: []\n", "quoted qvm entry removed; blank line before header dropped");
        qvm_spec_release(&s);
    }

    r = parse("qvm: vm\r\nname: t\r\ndisk: {zvol: {base: img}}\r\n---\r\nqvm: user-data\r\na: 1\r\n"
              "---\r\nqvm: meta-data\r\ninstance-id: i-1\r\nlocal-hostname: h\r\n", &s, &e);
    CHECK(r == 0, "CRLF line ends: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.user_data, "#cloud-config\na: 1\r\n", "CRLF kept");
        CHECK_STR(s.meta_data, "instance-id: i-1\r\nlocal-hostname: h\r\n", "CRLF meta-data");
        qvm_spec_release(&s);
    }

    r = parse("\xEF\xBB\xBFqvm: vm\nname: t\ndisk: {zvol: {base: img}}\n---\n"
              "qvm: user-data\nmotd: \"h\xC3\xA9llo w\xC3\xB6rld\"\nqvm-not: x\n---\nqvm: meta-data\n", &s, &e);
    CHECK(r == 0, "BOM and UTF-8: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.user_data, "#cloud-config\nmotd: \"h\xC3\xA9llo w\xC3\xB6rld\"\nqvm-not: x\n",
                  "UTF-8 text sliced on the right bytes");
        qvm_spec_release(&s);
    }

    /* The qvm entry inside a flow mapping: re-emitted without it. */
    r = parse(VM_OK "--- {qvm: user-data, packages: [vim, git], a: 'x y'}\n---\nqvm: meta-data\n", &s, &e);
    CHECK(r == 0, "flow user-data: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.user_data, "#cloud-config\npackages:\n- vim\n- git\na: 'x y'\n",
                  "flow mapping re-emitted (block style)");
        qvm_spec_release(&s);
    }

    /* Fallback with nesting, an empty value, "!" tags and a tagged value. */
    r = parse(VM_OK "--- {qvm: user-data, users: [{name: a, groups: [x]}], m: {k: {j: 1}}, e: {}, "
                    "n: , ! 123: ! 456, t: !!str 7}\n---\nqvm: meta-data\n", &s, &e);
    CHECK(r == 0, "flow user-data with nesting: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.user_data,
                  "#cloud-config\nusers:\n- name: a\n  groups:\n  - x\nm:\n  k:\n    j: 1\ne: {}\nn: ~\n"
                  "123: 456\nt: !!str 7\n",
                  "nested mappings and lists re-emitted; null kept as ~; '!' dropped as PyYAML does");
        qvm_spec_release(&s);
    }

    /* Not alone on its line: "? qvm" as an explicit key. */
    r = parse(VM_OK "---\n? qvm\n: user-data\n# gone\nruncmd:\n- |\n  echo hi\n---\nqvm: meta-data\n", &s, &e);
    CHECK(r == 0, "explicit qvm key: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.user_data, "#cloud-config\nruncmd:\n- |\n  echo hi\n", "explicit key: re-emitted");
        qvm_spec_release(&s);
    }

    /* A tag on the root mapping stands on its own line: cutting the qvm
     * entry would leave the tag on nothing, so the emitter is used. */
    r = parse(VM_OK "---\n!!map\nqvm: user-data\n---\nqvm: meta-data\n", &s, &e);
    CHECK(r == 0, "tagged root mapping: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.user_data, "#cloud-config\n!!map {}\n", "tagged root: still an (empty) mapping");
        qvm_spec_release(&s);
    }

    /* %TAG directives: the emitter resolves tags; one it cannot write back
     * readably is refused rather than passed on broken. */
    r = parse(VM_OK "%TAG !e! tag:example.com,2000:\n---\nqvm: user-data\nx: !e!foo bar\n---\nqvm: meta-data\n",
              &s, &e);
    CHECK(r == 0, "%%TAG directive: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.user_data, "#cloud-config\nx: !<tag:example.com,2000:foo> bar\n", "tag written in full");
        qvm_spec_release(&s);
    }
    expect_err(VM_OK "%TAG !e! !g:a,b:\n---\nqvm: user-data\nx: !e!foo bar\n---\nqvm: meta-data\n",
               "t.yaml:8:1: key 'qvm': cannot rewrite this document without its qvm entry: libyaml cannot write "
               "one of its tags back (avoid %TAG directives here)",
               "unwritable tag refused");

    /* No final line break: left alone; in meta-data a block scalar there
     * would change if one were added, so the emitter writes it. */
    r = parse(VM_OK "---\nqvm: user-data\nmotd: |\n  hi\n---\nqvm: meta-data\nnote: |\n  keep", &s, &e);
    CHECK(r == 0, "block scalars at the end of the file: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.user_data, "#cloud-config\nmotd: |\n  hi\n", "user-data block scalar untouched");
        char *want = xasprintf("note: |-\n  keep\ninstance-id: %s\nlocal-hostname: t\n", s.instance_id);
        CHECK_STR(s.meta_data, want, "meta-data block scalar keeps its value (no newline added)");
        free(want);
        qvm_spec_release(&s);
    }
    r = parse(VM_OK "---\nqvm: user-data\na: 1\n---\nqvm: meta-data\na: 1 # no newline", &s, &e);
    CHECK(r == 0, "comment at the end of the file: %s", e.msg);
    if (r == 0) {
        char *want = xasprintf("a: 1 # no newline\ninstance-id: %s\nlocal-hostname: t\n", s.instance_id);
        CHECK_STR(s.meta_data, want, "after a final comment a line break is added and the text kept");
        free(want);
        qvm_spec_release(&s);
    }

    /* network-config cut the same way; meta-data indented keeps its indent. */
    r = parse(VM_OK "---\nqvm: user-data\n---\n  qvm: meta-data\n  instance-id: x-1\n---\n"
              "version: 1\nqvm: network-config   \nconfig:\n  - type: physical\n    name: eth0\n", &s, &e);
    CHECK(r == 0, "network-config document: %s", e.msg);
    if (r == 0) {
        CHECK_STR(s.network_config, "version: 1\nconfig:\n  - type: physical\n    name: eth0\n",
                  "network-config without its qvm line");
        CHECK_STR(s.meta_data, "  instance-id: x-1\n  local-hostname: t\n", "appended key follows the indent");
        qvm_spec_release(&s);
    }
}

static void test_meta_data(void)
{
    struct qvm_vm_spec s, s2;
    struct qvm_error e;
    int r = parse(VM_OK "---\nqvm: user-data\n---\nqvm: metadata\nlocal-hostname: box.example.org\n", &s, &e);
    CHECK(r == 0, "'qvm: metadata' spelling: %s", e.msg);
    if (r < 0)
        return;
    CHECK_STR(s.hostname, "box.example.org", "given local-hostname kept");
    CHECK(strncmp(s.instance_id, "t-", 2) == 0 && is_hex(s.instance_id + 2, 16), "instance-id generated");
    char *want = xasprintf("local-hostname: box.example.org\ninstance-id: %s\n", s.instance_id);
    CHECK_STR(s.meta_data, want, "only instance-id appended");
    free(want);
    r = parse(VM_OK "---\nqvm: user-data\n---\nqvm: metadata\nlocal-hostname: box.example.org\n", &s2, &e);
    CHECK(r == 0 && strcmp(s.instance_id, s2.instance_id) != 0, "two parses give two instance-ids");
    if (r == 0)
        qvm_spec_release(&s2);
    qvm_spec_release(&s);

    r = parse("qvm: vm\nname: '123'\ndisk: {zvol: {base: img}}\n---\nqvm: user-data\n---\nqvm: meta-data\n# end", &s, &e);
    CHECK(r == 0, "numeric VM name: %s", e.msg);
    if (r == 0) {
        want = xasprintf("# end\ninstance-id: \"%s\"\nlocal-hostname: \"123\"\n", s.instance_id);
        CHECK_STR(s.meta_data, want, "values that YAML would read as numbers are quoted");
        free(want);
        qvm_spec_release(&s);
    }

    expect_err(VM_OK "---\nqvm: user-data\n---\nqvm: meta-data\nlocal-hostname: 'a,b'\n",
               "t.yaml:10:17: key 'meta-data.local-hostname': invalid host name", "bad local-hostname");
    expect_err(VM_OK "---\nqvm: user-data\n---\nqvm: meta-data\ninstance-id: [1]\n",
               "t.yaml:10:14: key 'meta-data.instance-id': expected a string, got a list", "instance-id a list");
    expect_err(VM_OK "---\nqvm: user-data\n---\nqvm: meta-data\ninstance-id: a/b\n",
               "t.yaml:10:14: key 'meta-data.instance-id': invalid instance-id", "instance-id with a slash");
    expect_err(VM_OK "---\nqvm: user-data\n---\nqvm: meta-data\ninstance-id: a\ninstance-id: b\n",
               "t.yaml:11:1: key 'meta-data.instance-id': duplicate key 'instance-id' (the first is at line 10)",
               "duplicate instance-id");
}

static void test_document_errors(void)
{
    expect_err("", "t.yaml:1:1: empty file: a qvm file holds vm, user-data and meta-data documents", "empty file");
    expect_err("# just a comment\n\n", "t.yaml:1:1: empty file", "comments only");
    expect_err("qvm: vm\n---\n- a\n", "t.yaml:3:1: document 2 is not a mapping (it is a list)", "list document");
    expect_err("qvm: vm\n--- hello\n", "t.yaml:2:5: document 2 is not a mapping (it is 'hello')", "scalar document");
    expect_err("qvm: vm\n---\n---\nqvm: meta-data\n", "t.yaml:2:1: document 2 is empty", "empty document");
    expect_err("qvm: vm\n---\nname: x\nfoo: bar\n",
               "t.yaml:3:1: document 2: missing key 'qvm' (expected qvm: vm, user-data, meta-data or network-config)",
               "missing qvm key");
    expect_err("qvm: vm\n---\nqvm: userdata\n",
               "t.yaml:3:6: key 'qvm': unknown document kind 'userdata' (expected vm, user-data, meta-data or network-config)",
               "unknown qvm value");
    expect_err("qvm: [vm]\n", "t.yaml:1:6: key 'qvm': expected vm, user-data, meta-data or network-config, got a list",
               "qvm value a list");
    expect_err("qvm: vm\nqvm: vm\n", "t.yaml:2:1: key 'qvm': duplicate key (the first is at line 1)", "qvm key twice");
    expect_err(VM_OK "---\nqvm: user-data\n---\nqvm: metadata\n---\nqvm: meta-data\n",
               "t.yaml:11:6: key 'qvm': duplicate meta-data document (the first is at line 9)",
               "duplicate document kind (metadata and meta-data)");
    expect_err(VM_OK "---\nqvm: meta-data\n",
               "t.yaml:1:1: missing user-data document (a qvm file holds documents tagged qvm: vm, qvm: user-data and qvm: meta-data)",
               "missing user-data");
    expect_err("qvm: user-data\n", "t.yaml:1:1: missing vm and meta-data documents", "missing vm and meta-data");
    expect_err("qvm: network-config\n", "t.yaml:1:1: missing vm, user-data and meta-data documents",
               "missing all three");
    expect_err("qvm: vm\nname: t\n" TAIL, "t.yaml:1:1: key 'vm': missing key 'disk'", "vm without disk");
    expect_err("qvm: vm\ndisk:\n  zvol: {base: a}\n" TAIL, "t.yaml:1:1: key 'vm': missing key 'name'", "vm without name");
    expect_err("qvm: vm\nname: t\ndisk: virtio\n" TAIL, "t.yaml:3:7: key 'vm.disk': expected a mapping, got 'virtio'",
               "disk not a mapping");
    expect_err("qvm: vm\nname: t\ndisk:\n  bus: virtio\n  size: 4\n" TAIL,
               "t.yaml:4:3: key 'vm.disk': missing key 'zvol'", "disk without zvol");
    expect_err("qvm: vm\nname: t\ndisk:\n  zvol:\n" TAIL,
               "t.yaml:4:8: key 'vm.disk.zvol': expected a mapping, got nothing (null)", "zvol null");
    expect_err("qvm: vm\nname: t\ndisk:\n  bus: virtio\n  zvol:\n    name: root\n    compression: lz4\n" TAIL,
               "t.yaml:6:5: key 'vm.disk.zvol': missing key 'base'", "zvol without base");
    expect_err("qvm: vm\nname: t\ndisk: {zvol: {}}\n" TAIL, "t.yaml:3:14: key 'vm.disk.zvol': missing key 'base'",
               "empty flow zvol");
}

static void test_syntax_errors(void)
{
    expect_err("qvm: vm\nname: [a\n",
               "t.yaml:3:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at line 2, column 7)",
               "unclosed flow sequence");
    expect_err("qvm: vm\n  name: x\n", "t.yaml:2:7: YAML syntax error: mapping values are not allowed in this context",
               "bad indentation");
    expect_err("qvm: vm\nname: \"abc\n", "t.yaml:3:1: YAML syntax error: found unexpected end of stream", "open quote");
    expect_err("qvm: vm\nname: a\tb: \x01\n", "t.yaml:2:12: YAML syntax error: control characters are not allowed",
               "control character");
    expect_err("qvm: \xff\n", "t.yaml:1:6: YAML syntax error: invalid leading UTF-8 octet", "invalid UTF-8");
    expect_err("\xFF\xFEq\0", "t.yaml:1:1: UTF-16 is not supported", "UTF-16");
    expect_err("qvm: vm\nname: *nothing\n" TAIL, "t.yaml:2:7: key 'vm.name': YAML anchors and aliases are not allowed",
               "undefined alias: refused as an alias");
}

static void test_vm_key_errors(void)
{
    expect_vm_err(VM_OK "rng: /dev/urandom\n",
                  "t.yaml:6:1: key 'vm.rng': unsupported option 'rng' (qvm supports: name, memory, vcpus, cpu, "
                  "virt-type, accel, machine, os-variant, import, noautoconsole, boot, graphics, disk, network, autostart",
                  "unknown key named, with the supported list");
    expect_vm_err(VM_OK "os_variant: debian12\n",
                  "t.yaml:6:1: key 'vm.os_variant': unsupported option 'os_variant' (did you mean 'os-variant'?",
                  "underscore spelling gets a hint");
    expect_vm_err("qvm: vm\nname: t\ndisk:\n  path: /var/lib/x.img\n  zvol: {base: a}\n",
                  "t.yaml:4:3: key 'vm.disk.path': unsupported option 'path' (qvm supports: bus, size, cache, pool, zvol)",
                  "disk.path refused");
    expect_vm_err("qvm: vm\nname: t\ndisk:\n  zvol: {base: a}\n  format: qcow2\n",
                  "t.yaml:5:3: key 'vm.disk.format': unsupported option 'format'", "disk.format refused");
    expect_vm_err(VM_OK "memory: {memory: 512, maxmemory: 1024}\n",
                  "t.yaml:6:23: key 'vm.memory.maxmemory': unsupported option 'maxmemory' (qvm supports: memory)",
                  "memory mapping: other keys refused");
    expect_vm_err(VM_OK "graphics: {type: vnc, listen: 0.0.0.0}\n",
                  "t.yaml:6:23: key 'vm.graphics.listen': unsupported option 'listen' (qvm supports: type)",
                  "graphics mapping: other keys refused");
    expect_vm_err(VM_OK "network: {portgroup: br0}\n",
                  "t.yaml:6:11: key 'vm.network.portgroup': unsupported option 'portgroup' (qvm supports: type, model, mac, ssh-port, network, bridge)",
                  "network mapping: other keys refused");
    expect_vm_err(VM_OK "name: u\n", "t.yaml:6:1: key 'vm.name': duplicate key (the first is at line 2)",
                  "duplicate key");
    expect_vm_err(VM_OK "[a]: 1\n", "t.yaml:6:1: key 'vm': keys must be strings, got a list", "non-string key");
}

static void test_type_errors(void)
{
    expect_vm_err(VM_OK "memory: \"1024\"\n",
                  "t.yaml:6:9: key 'vm.memory': expected an integer (MiB), got the quoted string '1024' (write numbers and booleans without quotes)",
                  "quoted integer");
    expect_vm_err(VM_OK "memory: 1G\n", "t.yaml:6:9: key 'vm.memory': expected an integer (MiB), got '1G'",
                  "memory with a unit");
    expect_vm_err(VM_OK "memory: 32\n", "t.yaml:6:9: key 'vm.memory': 32 is out of range (64 to 1048576)",
                  "memory too small");
    expect_vm_err(VM_OK "memory: 2097152\n", "t.yaml:6:9: key 'vm.memory': 2097152 is out of range",
                  "memory too large");
    expect_vm_err(VM_OK "memory: 0100\n", "t.yaml:6:9: key 'vm.memory': '0100': leading zeros are not allowed",
                  "octal-looking integer");
    expect_vm_err(VM_OK "memory: {}\n", "t.yaml:6:9: key 'vm.memory': missing key 'memory'", "empty memory mapping");
    expect_vm_err(VM_OK "vcpus: 0\n", "t.yaml:6:8: key 'vm.vcpus': 0 is out of range (1 to 256)", "vcpus 0");
    expect_vm_err(VM_OK "vcpus: 257\n", "t.yaml:6:8: key 'vm.vcpus': 257 is out of range (1 to 256)", "vcpus 257");
    expect_vm_err(VM_OK "vcpus: [2]\n", "t.yaml:6:8: key 'vm.vcpus': expected an integer, got a list", "vcpus list");
    expect_vm_err(VM_OK "vcpus: 1.5\n", "t.yaml:6:8: key 'vm.vcpus': expected an integer, got '1.5'", "vcpus float");
    expect_vm_err(VM_OK "import: \"yes\"\n",
                  "t.yaml:6:9: key 'vm.import': expected a boolean (true, false, yes or no), got the quoted string 'yes'",
                  "quoted boolean");
    expect_vm_err(VM_OK "noautoconsole: 1\n",
                  "t.yaml:6:16: key 'vm.noautoconsole': expected a boolean (true, false, yes or no), got '1'",
                  "integer for a boolean");
    expect_vm_err(VM_OK "import:\n",
                  "t.yaml:6:8: key 'vm.import': expected a boolean (true, false, yes or no), got nothing (null)",
                  "null boolean");
    expect_vm_err("qvm: vm\nname: Web1\ndisk: {zvol: {base: a}}\n",
                  "t.yaml:2:7: key 'vm.name': invalid VM name 'Web1': use lower-case letters", "bad VM name");
    expect_vm_err("qvm: vm\nname: {a: b}\ndisk: {zvol: {base: a}}\n",
                  "t.yaml:2:7: key 'vm.name': expected a string, got a mapping", "name a mapping");
    expect_vm_err(VM_OK "cpu: host model\n", "t.yaml:6:6: key 'vm.cpu': invalid CPU model", "cpu with a space");
    expect_vm_err(VM_OK "virt-type: xen\n",
                  "t.yaml:6:12: key 'vm.virt-type': 'xen' is not supported (expected one of kvm, qemu)", "virt-type xen");
    expect_vm_err(VM_OK "accel: hvf\n",
                  "t.yaml:6:8: key 'vm.accel': 'hvf' is not supported (expected one of auto, kvm, tcg)", "accel hvf");
    expect_vm_err(VM_OK "virt-type: qemu\naccel: kvm\n",
                  "t.yaml:7:8: key 'vm.accel': 'kvm' conflicts with virt-type at line 6", "accel against virt-type");
    expect_vm_err(VM_OK "machine: virt\n",
                  "t.yaml:6:10: key 'vm.machine': 'virt' is not supported (expected one of q35, pc)", "machine virt");
    expect_vm_err(VM_OK "os-variant: deb ian\n", "t.yaml:6:13: key 'vm.os-variant': invalid OS variant", "os-variant");
    expect_vm_err(VM_OK "boot: hd,uefi\n",
                  "t.yaml:6:7: key 'vm.boot': unsupported boot device 'uefi' (expected a comma-separated list of hd, cdrom, network)",
                  "boot uefi");
    expect_vm_err(VM_OK "boot: hd,\n", "t.yaml:6:7: key 'vm.boot': unsupported boot device ''", "boot empty item");
    expect_vm_err(VM_OK "boot: network,network\n", "t.yaml:6:7: key 'vm.boot': boot device 'network' is listed twice",
                  "boot twice");
    expect_vm_err(VM_OK "graphics: spice\n",
                  "t.yaml:6:11: key 'vm.graphics': 'spice' is not supported (expected one of none, vnc)", "graphics spice");
    expect_vm_err(VM_OK "graphics: {}\n", "t.yaml:6:11: key 'vm.graphics': missing key 'type'", "graphics {}");
    expect_vm_err("qvm: vm\nname: t\ndisk: {bus: usb, zvol: {base: a}}\n",
                  "t.yaml:3:13: key 'vm.disk.bus': 'usb' is not supported (expected one of virtio, scsi, sata, ide)",
                  "disk bus usb");
    expect_vm_err("qvm: vm\nname: t\ndisk: {cache: default, zvol: {base: a}}\n",
                  "t.yaml:3:15: key 'vm.disk.cache': 'default' is not supported", "disk cache");
    expect_vm_err("qvm: vm\nname: t\ndisk: {size: \"4\", zvol: {base: a}}\n",
                  "t.yaml:3:14: key 'vm.disk.size': expected a size in GiB such as 20 or 0.5, got the quoted string '4'",
                  "quoted size");
    expect_vm_err("qvm: vm\nname: t\ndisk: {size: 4G, zvol: {base: a}}\n",
                  "t.yaml:3:14: key 'vm.disk.size': expected a size in GiB such as 20 or 0.5, got '4G'", "size with unit");
    expect_vm_err("qvm: vm\nname: t\ndisk: {size: 0, zvol: {base: a}}\n",
                  "t.yaml:3:14: key 'vm.disk.size': 0 GiB is out of range (more than 0, at most 65536)", "size 0");
    expect_vm_err("qvm: vm\nname: t\ndisk: {size: 65536.5, zvol: {base: a}}\n",
                  "t.yaml:3:14: key 'vm.disk.size': 65536.5 GiB is out of range", "size too large");
    expect_vm_err("qvm: vm\nname: t\ndisk: {size: 1e3, zvol: {base: a}}\n",
                  "t.yaml:3:14: key 'vm.disk.size': expected a size in GiB", "size with exponent");
    expect_vm_err("qvm: vm\nname: t\ndisk: {pool: ../x, zvol: {base: a}}\n",
                  "t.yaml:3:14: key 'vm.disk.pool': invalid pool name '../x'", "bad pool name");
    expect_vm_err("qvm: vm\nname: t\ndisk:\n  zvol:\n    base: Debian\n",
                  "t.yaml:5:11: key 'vm.disk.zvol.base': invalid image name 'Debian'", "bad image name");
    expect_vm_err("qvm: vm\nname: t\ndisk:\n  zvol:\n    base: debian@latest\n",
                  "t.yaml:5:11: key 'vm.disk.zvol.base': invalid image version 'latest' in 'debian@latest': expected vN or base",
                  "bad image version");
    expect_vm_err("qvm: vm\nname: t\ndisk:\n  zvol:\n    base: tank/vol\n",
                  "t.yaml:5:11: key 'vm.disk.zvol.base': invalid ZFS snapshot", "raw ZFS name without snapshot");
    expect_vm_err("qvm: vm\nname: t\ndisk:\n  zvol:\n    base: \"tank/v ol@s\"\n",
                  "t.yaml:5:11: key 'vm.disk.zvol.base': invalid ZFS snapshot", "raw ZFS name with a space");
    expect_vm_err("qvm: vm\nname: t\ndisk:\n  zvol:\n    base: a\n    name: Root\n",
                  "t.yaml:6:11: key 'vm.disk.zvol.name': invalid disk name 'Root'", "bad target name");
    expect_vm_err("qvm: vm\nname: t\ndisk:\n  zvol:\n    base: a\n    Compression: lz4\n",
                  "t.yaml:6:5: key 'vm.disk.zvol.Compression': invalid property name", "bad property name");
    expect_vm_err("qvm: vm\nname: t\ndisk:\n  zvol:\n    base: a\n    compression: {a: b}\n",
                  "t.yaml:6:18: key 'vm.disk.zvol.compression': expected a property value, got a mapping",
                  "property value a mapping");
    expect_vm_err("qvm: vm\nname: t\ndisk:\n  zvol:\n    base: a\n    compression:\n",
                  "t.yaml:6:17: key 'vm.disk.zvol.compression': expected a string, got nothing (null)", "property null");
    expect_vm_err("qvm: vm\nname: t\ndisk:\n  zvol:\n    base: a\n    comment: \"a\\nb\"\n",
                  "t.yaml:6:14: key 'vm.disk.zvol.comment': the property value contains a control character",
                  "property with a newline");
    expect_vm_err(VM_OK "network: bridge\n",
                  "t.yaml:6:10: key 'vm.network': 'bridge' is not supported (expected one of user, none)", "network bridge");
    expect_vm_err(VM_OK "network: {model: ne2k}\n",
                  "t.yaml:6:18: key 'vm.network.model': 'ne2k' is not supported (expected one of virtio, e1000, rtl8139)",
                  "network model");
    expect_vm_err(VM_OK "network: {mac: \"53:54:00:12:34:56\"}\n",
                  "t.yaml:6:16: key 'vm.network.mac': invalid MAC address: expected a unicast address", "multicast MAC");
    expect_vm_err(VM_OK "network: {mac: \"00:00:00:00:00:00\"}\n",
                  "t.yaml:6:16: key 'vm.network.mac': invalid MAC address", "zero MAC");
    expect_vm_err(VM_OK "network: {mac: 52-54-00-12-34-56}\n",
                  "t.yaml:6:16: key 'vm.network.mac': invalid MAC address", "MAC with dashes");
    expect_vm_err(VM_OK "network: {ssh-port: 22}\n",
                  "t.yaml:6:21: key 'vm.network.ssh-port': 22 is out of range (1024 to 65535)", "privileged ssh-port");
    expect_vm_err(VM_OK "network: {ssh-port: \"2222\"}\n",
                  "t.yaml:6:21: key 'vm.network.ssh-port': expected auto, none or a port number (1024 to 65535), got the quoted string '2222'",
                  "quoted ssh-port");
    expect_vm_err(VM_OK "network: {type: none, ssh-port: 2222}\n",
                  "t.yaml:6:33: key 'vm.network.ssh-port': a forwarded SSH port needs network type user",
                  "ssh-port without a network");
}

static void test_limits(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e;
    /* Aliases: refused in the vm document, kept as written elsewhere. */
    expect_vm_err(VM_OK "x-mem: &m 1024\n",
                  "t.yaml:6:8: key 'vm.x-mem': YAML anchors and aliases are not allowed in the vm document",
                  "anchor in the vm document");
    expect_vm_err("qvm: vm\nname: t\ndisk: &d {zvol: {base: a}}\n",
                  "t.yaml:3:7: key 'vm.disk': YAML anchors and aliases are not allowed", "anchor on disk");
    expect_err("qvm: user-data\na: &a [1, 2]\n---\nqvm: vm\nname: t\nmemory: *a\n---\nqvm: meta-data\n",
               "t.yaml:6:9: key 'vm.memory': YAML anchors and aliases are not allowed", "alias in the vm document");
    const char *laughs =
        VM_OK "---\nqvm: user-data\n"
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        "---\nqvm: meta-data\n";
    int r = parse(laughs, &s, &e);
    CHECK(r == 0, "aliases in user-data are never expanded: %s", e.msg);
    if (r == 0) {
        CHECK_CONTAINS(s.user_data, "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n", "aliases kept as written");
        qvm_spec_release(&s);
    }

    /* Nesting: 64 levels are fine, 65 are not. */
    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, VM_OK "---\nqvm: user-data\nx: ");
    for (int i = 0; i < QVM_SPEC_MAX_DEPTH - 1; i++)
        strbuf_addch(&sb, '[');
    for (int i = 0; i < QVM_SPEC_MAX_DEPTH - 1; i++)
        strbuf_addch(&sb, ']');
    strbuf_addstr(&sb, "\n---\nqvm: meta-data\n");
    r = parse(sb.buf, &s, &e);
    CHECK(r == 0, "nesting of %d levels accepted: %s", QVM_SPEC_MAX_DEPTH, e.msg);
    if (r == 0)
        qvm_spec_release(&s);
    strbuf_reset(&sb);
    strbuf_addstr(&sb, VM_OK "---\nqvm: user-data\nx: ");
    for (int i = 0; i < 10000; i++)
        strbuf_addch(&sb, '[');
    char *want = xasprintf("t.yaml:8:%d: YAML nested deeper than 64 levels", 4 + QVM_SPEC_MAX_DEPTH - 1);
    expect_err(sb.buf, want, "deep nesting refused");
    free(want);

    /* Documents: 16 at most. */
    strbuf_reset(&sb);
    strbuf_addstr(&sb, VM_OK TAIL);
    for (int i = 0; i < 13; i++)
        strbuf_addstr(&sb, "---\nx: 1\n");
    expect_err(sb.buf, "t.yaml:11:1: document 4: missing key 'qvm'", "16 documents are read");
    strbuf_addstr(&sb, "---\nx: 1\n");
    expect_err(sb.buf, "t.yaml:36:1: too many documents (a qvm file holds at most 16)", "17 documents refused");

    /* Scalars: 64 KiB at most. */
    strbuf_reset(&sb);
    strbuf_addstr(&sb, VM_OK "---\nqvm: user-data\nbig: ");
    for (int i = 0; i < 65536; i++)
        strbuf_addch(&sb, 'a');
    strbuf_addstr(&sb, "\n---\nqvm: meta-data\n");
    r = parse(sb.buf, &s, &e);
    CHECK(r == 0, "a 64 KiB scalar is accepted: %s", e.msg);
    if (r == 0)
        qvm_spec_release(&s);
    strbuf_reset(&sb);
    strbuf_addstr(&sb, VM_OK "---\nqvm: user-data\nbig: ");
    for (int i = 0; i < 65537; i++)
        strbuf_addch(&sb, 'a');
    strbuf_addstr(&sb, "\n");
    expect_err(sb.buf, "t.yaml:8:6: scalar of 65537 bytes is longer than the 65536 byte limit", "oversized scalar");

    /* Nodes: a flood of tiny ones is cut off. */
    strbuf_reset(&sb);
    strbuf_addstr(&sb, "x: [");
    for (int i = 0; i < 200000; i++)
        strbuf_addstr(&sb, "a,");
    strbuf_addstr(&sb, "]\n");
    expect_err(sb.buf, "t.yaml:1:262143: too many YAML nodes (limit 131072)", "node flood");

    /* The file: 1 MiB at most. */
    strbuf_reset(&sb);
    strbuf_addstr(&sb, VM_OK TAIL "#");
    while (sb.len <= QVM_SPEC_MAX_FILE)
        strbuf_addstr(&sb, "################");
    r = qvm_spec_parse("t.yaml", sb.buf, sb.len, &s, &e);
    CHECK(r == -EFBIG, "a file over 1 MiB is refused with EFBIG");
    CHECK_CONTAINS(e.msg, "t.yaml: too large", "oversized file message");
    strbuf_release(&sb);
}

static void test_load(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e = { 0 };
    int r = qvm_spec_load("/nonexistent/qvm-test.yaml", &s, &e);
    CHECK(r == -ENOENT, "missing file: ENOENT");
    CHECK_STR(e.msg, "cannot open /nonexistent/qvm-test.yaml: No such file or directory", "missing file message");
    struct qvm_vm_spec zero = { 0 };
    qvm_spec_release(&zero);
    qvm_spec_release(NULL);
    CHECK(zero.name == NULL, "release accepts a zeroed struct and NULL");
    r = qvm_spec_parse("t.yaml", VM_OK TAIL, strlen(VM_OK TAIL), &s, NULL);
    CHECK(r == 0, "a NULL error pointer is fine");
    if (r == 0)
        qvm_spec_release(&s);
    r = qvm_spec_parse("t.yaml", "qvm: vm\n", 8, &s, NULL);
    CHECK(r == -EINVAL, "a NULL error pointer on failure");
}

int main(void)
{
    test_full();
    test_defaults();
    test_forms();
    test_nic_lists();
    test_hello_example();
    test_user_data_text();
    test_meta_data();
    test_document_errors();
    test_syntax_errors();
    test_vm_key_errors();
    test_type_errors();
    test_limits();
    test_load();
    return test_done();
}
