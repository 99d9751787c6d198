/* spec.h - the qvm file and the VM spec it describes.
 *
 * A qvm file is one YAML stream of three or four documents, each tagged by a
 * top-level key `qvm`: `vm`, `user-data`, `meta-data` (also `metadata`) and
 * optionally `network-config` (seed 000, section 3.1.2). The `vm` document
 * uses virt-install's vocabulary; keys qvm does not support are errors that
 * name them. This module parses and validates only: it touches no storage,
 * starts nothing, and resolves nothing against the host (image versions,
 * free ports and the accelerator are resolved by core/). */
#ifndef QVM_SPEC_H
#define QVM_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define QVM_SPEC_MAX_FILE (1u << 20)   /* a qvm file larger than 1 MiB is refused */
#define QVM_SPEC_MAX_DEPTH 64          /* YAML nesting limit */
#define QVM_SPEC_MAX_PROPS 32          /* disk.zvol properties */
#define QVM_SPEC_MAX_NICS 8            /* network: a list of at most 8 NICs */
#define QVM_SPEC_MAX_DISKS 16          /* entries of a disk list */

/* NETWORK is a network by name: a qvm-managed network (qvm net create) if
 * one has the name, else, on the libvirt runtime, a libvirt network. BRIDGE
 * is an existing host bridge. virt-install's --network network=NAME /
 * bridge=NAME. */
enum qvm_net_type { QVM_NET_USER = 0, QVM_NET_NONE, QVM_NET_NETWORK, QVM_NET_BRIDGE };
enum qvm_graphics { QVM_GRAPHICS_NONE = 0, QVM_GRAPHICS_VNC };

struct qvm_prop {
    char *key;
    char *value;
};

/* The image disk (base set), or a data disk of a disk list (base NULL: an
 * empty disk of size_bytes, named target_name). */
struct qvm_disk_spec {
    char *base;             /* disk.zvol.base: "IMAGE", "IMAGE@vN" or "IMAGE@base" (required) */
    char *target_name;      /* disk.zvol.name or a list entry's name; the image disk's may be
                               NULL (default: disk0), a data disk's is set (default: diskN) */
    struct qvm_prop props[QVM_SPEC_MAX_PROPS];   /* other disk.zvol keys, for the clone */
    size_t nprops;
    uint64_t size_bytes;    /* disk.size (GiB, as virt-install), 0 = the image's size */
    char *bus;              /* virtio (default), scsi, sata, ide */
    char *cache;            /* none, writeback (default), writethrough, directsync, unsafe */
    char *pool;             /* disk.pool or NULL for the default pool (a data disk: the VM's) */
    bool boot;              /* a data disk: it boots the VM (boot: true, or first in the list);
                               the image disk boots when no data disk does */
};

struct qvm_net_spec {
    enum qvm_net_type type; /* network: user (default) | none | network=NAME | bridge=NAME */
    char *source;           /* the network or bridge name (NETWORK, BRIDGE) */
    char *model;            /* virtio (default), e1000, rtl8139 */
    char *mac;              /* "52:54:00:..", or NULL to derive one (for the first NIC,
                               struct qvm_vm's mac holds the one in use) */
    int ssh_port;           /* host port forwarded to guest 22: 0 = choose automatically, -1 = none;
                               the first NIC's only */
};

struct qvm_vm_spec {
    char *name;             /* validated with qvm_name_valid */
    uint64_t memory_mib;    /* memory: MiB as virt-install (default 1024) */
    unsigned vcpus;         /* vcpus (default 1) */
    char *cpu;              /* cpu: host-passthrough|host|host-model|max|MODEL (default host-model) */
    char *accel;            /* virt-type / accel: auto (default) | kvm | tcg (virt-type qemu = tcg) */
    char *machine;          /* machine: q35 (default) | pc */
    char *os_variant;       /* accepted and recorded; qvm needs no OS database */
    bool import;            /* accepted (qvm always imports) */
    bool noautoconsole;     /* accepted (qvm never attaches a console on up) */
    char *boot;             /* boot: hd (default), cdrom, network, comma-separated order */
    enum qvm_graphics graphics;
    struct qvm_disk_spec disk;      /* the image disk */
    /* disk as a list: the data disks in list order, without the image disk,
     * which is entry image_disk_pos of the list. None for a single mapping. */
    struct qvm_disk_spec *data_disks;
    size_t ndata_disks;
    size_t image_disk_pos;
    struct qvm_net_spec net;          /* the first NIC (network: a mapping, or a list's first) */
    struct qvm_net_spec extra_nets[QVM_SPEC_MAX_NICS - 1];   /* the list's others, in order */
    size_t nextra_nets;
    bool autostart;         /* autostart: start the VM at host boot (qvm autostart --boot) */
    char *runtime;          /* runtime: qemu | libvirt | virt-install, NULL = the pool's (or qemu) */
    char *runtime_uri;      /* runtime-uri: a libvirt connection URI, NULL = the pool's or qemu:///system */
    /* runtime: virt-install only: the vm document's keys qvm does not model,
     * passed to virt-install as --KEY=VALUE (VALUE NULL: a bare --KEY). */
    struct qvm_prop *vi_opts;
    size_t nvi_opts;

