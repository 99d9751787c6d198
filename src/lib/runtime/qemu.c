/* qemu.c - the QEMU command line for one VM (see qemu.h).
 *
 * Owns the mapping from a spec's virt-install vocabulary to QEMU options and
 * nothing else: no paths are invented here, no lengths are checked (socket
 * paths are the caller's to check), nothing is started. The order of the
 * options is fixed so that tests can compare the whole argv. */
#include "qemu.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"

struct argv_list {
    char **v;
    size_t n, alloc;
};

static void push_owned(struct argv_list *l, char *s)
{
    if (l->n + 2 > l->alloc) {
        l->alloc = l->alloc ? l->alloc * 2 : 64;
        l->v = xrealloc(l->v, l->alloc * sizeof *l->v);
    }
    l->v[l->n++] = s;
    l->v[l->n] = NULL;
}

static void push(struct argv_list *l, const char *s)
{
    push_owned(l, xstrdup(s));
}

static void pushf(struct argv_list *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pushf(struct argv_list *l, const char *fmt, ...)
{
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vaddf(&sb, fmt, ap);
    va_end(ap);
    push_owned(l, strbuf_detach(&sb, NULL));
}

/* QEMU's option syntax (QemuOpts, keyval) splits on ',' and reads ",," as a
 * literal comma. Names are validated and never contain one, but paths come
 * from QVM_ROOT and the storage pool, which the user chooses. */
static void add_escaped(struct strbuf *sb, const char *s)
{
    for (; *s; s++) {
        if (*s == ',')
            strbuf_addch(sb, ',');
        strbuf_addch(sb, *s);
    }
}

/* A "-chardev socket" server that QEMU listens on and never waits for. */
static void push_chardev(struct argv_list *l, const char *id, const char *path,
                         const char *logfile)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_addf(&sb, "socket,id=%s,path=", id);
    add_escaped(&sb, path);
    strbuf_addstr(&sb, ",server=on,wait=off");
    if (logfile) {
        strbuf_addstr(&sb, ",logfile=");
        add_escaped(&sb, logfile);
        strbuf_addstr(&sb, ",logappend=on");
    }
    push(l, "-chardev");
    push_owned(l, strbuf_detach(&sb, NULL));
}

static bool streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* TCG cannot pass the host CPU through; "max" is the closest it offers (every
 * feature TCG emulates). Under KVM, host-model is taken as host: QEMU has no
 * host-model of its own (that is libvirt's name for a named model close to
 * the host), and the VM never migrates, which is what host-model is for. */
static const char *cpu_model(const char *cpu, bool kvm)
{
    if (!cpu || streq(cpu, "host-passthrough") || streq(cpu, "host") ||
        streq(cpu, "host-model"))
        return kvm ? "host" : "max";
    return cpu;
}

static const char *nic_model(const char *model)
{
    if (!model || streq(model, "virtio"))
        return "virtio-net-pci";
    return model;   /* e1000, rtl8139: QEMU's device names equal virt-install's */
}

/* Position (1-based) of WHAT in the comma-separated boot list, 0 if absent. */
static int boot_index(const char *boot, const char *what)
{
    if (!boot || !*boot)
        return streq(what, "hd") ? 1 : 0;
    int idx = 0;
    const char *p = boot;
    size_t wl = strlen(what);
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        idx++;
        if (len == wl && strncmp(p, what, wl) == 0)
            return idx;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* "hd,network" -> "cn"; the spec parser has validated the words. */
static char *boot_order(const char *boot)
{
    struct strbuf sb = STRBUF_INIT;
    if (!boot || !*boot)
        boot = "hd";
    const char *p = boot;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 2 && strncmp(p, "hd", 2) == 0)
            strbuf_addch(&sb, 'c');
        else if (len == 5 && strncmp(p, "cdrom", 5) == 0)
            strbuf_addch(&sb, 'd');
        else if (len == 7 && strncmp(p, "network", 7) == 0)
            strbuf_addch(&sb, 'n');
        if (!end)
            break;
        p = end + 1;
    }
    if (sb.len == 0)
        strbuf_addch(&sb, 'c');
    return strbuf_detach(&sb, NULL);
}

/* Controllers shared by the disks of a list: made once, before the first
 * disk that needs one; disks on fixed ports take the next free one. */
struct disk_buses {
    bool scsi, ahci;
    int ports;          /* q35 AHCI ports (sata, ide) or pc's own AHCI (sata) used */
    int ide;            /* pc IDE places used (two per channel) */
};

