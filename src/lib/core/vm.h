/* vm.h - a VM as qvm keeps it: the bundle definition (vm.json beside the
 * disks and seed, so the bundle alone is enough to bring the VM back), the
 * runtime paths derived from its name, and whether its QEMU is running. */
#ifndef QVM_CORE_VM_H
#define QVM_CORE_VM_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/context.h"
#include "runtime/qemu.h"
#include "spec/spec.h"
#include "storage/storage.h"

#define QVM_VM_JSON_MAX (1u << 20)

struct qvm_vm {
    struct qvm_vm_spec spec;   /* cloud-init texts are NULL when loaded from a bundle */
    char *uuid;
    long long created;         /* Unix time */
    char *pool;
    char *image;               /* the image and version the disk was cloned from */
    char *version;
    char *disk_name;           /* "disk0": where it is is the pool driver's business */
    char *disk_format;
    bool disk_is_block;
    uint64_t disk_size;
    char *mac;
    int ssh_port;              /* 0: none */
    /* The data disks are spec.data_disks (name, pool: always set, size,
     * bus, cache, boot); each is empty when made, in its pool's bundle
     * vms/NAME (the VM's own, or one holding only data disks). */

    /* Derived, not stored, except each data disk's format. */
    struct qvm_disk_info *data_disk_info;   /* spec.ndata_disks: path, format, is_block */
    struct qvm_qemu_disk *qemu_disks;       /* the same for the runtime (borrowed strings) */
    char *bundle_dir;
    char *disk_path;
    char *seed_path;
    char *console_log;
    char *run_dir;
    char *qmp_socket;
    char *console_socket;
    char *qga_socket;
    char *vnc_socket;
    char *pid_file;
};

/* Fills the derived paths for VM NAME in POOL. Fails with -ENAMETOOLONG if a
 * socket path would not fit in a sockaddr_un. */
int qvm_vm_derive_paths(struct qvm_ctx *ctx, const struct qvm_pool *pool, struct qvm_vm *vm,
                        struct qvm_error *err);

/* Writes BUNDLE/vm.json atomically. */
int qvm_vm_save(const struct qvm_vm *vm, struct qvm_error *err);

/* Finds VM NAME in any pool and loads it. -ENOENT: "no VM named 'NAME'". */
int qvm_vm_load(struct qvm_ctx *ctx, const char *name, struct qvm_vm *ret, struct qvm_error *err);

void qvm_vm_release(struct qvm_vm *vm);

/* Pools other than the VM's own that hold data disks of it, each once, in
 * the order of the disk list (caller frees the array, not the strings). */
size_t qvm_vm_other_pools(const struct qvm_vm *vm, const char ***ret);

/* Refuses (-ENOTSUP) an operation that handles only a VM's image disk, for
 * a VM with data disks: "VM 'x' has 2 disks: WHAT of several disks are not
 * supported yet". */
int qvm_vm_single_disk(const struct qvm_vm *vm, const char *what, struct qvm_error *err);

/* The pid of the VM's running QEMU, or 0. */
pid_t qvm_vm_pid(const struct qvm_vm *vm);

/* Names of all VMs in all pools, sorted. Caller frees each and the array. */
int qvm_vm_list_names(struct qvm_ctx *ctx, char ***ret, size_t *ret_n, struct qvm_error *err);

/* Derives a stable locally administered MAC (52:54:00:xx:xx:xx) from the
 * pool and VM name. BUF must hold 18 bytes. */
void qvm_vm_mac(const char *pool, const char *name, char *buf);

/* The same for NIC INDEX (0 is qvm_vm_mac's). */
void qvm_vm_nic_mac(const char *pool, const char *name, unsigned index, char *buf);

/* Gives each NIC past the first its derived MAC: those without one, or all
 * with FRESH (a clone, a renamed import: a new machine). */
void qvm_vm_assign_nic_macs(struct qvm_vm_spec *s, const char *pool, bool fresh);

/* The MAC NIC I of VM uses. */
const char *qvm_vm_nic_mac_of(const struct qvm_vm *vm, size_t i);

#endif
