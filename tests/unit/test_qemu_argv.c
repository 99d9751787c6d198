/* test_qemu_argv.c - the exact QEMU command lines qvm builds. A change here
 * is a change in what qvm runs: review it as such. */
#include <stdlib.h>
#include <string.h>

#include "runtime/qemu.h"
#include "test.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

static struct qvm_vm_spec base_spec(void)
{
    struct qvm_vm_spec s;
    memset(&s, 0, sizeof s);
    s.name = "web1";
    s.memory_mib = 2048;
    s.vcpus = 2;
    s.cpu = "host-model";
    s.accel = "auto";
    s.machine = "q35";
    s.boot = "hd";
    s.graphics = QVM_GRAPHICS_NONE;
    s.disk.bus = "virtio";
    s.disk.cache = NULL;          /* default: writeback */
    s.net.type = QVM_NET_USER;
    s.net.model = "virtio";
    s.net.ssh_port = 0;
    return s;
}

static struct qvm_qemu_config base_cfg(const struct qvm_vm_spec *s)
{
    struct qvm_qemu_config c = {
        .spec = s,
        .qemu_binary = "qemu-system-x86_64",
        .accel = "tcg",
        .disk_path = "/var/lib/qvm/pools/default/web1/disk0.qcow2",
        .disk_format = "qcow2",
        .disk_is_block = false,
        .seed_path = "/run/qvm/vms/web1/seed.iso",
        .qmp_socket = "/run/qvm/vms/web1/qmp.sock",
        .console_socket = "/run/qvm/vms/web1/console.sock",
        .console_log = "/run/qvm/vms/web1/console.log",
        .qga_socket = "/run/qvm/vms/web1/qga.sock",
        .vnc_socket = "/run/qvm/vms/web1/vnc.sock",
        .pid_file = "/run/qvm/vms/web1/qemu.pid",
        .mac = "52:54:00:12:34:56",
        .ssh_port = 2222,
    };
    return c;
}

/* The argv as one line (quoted where needed), NULL if the builder refused. */
static char *argv_line(const struct qvm_qemu_config *c)
{
    char **argv = qvm_qemu_argv(c);
    if (!argv)
        return NULL;
    char *s = qvm_argv_to_string((const char *const *)argv);
    qvm_argv_free(argv);
    return s;
}

/* The argument that follows the first FLAG whose value starts with PREFIX
 * ("" matches any), or NULL. Caller frees. */
static char *arg_after(const struct qvm_qemu_config *c, const char *flag, const char *prefix)
{
    char **argv = qvm_qemu_argv(c);
    char *res = NULL;
    for (size_t i = 0; argv && argv[i] && argv[i + 1]; i++)
        if (strcmp(argv[i], flag) == 0 && strncmp(argv[i + 1], prefix, strlen(prefix)) == 0) {
            res = strdup(argv[i + 1]);
            break;
        }
    qvm_argv_free(argv);
    return res;
}

static void test_main_case(void)
{
    struct qvm_vm_spec s = base_spec();
    struct qvm_qemu_config c = base_cfg(&s);
    char *line = argv_line(&c);
    CHECK_STR(line,
        "qemu-system-x86_64"
        " -name guest=web1,process=qvm-web1"
        " -machine q35,accel=tcg"
        " -cpu max"
        " -smp 2"
        " -m 2048M"
        " -nodefaults -no-user-config"
        " -display none"
        " -vga none"
        " -drive file=/var/lib/qvm/pools/default/web1/disk0.qcow2,if=none,id=disk0,format=qcow2,"
        "cache=writeback,discard=unmap"
        " -device virtio-blk-pci,drive=disk0,bootindex=1"
        " -drive file=/run/qvm/vms/web1/seed.iso,if=none,id=cidata,format=raw,readonly=on"
        " -device virtio-blk-pci,drive=cidata"
        " -netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22"
        " -device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56"
        " -chardev socket,id=serial0,path=/run/qvm/vms/web1/console.sock,server=on,wait=off,"
        "logfile=/run/qvm/vms/web1/console.log,logappend=on"
        " -serial chardev:serial0"
        " -chardev socket,id=qmp,path=/run/qvm/vms/web1/qmp.sock,server=on,wait=off"
        " -mon chardev=qmp,mode=control"
        " -chardev socket,id=qga0,path=/run/qvm/vms/web1/qga.sock,server=on,wait=off"
        " -device virtio-serial-pci,id=vser0"
        " -device virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0"
        " -device virtio-rng-pci"
        " -boot order=c"
        " -daemonize -pidfile /run/qvm/vms/web1/qemu.pid",
        "user network + ssh forward, graphics none, tcg, q35: exact argv");
    free(line);
}