/* One disk: -drive ID, its device, bootindex BOOTIDX (0: none). */
static void push_disk(struct argv_list *l, const struct qvm_disk_spec *d, const char *id,
                      const struct qvm_qemu_disk *host, int bootidx, bool q35,
                      struct disk_buses *b)
{
    const char *cache = d->cache ? d->cache : "writeback";
    const char *bus = d->bus ? d->bus : "virtio";

    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, "file=");
    add_escaped(&sb, host->path);
    strbuf_addf(&sb, ",if=none,id=%s,format=%s,cache=%s,discard=unmap", id,
                host->format ? host->format : "raw", cache);
    /* Linux native AIO is the fast path for a block device (a zvol) opened
     * with O_DIRECT; QEMU refuses aio=native without it. */
    if (host->is_block && (streq(cache, "none") || streq(cache, "directsync")))
        strbuf_addstr(&sb, ",aio=native");
    push(l, "-drive");
    push_owned(l, strbuf_detach(&sb, NULL));

    char boot[32] = "";
    if (bootidx > 0)
        snprintf(boot, sizeof boot, ",bootindex=%d", bootidx);

    if (streq(bus, "scsi")) {
        if (!b->scsi) {
            push(l, "-device");
            push(l, "virtio-scsi-pci,id=scsi0");
            b->scsi = true;
        }
        push(l, "-device");
        pushf(l, "scsi-hd,bus=scsi0.0,drive=%s%s", id, boot);
    } else if (streq(bus, "sata") && !q35) {
        /* pc has only the PIIX IDE controller: give it an AHCI one. */
        if (!b->ahci) {
            push(l, "-device");
            push(l, "ahci,id=sata0");
            b->ahci = true;
        }
        push(l, "-device");
        pushf(l, "ide-hd,bus=sata0.%d,drive=%s%s", b->ports++, id, boot);
    } else if (streq(bus, "ide") && !q35) {
        /* pc: PIIX's channels ide.0 and ide.1, master then slave. */
        push(l, "-device");
        pushf(l, "ide-hd,bus=ide.%d,drive=%s%s", b->ide++ / 2, id, boot);
    } else if (streq(bus, "sata") || streq(bus, "ide")) {
        /* q35's built-in AHCI (ich9-ahci, ports ide.0-ide.5) serves both
         * names: q35 has no PATA controller. */
        push(l, "-device");
        pushf(l, "ide-hd,bus=ide.%d,drive=%s%s", b->ports++, id, boot);
    } else {
        push(l, "-device");
        pushf(l, "virtio-blk-pci,drive=%s%s", id, boot);
    }
}

/* Every disk in the order of the qvm file's list (the image disk is
 * "disk0", a data disk "disk-NAME"); the boot disk gets hd's bootindex. */
static void push_disks(struct argv_list *l, const struct qvm_qemu_config *cfg, bool q35)
{
    const struct qvm_vm_spec *s = cfg->spec;
    struct disk_buses b = { 0 };
    int bootidx = boot_index(s->boot, "hd");
    size_t k = 0;
    for (size_t pos = 0; pos <= s->ndata_disks; pos++) {
        if (pos == s->image_disk_pos || !cfg->data_disks) {
            struct qvm_qemu_disk host = { cfg->disk_path, cfg->disk_format, cfg->disk_is_block };
            push_disk(l, &s->disk, "disk0", &host, qvm_spec_image_disk_boots(s) ? bootidx : 0,
                      q35, &b);
            if (!cfg->data_disks)
                return;
            continue;
        }
        const struct qvm_disk_spec *d = &s->data_disks[k];
        char id[80];
        snprintf(id, sizeof id, "disk-%s", d->target_name);
        push_disk(l, d, id, &cfg->data_disks[k], d->boot ? bootidx : 0, q35, &b);
        k++;
    }
}

/* The NoCloud seed is a read-only virtio-blk disk, not a CD-ROM: Debian's
 * cloud kernel (linux-image-cloud-amd64, 6.1.0-*-cloud-amd64) ships no ahci
 * driver, so an ide-cd on q35's AHCI controller is invisible to the guest,
 * while virtio_blk is in every cloud kernel. cloud-init finds the seed by
 * its file system label (blkid LABEL=cidata) on any block device and mounts
 * the ISO 9660 file system (isofs) from it. No bootindex: never a boot
 * device. */
static void push_seed(struct argv_list *l, const char *seed)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, "file=");
    add_escaped(&sb, seed);
    strbuf_addstr(&sb, ",if=none,id=cidata,format=raw,readonly=on");
    push(l, "-drive");
    push_owned(l, strbuf_detach(&sb, NULL));
    push(l, "-device");
    push(l, "virtio-blk-pci,drive=cidata");
}

