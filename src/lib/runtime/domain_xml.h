/* domain_xml.h - the libvirt domain XML for a VM, and reading one back.
 *
 * Pure, like qemu.h: the same spec and the same host-side facts core/
 * resolved for the QEMU runtime (disk path and format, seed, console log,
 * MAC, forwarded port, accelerator) become a <domain> document, written
 * with libxml2's writer so every value is escaped. Tested byte for byte
 * against golden files (tests/unit/golden/). Reading (qvm adopt) goes
 * through libxml2's parser and XPath, never string matching. */
#ifndef QVM_RUNTIME_DOMAIN_XML_H
#define QVM_RUNTIME_DOMAIN_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/qemu.h"
#include "spec/spec.h"
#include "util/error.h"

/* The namespace of qvm's <metadata> element in a domain. */
#define QVM_DOMAIN_XMLNS "urn:qvm:domain:1"

struct qvm_domain_config {
    const struct qvm_vm_spec *spec;
    const char *uuid;             /* the VM's UUID, also the domain's */
    const char *accel;            /* resolved: "kvm" (domain type kvm) or "tcg" (type qemu) */
    const char *pool;             /* recorded in <metadata> */
    const char *image;            /* may be NULL (an adopted or reused disk) */
    const char *version;
    const char *disk_path;
    const char *disk_format;      /* "qcow2" or "raw" */
    bool disk_is_block;           /* a zvol: <disk type="block"> */
    const struct qvm_qemu_disk *data_disks;   /* spec->ndata_disks entries, or NULL */
    const char *seed_path;        /* NoCloud ISO, read-only virtio disk; NULL: none */
    const char *console_log;      /* the serial console's log file */
    const char *mac;              /* resolved MAC for the NIC */
    int ssh_port;                 /* user network: host port forwarded to guest 22, 0 = none */
    char net_bridge[16];          /* NIC on a qvm network: its bridge (an interface of type
                                     bridge, not a libvirt network), else "" */
};

/* The domain XML into *ret (caller frees). -EINVAL if a value cannot be
 * written as XML (a path that is not UTF-8 or holds control characters). */
int qvm_domain_xml(const struct qvm_domain_config *cfg, char **ret, struct qvm_error *err);

/* ---- reading a domain (qvm adopt) ------------------------------------------ */

#define QVM_DOMAIN_MAX_DISKS 16

struct qvm_domain_disk {
    char *type;        /* file, block, network, volume, ... */
    char *device;      /* disk, cdrom, floppy, lun */
    char *path;        /* source file or dev; NULL: none (an empty CD-ROM) or not a path */
    char *format;      /* driver type: raw, qcow2, ...; NULL if not given */
    char *bus;         /* target bus */
    bool readonly;
};

struct qvm_domain_info {
    char *type;        /* kvm or qemu */
    char *name;
    char *uuid;
    uint64_t memory_kib;
    unsigned vcpus;
    char *machine;     /* os/type/@machine: pc-q35-7.2, pc-i440fx-7.2, q35, pc */
    char *cpu_mode;    /* cpu/@mode, or NULL */
    struct qvm_domain_disk disks[QVM_DOMAIN_MAX_DISKS];
    size_t ndisks;
    char *net_type;    /* the first interface: user, network, bridge, ...; NULL: none */
    char *net_source;  /* its network or bridge */
    char *net_mac;
    char *net_model;
    bool graphics_vnc;
    char *qvm_uuid;    /* qvm's <metadata>, when the domain has it */
    char *qvm_pool;
};

/* Parses a domain XML (at most 4 MiB) into *ret. */
int qvm_domain_xml_parse(const char *xml, struct qvm_domain_info *ret, struct qvm_error *err);
void qvm_domain_info_release(struct qvm_domain_info *info);

/* XML with every disk source equal to FROM set to TO (file or dev), into
 * *ret (caller frees). -ENOENT if no disk has source FROM. */
int qvm_domain_xml_move_disk(const char *xml, const char *from, const char *to, char **ret,
                             struct qvm_error *err);

#endif
