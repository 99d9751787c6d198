/* test_virt_install.c - the virt-install command line of `runtime:
 * virt-install` as exact argv, the vm document's passthrough options, the
 * runtime keys and libvirt network spellings of the qvm file, and the
 * osinfo-db lookup. A change here is a change in what qvm runs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/qemu.h"
#include "runtime/virt_install.h"
#include "spec/spec.h"
#include "test.h"
#include "util/fsutil.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

static const char *const tail =
    "---\nqvm: user-data\nruncmd:\n  - [true]\n---\nqvm: meta-data\ninstance-id: x-1\n";

static int parse(const char *vm_doc, struct qvm_vm_spec *s, struct qvm_error *e)
{
    char *text = xasprintf("qvm: vm\n%s%s", vm_doc, tail);
    int r = qvm_spec_parse("t.yaml", text, strlen(text), s, e);
    free(text);
    return r;
}

static void expect_err(const char *vm_doc, const char *want, const char *what)
{
    struct qvm_vm_spec s;
    struct qvm_error e = { 0 };
    int r = parse(vm_doc, &s, &e);
    CHECK(r == -EINVAL, "%s: refused", what);
    CHECK_CONTAINS(e.msg, want, "%s: message", what);
    if (r == 0)
        qvm_spec_release(&s);
}

#define DISK "disk:\n  zvol:\n    base: debian12\n"

static void test_spec_keys(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e = { 0 };
    CHECK(parse("name: a\nruntime: libvirt\nruntime-uri: qemu+ssh://root@host/system\n" DISK,
                &s, &e) == 0, "runtime and runtime-uri parse (%s)", e.msg);
    CHECK_STR(s.runtime, "libvirt", "runtime");
    CHECK_STR(s.runtime_uri, "qemu+ssh://root@host/system", "runtime-uri");
    qvm_spec_release(&s);
    expect_err("name: a\nruntime: xen\n" DISK, "'xen' is not supported (expected one of qemu, libvirt, virt-install)",
               "an unknown runtime");
    expect_err("name: a\nruntime-uri: not a uri\n" DISK, "expected a libvirt URI", "a malformed URI");
    CHECK(parse("name: a\nnetwork: bridge=br0\n" DISK, &s, &e) == 0 && s.net.type == QVM_NET_BRIDGE &&
              strcmp(s.net.source, "br0") == 0 && s.net.ssh_port == -1,
          "network: bridge=br0 (virt-install's spelling): a bridge, no forwarded port");
    qvm_spec_release(&s);
    CHECK(parse("name: a\nnetwork:\n  network: default\n  model: e1000\n" DISK, &s, &e) == 0 &&
              s.net.type == QVM_NET_NETWORK && strcmp(s.net.source, "default") == 0 &&
              strcmp(s.net.model, "e1000") == 0,
          "network: {network: default, model: e1000}");
    qvm_spec_release(&s);
    expect_err("name: a\nnetwork:\n  network: default\n  bridge: br0\n" DISK,
               "give one of network and bridge, not both", "network and bridge together");
    expect_err("name: a\nnetwork:\n  type: user\n  bridge: br0\n" DISK, "type and bridge exclude each other",
               "type with bridge");
    expect_err("name: a\nnetwork: bridge=a-name-longer-than-15\n" DISK, "invalid bridge name",
               "a bridge name longer than an interface name");
    expect_err("name: a\nnetwork:\n  bridge: br0\n  ssh-port: 2222\n" DISK,
               "a forwarded SSH port needs network type user", "ssh-port on a bridge");
}

static void test_passthrough(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e = { 0 };
    /* The keys qvm does not model, in order, with seed 6.4's three kinds. */
    int r = parse("rng: /dev/urandom\nname: a\nruntime: virt-install\nnoreboot: true\n"
                  "autostart-x: false\nsound:\nchannel:\n  - spicevmc\n"
                  "  - type: unix\n    target: {type: virtio, name: org.example.0}\n"
                  "features: {kvm_hidden: on}\n" DISK, &s, &e);
    CHECK(r == 0, "virt-install mode keeps unknown keys, wherever runtime is written (%s)", e.msg);
    if (r == 0) {
        struct strbuf sb = STRBUF_INIT;
        for (size_t i = 0; i < s.nvi_opts; i++)
            strbuf_addf(&sb, "%s--%s%s%s", i ? " " : "", s.vi_opts[i].key,
                        s.vi_opts[i].value ? "=" : "", s.vi_opts[i].value ? s.vi_opts[i].value : "");
        CHECK_STR(sb.buf, "--rng=/dev/urandom --noreboot --sound --channel=spicevmc "
                          "--channel=type=unix,target.type=virtio,target.name=org.example.0 "
                          "--features=kvm_hidden=on",
                  "as options: a value, a flag, false dropped, nothing a flag, a list repeated, "
                  "sub-options dotted");
        strbuf_release(&sb);
        qvm_spec_release(&s);
    }
    expect_err("name: a\nruntime: virt-install\nconnect: qemu:///session\n" DISK,
               "qvm sets virt-install's --connect itself", "an option qvm sets is refused");
    expect_err("name: a\nruntime: virt-install\nextra-args: a,b\n" DISK,
               "cannot hold commas", "a comma in a value is refused");
    expect_err("name: a\nruntime: virt-install\nBad_Key: 1\n" DISK,
               "not a virt-install option name", "a key that is no option name");
    expect_err("name: a\nruntime: libvirt\nrng: /dev/urandom\n" DISK,
               "unsupported option 'rng'", "other runtimes still refuse unknown keys");
}