static void push_nic(struct argv_list *l, const struct qvm_qemu_config *cfg, size_t i)
{
    const struct qvm_net_spec *n = qvm_spec_nic(cfg->spec, i);
    push(l, "-netdev");
    if (n->type == QVM_NET_NETWORK || n->type == QVM_NET_BRIDGE)
        pushf(l, "tap,id=net%zu,fd=%d", i, cfg->tap_fd[i]);
    else if (i == 0 && cfg->ssh_port > 0)
        pushf(l, "user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22", cfg->ssh_port);
    else
        pushf(l, "user,id=net%zu", i);

    const char *mac = i == 0 && cfg->mac ? cfg->mac : n->mac;
    struct strbuf sb = STRBUF_INIT;
    strbuf_addf(&sb, "%s,netdev=net%zu", nic_model(n->model), i);
    if (mac)
        strbuf_addf(&sb, ",mac=%s", mac);
    int bootidx = boot_index(cfg->spec->boot, "network");
    if (i == 0 && bootidx > 0)
        strbuf_addf(&sb, ",bootindex=%d", bootidx);
    push(l, "-device");
    push_owned(l, strbuf_detach(&sb, NULL));
}

static void push_net(struct argv_list *l, const struct qvm_qemu_config *cfg)
{
    if (cfg->spec->net.type == QVM_NET_NONE) {
        push(l, "-nic");
        push(l, "none");
        return;
    }
    for (size_t i = 0; i < qvm_spec_nic_count(cfg->spec); i++)
        push_nic(l, cfg, i);
}

char **qvm_qemu_argv(const struct qvm_qemu_config *cfg)
{
    if (!cfg || !cfg->spec || !cfg->spec->name || !cfg->disk_path)
        return NULL;
    const struct qvm_vm_spec *s = cfg->spec;
    bool kvm = streq(cfg->accel, "kvm");
    bool q35 = !streq(s->machine, "pc");
    struct argv_list l = { 0 };

    push(&l, cfg->qemu_binary ? cfg->qemu_binary : "qemu-system-x86_64");
    push(&l, "-name");
    pushf(&l, "guest=%s,process=qvm-%s", s->name, s->name);
    push(&l, "-machine");
    pushf(&l, "%s,accel=%s", q35 ? "q35" : "pc", kvm ? "kvm" : "tcg");
    push(&l, "-cpu");
    push(&l, cpu_model(s->cpu, kvm));
    push(&l, "-smp");
    pushf(&l, "%u", s->vcpus ? s->vcpus : 1);
    push(&l, "-m");
    pushf(&l, "%lluM", (unsigned long long)(s->memory_mib ? s->memory_mib : 1024));
    push(&l, "-nodefaults");
    push(&l, "-no-user-config");
    push(&l, "-display");
    push(&l, "none");
    push(&l, "-vga");
    if (s->graphics == QVM_GRAPHICS_VNC && cfg->vnc_socket) {
        push(&l, "std");
        struct strbuf sb = STRBUF_INIT;
        strbuf_addstr(&sb, "unix:");
        add_escaped(&sb, cfg->vnc_socket);
        push(&l, "-vnc");
        push_owned(&l, strbuf_detach(&sb, NULL));
    } else {
        push(&l, "none");
    }

    push_disks(&l, cfg, q35);
    if (cfg->seed_path)
        push_seed(&l, cfg->seed_path);
    push_net(&l, cfg);

    if (cfg->console_socket) {
        push_chardev(&l, "serial0", cfg->console_socket, cfg->console_log);
        push(&l, "-serial");
        push(&l, "chardev:serial0");
    }
    if (cfg->qmp_socket) {
        push_chardev(&l, "qmp", cfg->qmp_socket, NULL);
        push(&l, "-mon");
        push(&l, "chardev=qmp,mode=control");
    }
    if (cfg->qga_socket) {
        push_chardev(&l, "qga0", cfg->qga_socket, NULL);
        push(&l, "-device");
        push(&l, "virtio-serial-pci,id=vser0");
        push(&l, "-device");
        push(&l, "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0");
    }
    /* A fresh guest generating SSH host keys on first boot would otherwise
     * wait for entropy, for minutes under TCG. */
    push(&l, "-device");
    push(&l, "virtio-rng-pci");
    push(&l, "-boot");
    char *order = boot_order(s->boot);
    pushf(&l, "order=%s", order);
    free(order);
    if (cfg->pid_file) {
        push(&l, "-daemonize");
        push(&l, "-pidfile");
        push(&l, cfg->pid_file);
    }
    return l.v;
}

void qvm_argv_free(char **argv)
{
    if (!argv)
        return;
    for (size_t i = 0; argv[i]; i++)
        free(argv[i]);
    free(argv);
}