static void test_none_vnc_kvm_block(void)
{
    struct qvm_vm_spec s = base_spec();
    s.name = "db";
    s.memory_mib = 4096;
    s.vcpus = 4;
    s.cpu = "host-passthrough";
    s.graphics = QVM_GRAPHICS_VNC;
    s.net.type = QVM_NET_NONE;
    s.disk.cache = "none";
    struct qvm_qemu_config c = base_cfg(&s);
    c.accel = "kvm";
    c.disk_path = "/dev/zvol/tank/qvm/db";
    c.disk_format = "raw";
    c.disk_is_block = true;
    c.seed_path = "/run/qvm/vms/db/seed.iso";
    c.qmp_socket = "/run/qvm/vms/db/qmp.sock";
    c.console_socket = "/run/qvm/vms/db/console.sock";
    c.console_log = "/run/qvm/vms/db/console.log";
    c.qga_socket = "/run/qvm/vms/db/qga.sock";
    c.vnc_socket = "/run/qvm/vms/db/vnc.sock";
    c.pid_file = "/run/qvm/vms/db/qemu.pid";
    c.mac = NULL;
    c.ssh_port = 0;
    char *line = argv_line(&c);
    CHECK_STR(line,
        "qemu-system-x86_64"
        " -name guest=db,process=qvm-db"
        " -machine q35,accel=kvm"
        " -cpu host"
        " -smp 4"
        " -m 4096M"
        " -nodefaults -no-user-config"
        " -display none"
        " -vga std -vnc unix:/run/qvm/vms/db/vnc.sock"
        " -drive file=/dev/zvol/tank/qvm/db,if=none,id=disk0,format=raw,cache=none,"
        "discard=unmap,aio=native"
        " -device virtio-blk-pci,drive=disk0,bootindex=1"
        " -drive file=/run/qvm/vms/db/seed.iso,if=none,id=cidata,format=raw,readonly=on"
        " -device virtio-blk-pci,drive=cidata"
        " -nic none"
        " -chardev socket,id=serial0,path=/run/qvm/vms/db/console.sock,server=on,wait=off,"
        "logfile=/run/qvm/vms/db/console.log,logappend=on"
        " -serial chardev:serial0"
        " -chardev socket,id=qmp,path=/run/qvm/vms/db/qmp.sock,server=on,wait=off"
        " -mon chardev=qmp,mode=control"
        " -chardev socket,id=qga0,path=/run/qvm/vms/db/qga.sock,server=on,wait=off"
        " -device virtio-serial-pci,id=vser0"
        " -device virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0"
        " -device virtio-rng-pci"
        " -boot order=c"
        " -daemonize -pidfile /run/qvm/vms/db/qemu.pid",
        "network none, vnc, kvm, raw block disk with cache=none: exact argv");
    free(line);
}

static void test_cpu_mapping(void)
{
    static const struct { const char *cpu, *accel, *want; } cases[] = {
        { "host-passthrough", "tcg", "max" },
        { "host", "tcg", "max" },
        { "host-model", "tcg", "max" },
        { NULL, "tcg", "max" },
        { "max", "tcg", "max" },
        { "Skylake-Client-v4", "tcg", "Skylake-Client-v4" },
        { "host-passthrough", "kvm", "host" },
        { "host", "kvm", "host" },
        { "host-model", "kvm", "host" },
        { NULL, "kvm", "host" },
        { "max", "kvm", "max" },
        { "EPYC-Rome", "kvm", "EPYC-Rome" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct qvm_vm_spec s = base_spec();
        s.cpu = (char *)cases[i].cpu;
        struct qvm_qemu_config c = base_cfg(&s);
        c.accel = cases[i].accel;
        char *cpu = arg_after(&c, "-cpu", "");
        CHECK_STR(cpu, cases[i].want, "cpu %s under %s -> %s",
                  cases[i].cpu ? cases[i].cpu : "(default)", cases[i].accel, cases[i].want);
        free(cpu);
        char *machine = arg_after(&c, "-machine", "");
        CHECK_CONTAINS(machine, cases[i].accel, "-machine carries accel=%s", cases[i].accel);
        free(machine);
    }
}

/* Every -device argument, joined with " | ", for the bus cases. */
static char *devices(const struct qvm_qemu_config *c)
{
    char **argv = qvm_qemu_argv(c);
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; argv[i] && argv[i + 1]; i++)
        if (strcmp(argv[i], "-device") == 0 && strncmp(argv[i + 1], "virtio-rng", 10) &&
            strncmp(argv[i + 1], "virtserialport", 14) && strncmp(argv[i + 1], "virtio-serial", 13)) {
            if (sb.len)
                strbuf_addstr(&sb, " | ");
            strbuf_addstr(&sb, argv[i + 1]);
        }
    qvm_argv_free(argv);
    return strbuf_detach(&sb, NULL);
}