static char *line_for(const struct qvm_domain_config *c, const char *osinfo, enum qvm_vi_mode m)
{
    char **argv = NULL;
    struct qvm_error e = { 0 };
    if (qvm_virt_install_argv(c, "qemu:///system", osinfo, m, &argv, &e) < 0) {
        printf("#   %s\n", e.msg);
        return NULL;
    }
    char *line = qvm_argv_to_string((const char *const *)argv);
    qvm_argv_free(argv);
    return line;
}

static void test_argv(void)
{
    struct qvm_vm_spec s;
    struct qvm_error e = { 0 };
    if (parse("name: seed-vm\nmemory: 1024\nvcpus: 2\nos-variant: debian12\nimport: true\n"
              "noautoconsole: true\ngraphics: none\nnetwork: user\nruntime: virt-install\n"
              "sound: none\n" DISK, &s, &e) < 0) {
        CHECK(0, "parse: %s", e.msg);
        return;
    }
    const char *b = "/var/lib/qvm/pools/default/vms/seed-vm";
    char disk[128], seedp[128], log[128];
    snprintf(disk, sizeof disk, "%s/disk0.qcow2", b);
    snprintf(seedp, sizeof seedp, "%s/seed.iso", b);
    snprintf(log, sizeof log, "%s/console.log", b);
    struct qvm_domain_config c = {
        .spec = &s, .uuid = "6f1c9a52-3d4e-4b7a-9c1d-2e8f0a6b5c4d", .accel = "tcg",
        .pool = "default", .disk_path = disk, .disk_format = "qcow2", .seed_path = seedp,
        .console_log = log, .mac = "52:54:00:ab:cd:ef", .ssh_port = 0,
    };
    char *line = line_for(&c, NULL, QVM_VI_DRY_RUN);
    CHECK_STR(line,
              "virt-install --connect qemu:///system --name seed-vm --uuid "
              "6f1c9a52-3d4e-4b7a-9c1d-2e8f0a6b5c4d --memory 1024 --vcpus 2 --cpu mode=maximum "
              "--virt-type qemu --machine q35 --osinfo detect=on,require=off --import "
              "--noautoconsole --boot hd --graphics none --disk "
              "path=/var/lib/qvm/pools/default/vms/seed-vm/disk0.qcow2,format=qcow2,bus=virtio,"
              "cache=writeback,discard=unmap --disk "
              "path=/var/lib/qvm/pools/default/vms/seed-vm/seed.iso,device=disk,format=raw,"
              "bus=virtio,readonly=on --controller type=usb,model=none --network "
              "user,model=virtio,mac=52:54:00:ab:cd:ef --serial "
              "pty,log.file=/var/lib/qvm/pools/default/vms/seed-vm/console.log,log.append=on "
              "--channel unix,target.type=virtio,target.name=org.qemu.guest_agent.0 --rng "
              "/dev/urandom --memballoon none --sound=none --dry-run",
              "seed-format file, TCG, unknown os-variant: the exact --dry-run argv");
    free(line);
    line = line_for(&c, "debian11", QVM_VI_INSTALL);
    CHECK(line && strstr(line, "--osinfo debian11 ") && !strstr(line, "--dry-run") &&
              !strstr(line, "--print-xml"),
          "a known os-variant is passed; the real run has no --dry-run");
    free(line);
    line = line_for(&c, NULL, QVM_VI_PRINT_XML);
    CHECK(line && strlen(line) > 12 && strcmp(line + strlen(line) - 12, " --print-xml") == 0,
          "--no-start: --print-xml");
    free(line);

    /* A zvol on KVM with SCSI and cache none; a bridge; VNC; machine pc. */
    free(s.disk.bus);
    s.disk.bus = xstrdup("scsi");
    free(s.disk.cache);
    s.disk.cache = xstrdup("none");
    free(s.machine);
    s.machine = xstrdup("pc");
    s.graphics = QVM_GRAPHICS_VNC;
    s.net.type = QVM_NET_BRIDGE;
    s.net.source = xstrdup("br0");
    free(s.cpu);
    s.cpu = xstrdup("host-passthrough");
    c.disk_path = "/dev/zvol/tank/qvm/vms/seed-vm/disk0";
    c.disk_format = "raw";
    c.disk_is_block = true;
    c.accel = "kvm";
    line = line_for(&c, NULL, QVM_VI_INSTALL);
    CHECK_CONTAINS(line, "--cpu mode=host-passthrough --virt-type kvm --machine pc ",
                   "KVM: host-passthrough, machine pc");
    CHECK_CONTAINS(line, "--graphics vnc,listen=127.0.0.1 ", "VNC on localhost");
    CHECK_CONTAINS(line, "--disk path=/dev/zvol/tank/qvm/vms/seed-vm/disk0,format=raw,bus=scsi,"
                         "cache=none,discard=unmap,io=native ",
                   "a zvol: raw, native AIO with cache none");
    CHECK_CONTAINS(line, "--controller type=scsi,model=virtio-scsi ", "the virtio-scsi controller");
    CHECK_CONTAINS(line, "--network bridge=br0,model=virtio,mac=52:54:00:ab:cd:ef ", "the bridge");
    free(line);

    c.console_log = "/srv/a,b/console.log";
    char **argv = NULL;
    CHECK(qvm_virt_install_argv(&c, NULL, NULL, QVM_VI_DRY_RUN, &argv, &e) == -EINVAL && !argv,
          "a path with a comma is refused, not mangled");
    CHECK_CONTAINS(e.msg, "/srv/a,b/console.log", "... naming it");
    qvm_spec_release(&s);
}

