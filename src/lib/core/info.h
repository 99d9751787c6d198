/* info.h - everything about one VM for `qvm info`: its status (lifecycle.h),
 * what the running QEMU reports (accelerator, memory, vCPUs), its disks
 * with their sizes, its network (MAC, forwarded ports) and, when the guest
 * agent answers quickly, the guest's addresses. Reads only. */
#ifndef QVM_CORE_INFO_H
#define QVM_CORE_INFO_H

#include <stdbool.h>
#include <stdint.h>

#include "core/context.h"
#include "core/lifecycle.h"

/* How long info waits for the guest agent: it is a report, not a wait. */
#define QVM_INFO_AGENT_TIMEOUT_MS 2000

struct qvm_info_disk {
    char *name;             /* "disk0", "seed" */
    char *path;
    char *format;
    bool read_only;
    bool is_block;
    int64_t virtual_size;   /* bytes the guest sees; -1 unknown */
    int64_t allocated;      /* bytes the file takes on the host; -1 unknown */
};

struct qvm_info_forward {
    const char *protocol;   /* "tcp" */
    const char *host_addr;
    int host_port;
    int guest_port;
};

struct qvm_info_addr {
    char *ifname;
    char *mac;              /* may be NULL */
    char *family;           /* "ipv4", "ipv6" */
    char *address;
    int prefix;
};

struct qvm_vm_info {
    struct qvm_vm_status st;     /* name, state, pid, uptime, the definition */
    char *accel;                 /* running: "kvm"/"tcg" as QEMU reports; else as defined */
    uint64_t run_memory_mib;     /* what the running QEMU has; 0 when not running */
    unsigned run_vcpus;
    struct qvm_info_disk *disks;
    size_t ndisks;
    struct qvm_info_forward forwards[1];
    size_t nforwards;
    struct qvm_info_addr *addrs; /* the guest's, loopback left out */
    size_t naddrs;
    bool agent_answered;
    char *agent_note;            /* why there are no addresses, or NULL */
};

/* Fills *RET for VM NAME. The monitor and agent conversations happen under
 * the VM lock; the agent gets QVM_INFO_AGENT_TIMEOUT_MS. */
int qvm_vm_info(struct qvm_ctx *ctx, const char *name, struct qvm_vm_info *ret,
                struct qvm_error *err);
void qvm_vm_info_release(struct qvm_vm_info *info);

#endif