    /* The cloud-init documents as they go into the NoCloud seed. */
    char *user_data;        /* "#cloud-config\n" + the document without its qvm line */
    char *meta_data;        /* the document without its qvm line, instance-id and
                               local-hostname added when absent */
    char *network_config;   /* NULL when the file has no network-config document */
    char *instance_id;      /* meta-data instance-id (given, or NAME-<random hex>) */
    char *hostname;         /* meta-data local-hostname (given, or the VM name) */
};

/* Parses and validates a qvm file held in memory. FILENAME is used only in
 * messages, which read "FILE:LINE:COL: key 'vm.disk.zvol.base': ...".
 * On success fills *ret (release with qvm_spec_release). */
int qvm_spec_parse(const char *filename, const char *data, size_t len,
                   struct qvm_vm_spec *ret, struct qvm_error *err);

/* Reads FILENAME (at most QVM_SPEC_MAX_FILE bytes) and parses it. */
int qvm_spec_load(const char *filename, struct qvm_vm_spec *ret, struct qvm_error *err);

void qvm_spec_release(struct qvm_vm_spec *spec);

/* The VM's NICs, in order: NIC 0 is spec->net. */
static inline size_t qvm_spec_nic_count(const struct qvm_vm_spec *s)
{
    return 1 + s->nextra_nets;
}

static inline const struct qvm_net_spec *qvm_spec_nic(const struct qvm_vm_spec *s, size_t i)
{
    return i == 0 ? &s->net : &s->extra_nets[i - 1];
}

static inline struct qvm_net_spec *qvm_spec_nic_mut(struct qvm_vm_spec *s, size_t i)
{
    return i == 0 ? &s->net : &s->extra_nets[i - 1];
}

/* Frees what disk D owns (strings, properties) and zeroes it. */
void qvm_disk_spec_release(struct qvm_disk_spec *d);

/* Whether the image disk boots (no data disk has boot set). */
bool qvm_spec_image_disk_boots(const struct qvm_vm_spec *spec);

/* ---- rewriting a qvm file (qvm edit --set, resize, autostart) ---------------- */

/* Sets KEY (a dotted path in the vm document: "memory", "disk.size",
 * "network.ssh-port") to VALUE, a plain YAML scalar of [A-Za-z0-9._:/@+-],
 * in the qvm file DATA. An existing scalar value is replaced in place, so
 * comments and layout stay as written; a missing key is added at the end of
 * its mapping. The result (*ret, LEN bytes in *ret_len, caller frees) is not
 * validated: parse it with qvm_spec_parse. Errors name FILENAME. */
int qvm_spec_set_key(const char *filename, const char *data, size_t len, const char *key,
                     const char *value, char **ret, size_t *ret_len, struct qvm_error *err);

/* Whether the cloud-init documents (user-data, meta-data, network-config)
 * of qvm files A and B are the same bytes. Both must parse. When not,
 * *ret_kind names the first that differs ("user-data"). */
int qvm_spec_same_cloud_init(const char *a, size_t alen, const char *b, size_t blen,
                             bool *ret_same, const char **ret_kind, struct qvm_error *err);

/* A disk size as `qvm resize` takes it: a number as disk.size writes it (GiB,
 * fractions allowed) or with a binary unit M, G or T ("512M", "20G",
 * "1.5T"; "GiB" and "GB" mean G too), and a leading '+' for "this much
 * more" (*ret_relative). In bytes, rounded up to a whole MiB; 1 MiB to
 * 65536 GiB. */
int qvm_spec_parse_size(const char *text, uint64_t *ret_bytes, bool *ret_relative,
                        struct qvm_error *err);

/* BYTES (a whole number of MiB) as disk.size writes it: GiB, with the
 * fraction that makes it exact ("20", "20.5", "0.0009765625"). BUF must
 * hold 32 bytes. */
void qvm_spec_format_gib(uint64_t bytes, char *buf, size_t size);

#endif