static void test_osinfo(void)
{
    char dir[] = "/tmp/qvm-osinfo.XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char *vendor = xasprintf("%s/os/debian.org", dir);
    struct qvm_error e = { 0 };
    qvm_mkdir_p(vendor, 0755, &e);
    char *file = xasprintf("%s/debian-11.xml", vendor);
    const char *xml = "<libosinfo><os id=\"http://debian.org/debian/11\">\n"
                      "  <short-id>debian11</short-id>\n  <short-id>debianbullseye</short-id>\n"
                      "</os></libosinfo>\n";
    qvm_write_file_atomic(file, xml, strlen(xml), 0644, &e);
    const char *dirs[] = { dir, NULL };
    CHECK(qvm_osinfo_known("debian11", dirs), "a short-id in the osinfo-db is known");
    CHECK(qvm_osinfo_known("debianbullseye", dirs), "so is its second short-id");
    CHECK(!qvm_osinfo_known("debian12", dirs), "debian12 is not (Debian 12's own osinfo-db)");
    CHECK(!qvm_osinfo_known("debian1", dirs), "a prefix of a short-id is not");
    CHECK(!qvm_osinfo_known("</short-id>", dirs), "markup is never looked up");
    qvm_rm_rf(dir, &e);
    free(file);
    free(vendor);
}

int main(void)
{
    test_spec_keys();
    test_passthrough();
    test_argv();
    test_osinfo();
    return test_done();
}