static void test_buses(void)
{
    static const struct { const char *machine, *bus, *want; } cases[] = {
        { "q35", "virtio", "virtio-blk-pci,drive=disk0,bootindex=1 | virtio-blk-pci,drive=cidata"
                           " | virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56" },
        { "q35", "scsi", "virtio-scsi-pci,id=scsi0 | scsi-hd,bus=scsi0.0,drive=disk0,bootindex=1"
                         " | virtio-blk-pci,drive=cidata"
                         " | virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56" },
        { "q35", "sata", "ide-hd,bus=ide.0,drive=disk0,bootindex=1 | virtio-blk-pci,drive=cidata"
                         " | virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56" },
        { "q35", "ide", "ide-hd,bus=ide.0,drive=disk0,bootindex=1 | virtio-blk-pci,drive=cidata"
                        " | virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56" },
        { "pc", "sata", "ahci,id=sata0 | ide-hd,bus=sata0.0,drive=disk0,bootindex=1"
                        " | virtio-blk-pci,drive=cidata"
                        " | virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56" },
        { "pc", "ide", "ide-hd,bus=ide.0,drive=disk0,bootindex=1 | virtio-blk-pci,drive=cidata"
                       " | virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56" },
        { "pc", "virtio", "virtio-blk-pci,drive=disk0,bootindex=1 | virtio-blk-pci,drive=cidata"
                          " | virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct qvm_vm_spec s = base_spec();
        s.machine = (char *)cases[i].machine;
        s.disk.bus = (char *)cases[i].bus;
        struct qvm_qemu_config c = base_cfg(&s);
        char *d = devices(&c);
        CHECK_STR(d, cases[i].want, "%s bus on %s: devices", cases[i].bus, cases[i].machine);
        free(d);
        char *m = arg_after(&c, "-machine", "");
        CHECK_STR(m, strcmp(cases[i].machine, "pc") ? "q35,accel=tcg" : "pc,accel=tcg",
                  "%s machine", cases[i].machine);
        free(m);
    }
}

static void test_nic_models_and_boot(void)
{
    struct qvm_vm_spec s = base_spec();
    s.net.model = "e1000";
    s.boot = "network,hd";
    struct qvm_qemu_config c = base_cfg(&s);
    c.ssh_port = 0;
    char *d = devices(&c);
    CHECK_STR(d, "virtio-blk-pci,drive=disk0,bootindex=2 | virtio-blk-pci,drive=cidata"
                 " | e1000,netdev=net0,mac=52:54:00:12:34:56,bootindex=1",
              "boot network,hd: NIC first, then the disk; e1000 model");
    free(d);
    char *b = arg_after(&c, "-boot", "");
    CHECK_STR(b, "order=nc", "-boot order=nc");
    free(b);
    char *n = arg_after(&c, "-netdev", "");
    CHECK_STR(n, "user,id=net0", "no ssh forward when ssh_port is 0");
    free(n);

    s.net.model = "rtl8139";
    s.boot = "cdrom,hd";
    s.net.mac = "52:54:00:aa:bb:cc";
    c.mac = NULL;
    d = devices(&c);
    CHECK_CONTAINS(d, "rtl8139,netdev=net0,mac=52:54:00:aa:bb:cc", "rtl8139 with the spec's MAC");
    CHECK_CONTAINS(d, "drive=disk0,bootindex=2", "disk second after cdrom");
    free(d);
    b = arg_after(&c, "-boot", "");
    CHECK_STR(b, "order=dc", "-boot order=dc");
    free(b);
}

static void test_escaping_and_optional(void)
{
    struct qvm_vm_spec s = base_spec();
    struct qvm_qemu_config c = base_cfg(&s);
    c.disk_path = "/srv/a,b/disk0.qcow2";
    c.qmp_socket = "/tmp/x,y/qmp.sock";
    c.console_log = "/tmp/x,y/console.log";
    char *drv = arg_after(&c, "-drive", "file=/srv");
    CHECK_STR(drv, "file=/srv/a,,b/disk0.qcow2,if=none,id=disk0,format=qcow2,cache=writeback,"
                   "discard=unmap", "commas in the disk path are doubled");
    free(drv);
    char *qmp = arg_after(&c, "-chardev", "socket,id=qmp");
    CHECK_STR(qmp, "socket,id=qmp,path=/tmp/x,,y/qmp.sock,server=on,wait=off",
              "commas in the QMP socket path are doubled");
    free(qmp);
    char *ser = arg_after(&c, "-chardev", "socket,id=serial0");
    CHECK_CONTAINS(ser, "logfile=/tmp/x,,y/console.log,logappend=on", "commas in the log path");
    free(ser);

    c.qga_socket = NULL;
    c.console_log = NULL;
    c.seed_path = NULL;
    c.pid_file = NULL;
    char *line = argv_line(&c);
    CHECK(line && !strstr(line, "qga0") && !strstr(line, "virtio-serial"),
          "no guest agent channel without a QGA socket");
    CHECK(line && !strstr(line, "logfile="), "no console log when none is given");
    CHECK(line && !strstr(line, "cidata"), "no seed drive when none is given");
    CHECK(line && !strstr(line, "-daemonize"), "no -daemonize without a pid file");
    free(line);

    /* (CHECK evaluates its condition twice: no calls inside it.) */
    char **none = qvm_qemu_argv(NULL);
    CHECK(none == NULL, "NULL config is refused");
    c.disk_path = NULL;
    none = qvm_qemu_argv(&c);
    CHECK(none == NULL, "a config without a disk is refused");
    qvm_argv_free(NULL);
    CHECK(1, "qvm_argv_free(NULL) is a no-op");
}

/* A disk list: every disk in list order, one controller per kind, the next
 * free port for each, hd's bootindex on the boot disk only. */
static void test_data_disks(void)
{
    struct qvm_vm_spec s = base_spec();
    struct qvm_disk_spec data[4] = {
        { .target_name = "scratch", .bus = "scsi", .cache = "none" },
        { .target_name = "logs", .bus = "scsi", .cache = "writeback" },
        { .target_name = "disk3", .bus = "sata", .cache = "writeback", .boot = true },
        { .target_name = "disk4", .bus = "virtio", .cache = "unsafe" },
    };
    s.disk.bus = "sata";
    s.data_disks = data;
    s.ndata_disks = 4;
    s.image_disk_pos = 1;
    s.boot = "network,hd";
    const struct qvm_qemu_disk host[4] = {
        { "/p/vms/web1/scratch.raw", "raw", false },
        { "/q/vms/web1/logs/disk.raw", "raw", false },
        { "/p/vms/web1/disk3.raw", "raw", false },
        { "/dev/zvol/t/vms/web1/disk4", "raw", true },
    };
    struct qvm_qemu_config c = base_cfg(&s);
    c.data_disks = host;
    c.seed_path = NULL;
    c.console_socket = c.qmp_socket = c.qga_socket = c.pid_file = NULL;
    char *line = argv_line(&c);
    CHECK_STR(line,
              "qemu-system-x86_64 -name guest=web1,process=qvm-web1 -machine q35,accel=tcg "
              "-cpu max -smp 2 -m 2048M -nodefaults -no-user-config -display none -vga none "
              "-drive file=/p/vms/web1/scratch.raw,if=none,id=disk-scratch,format=raw,cache=none,discard=unmap "
              "-device virtio-scsi-pci,id=scsi0 -device scsi-hd,bus=scsi0.0,drive=disk-scratch "
              "-drive file=/var/lib/qvm/pools/default/web1/disk0.qcow2,if=none,id=disk0,format=qcow2,"
              "cache=writeback,discard=unmap -device ide-hd,bus=ide.0,drive=disk0 "
              "-drive file=/q/vms/web1/logs/disk.raw,if=none,id=disk-logs,format=raw,cache=writeback,discard=unmap "
              "-device scsi-hd,bus=scsi0.0,drive=disk-logs "
              "-drive file=/p/vms/web1/disk3.raw,if=none,id=disk-disk3,format=raw,cache=writeback,discard=unmap "
              "-device ide-hd,bus=ide.1,drive=disk-disk3,bootindex=2 "
              "-drive file=/dev/zvol/t/vms/web1/disk4,if=none,id=disk-disk4,format=raw,cache=unsafe,discard=unmap "
              "-device virtio-blk-pci,drive=disk-disk4 "
              "-netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22 "
              "-device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,bootindex=1 "
              "-device virtio-rng-pci -boot order=nc",
              "four data disks around a sata image disk on q35");
    free(line);

    /* pc: its own AHCI for sata (made once), PIIX's two channels for ide. */
    s.machine = "pc";
    s.boot = "hd";
    s.disk.bus = "ide";
    data[0].bus = "ide";
    data[1].bus = "sata";
    data[2].bus = "ide";
    data[3].bus = "sata";
    data[2].boot = false;
    s.image_disk_pos = 0;
    char *d0 = arg_after(&c, "-device", "ide-hd,bus=ide.0,drive=disk0");
    char *d1 = arg_after(&c, "-device", "ide-hd,bus=ide.0,drive=disk-scratch");
    char *d2 = arg_after(&c, "-device", "ide-hd,bus=sata0.0,drive=disk-logs");
    char *d3 = arg_after(&c, "-device", "ide-hd,bus=ide.1,drive=disk-disk3");
    char *d4 = arg_after(&c, "-device", "ide-hd,bus=sata0.1,drive=disk-disk4");
    CHECK_STR(d0, "ide-hd,bus=ide.0,drive=disk0,bootindex=1", "pc: the image disk boots, ide.0 master");
    CHECK(d1 && d2 && d3 && d4, "pc: ide.0 slave, sata0.0, ide.1, sata0.1");
    line = argv_line(&c);
    const char *ahci = line ? strstr(line, "ahci,id=sata0") : NULL;
    CHECK(ahci && !strstr(ahci + 1, "ahci,id=sata0"), "pc: one AHCI controller");
    free(line);
    free(d0);
    free(d1);
    free(d2);
    free(d3);
    free(d4);
}

/* Several NICs: taps for network/bridge NICs as the fds qvm passes, a user
 * NIC's forward on the first only, each NIC's own MAC and netdev id. */
static void test_several_nics(void)
{
    struct qvm_vm_spec s = base_spec();
    s.net.type = QVM_NET_NETWORK;
    s.net.source = "lan";
    s.nextra_nets = 2;
    s.extra_nets[0] = (struct qvm_net_spec){ .type = QVM_NET_BRIDGE, .source = "br0", .model = "e1000",
                                             .mac = "52:54:00:00:00:02", .ssh_port = -1 };
    s.extra_nets[1] = (struct qvm_net_spec){ .type = QVM_NET_USER, .model = "virtio",
                                             .mac = "52:54:00:00:00:03", .ssh_port = -1 };
    struct qvm_qemu_config c = base_cfg(&s);
    c.ssh_port = 0;
    c.tap_fd[0] = 3;
    c.tap_fd[1] = 4;
    char *line = argv_line(&c);
    CHECK_CONTAINS(line, "-netdev tap,id=net0,fd=3 -device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56",
                   "NIC 0: a tap on fd 3 with the VM's MAC");
    CHECK_CONTAINS(line, "-netdev tap,id=net1,fd=4 -device e1000,netdev=net1,mac=52:54:00:00:00:02",
                   "NIC 1: a tap on fd 4, e1000, its MAC");
    CHECK_CONTAINS(line, "-netdev user,id=net2 -device virtio-net-pci,netdev=net2,mac=52:54:00:00:00:03",
                   "NIC 2: user networking without a forward");
    CHECK(line && !strstr(line, "hostfwd"), "no forward on a VM whose first NIC is a tap");
    free(line);

    s.net.type = QVM_NET_USER;
    s.net.source = NULL;
    c.ssh_port = 2222;
    char *n = arg_after(&c, "-netdev", "user,id=net0");
    CHECK_STR(n, "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22", "a user first NIC keeps its forward");
    free(n);
}

int main(void)
{
    test_several_nics();
    test_data_disks();
    test_main_case();
    test_none_vnc_kvm_block();
    test_cpu_mapping();
    test_buses();
    test_nic_models_and_boot();
    test_escaping_and_optional();
    return test_done();
}
