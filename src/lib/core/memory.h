/* memory.h - memory admission: a VM starts only if the host has room for it
 * (seed 003's memory provisioner), and the ZFS ARC follows (core/arc.h).
 *
 * The budget: MemTotal (/proc/meminfo) minus the host reserve minus what
 * running VMs use, where a running VM uses its configured memory plus a
 * per-VM QEMU overhead: QEMU's own memory (device emulation, I/O buffers,
 * allocator arenas) and, for a VM run under TCG, its translation cache. A
 * VM is admitted if its own memory plus its overhead fits in what is left.
 * qvm.conf sets the numbers:
 *
 *   host:
 *     reserve: 2G         # kept for the host itself (default 1G)
 *     arc-share: 20%      # ARC keeps at least this share of non-VM memory
 *     vm-overhead: 192M   # per running VM, on top of its memory (default 192M)
 *     tcg-overhead: 1G    # more per VM run under TCG (default min(1G, MemTotal/8))
 *
 * Sizes are MiB as the qvm file's `memory` writes them (2048), or a number
 * with a binary unit M, G or T (512M, 2G, 1.5G).
 *
 * Admission is race-free: the host lock ("host-memory", util/lock.h) is
 * held from the check until QEMU runs, so two starts cannot both be admitted
 * into the same free memory. Lock order: a VM's lock, then the host lock;
 * nothing taken under the host lock takes a VM lock. */
#ifndef QVM_CORE_MEMORY_H
#define QVM_CORE_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/arc.h"
#include "core/context.h"
#include "core/journal.h"
#include "core/vm.h"

#define QVM_MEM_RESERVE_DEFAULT (UINT64_C(1) << 30)     /* 1 GiB */
/* Measured with QEMU 7.2 under TCG, Debian 12 booted to cloud-init (-m 512,
 * /proc/PID/smaps): 197 MiB resident outside guest RAM and the translation
 * cache (two 64 MiB allocator arenas among it), and 846 MiB of the 1 GiB
 * translation cache. QEMU sizes that cache min(1 GiB, host RAM / 8) unless
 * told otherwise, and it fills as the guest runs new code. */
#define QVM_MEM_OVERHEAD_DEFAULT (UINT64_C(192) << 20)  /* 192 MiB */
#define QVM_MEM_TCG_CACHE_MAX (UINT64_C(1) << 30)       /* QEMU's default tb-size */
#define QVM_MEMINFO "/proc/meminfo"

struct qvm_host_config {
    uint64_t reserve;       /* bytes */
    unsigned arc_share;     /* percent, 0..100 */
    uint64_t vm_overhead;   /* bytes per running VM */
    uint64_t tcg_overhead;  /* bytes more per VM under TCG */
    bool tcg_overhead_set;  /* else the default, which depends on MemTotal */
};

/* A size as qvm.conf's host keys take it: "2048" (MiB), "512M", "2G",
 * "1.5G", "1T" ("GiB" and "GB" mean G too); 0 is allowed. In bytes, a
 * whole number of MiB (rounded up); at most 64 TiB. */
int qvm_memory_parse_size(const char *text, uint64_t *ret_bytes, struct qvm_error *err);

/* "20%" or "20": an integer percentage 0..100. */
int qvm_memory_parse_share(const char *text, unsigned *ret_pct, struct qvm_error *err);

/* The host section of qvm.conf, with defaults for what it does not say. */
int qvm_host_config_load(const struct qvm_paths *paths, struct qvm_host_config *ret,
                         struct qvm_error *err);

/* MemTotal from a meminfo file (QVM_MEMINFO; tests give another), in bytes. */
int qvm_meminfo_total(const char *path, uint64_t *ret_bytes, struct qvm_error *err);

/* "512 MiB" below 1 GiB, else GiB to a tenth, rounded down ("23.5 GiB",
 * "2 GiB"). BUF holds 32 bytes. */
void qvm_memory_format(uint64_t bytes, char *buf, size_t len);

struct qvm_mem_vm {
    char *name;
    uint64_t memory_mib;    /* configured */
    uint64_t bytes;         /* configured memory + its overhead */
    bool tcg;               /* its QEMU runs TCG (accel=tcg on its command line) */
    pid_t pid;
};

struct qvm_mem_budget {
    uint64_t total;         /* MemTotal */
    uint64_t reserve;
    uint64_t overhead;      /* per VM */
    uint64_t tcg_overhead;  /* more per VM under TCG */
    unsigned arc_share;
    uint64_t committed;     /* sum of vms[].bytes */
    struct qvm_mem_vm *vms; /* the running VMs, by name */
    size_t nvms;
};

/* What is left for VMs: total - reserve - committed, 0 if less. */
uint64_t qvm_memory_free(const struct qvm_mem_budget *b);

/* A VM's overhead in B: the base, plus the TCG cache if TCG. */
uint64_t qvm_memory_overhead(const struct qvm_mem_budget *b, bool tcg);

/* The default tcg-overhead for a host with TOTAL bytes: QEMU's own default
 * translation cache, min(1 GiB, TOTAL / 8), rounded up to a MiB. */
uint64_t qvm_memory_tcg_default(uint64_t total);

/* Whether VM NAME with MEMORY_MIB (run under TCG if TCG) fits in B. If not,
 * -ENOMEM with the numbers: "cannot start 'x' (4096 MiB + 192 MiB QEMU
 * overhead): host has 23.5 GiB, reserve 2 GiB, running VMs use 20 GiB (a,
 * b, c); 1.5 GiB free (--force starts it anyway)". Pure: B is not re-read. */
int qvm_memory_check(const struct qvm_mem_budget *b, const char *name, uint64_t memory_mib,
                     bool tcg, struct qvm_error *err);

/* The budget now: MemTotal, qvm.conf, and every running VM but EXCLUDE
 * (may be NULL). */
int qvm_memory_budget(struct qvm_ctx *ctx, const char *exclude, struct qvm_mem_budget *ret,
                      struct qvm_error *err);
void qvm_memory_budget_release(struct qvm_mem_budget *b);

/* --force of start and up, for this process: admit whatever the budget
 * says (with a warning that gives the numbers). */
void qvm_memory_set_force(bool force);

/* Starts VM's QEMU (lifecycle.h qvm_vm_start_qemu) if memory admission
 * lets it: under the host lock, checks the budget, lowers the ARC for the
 * new VM first, starts QEMU, then sets the ARC for the VMs that really run. */
int qvm_memory_start_qemu(struct qvm_ctx *ctx, struct qvm_vm *vm, struct qvm_journal *j,
                          struct qvm_error *err);

/* After a VM stopped: raises the ARC again (or restores the administrator's
 * setting when no VM runs). Best effort: problems are warnings. Nothing
 * happens without a zfs module. */
void qvm_memory_settle(struct qvm_ctx *ctx);

/* qvm host: the budget, the ARC and the accelerator. */
struct qvm_host_info {
    struct qvm_mem_budget budget;
    uint64_t free;                   /* qvm_memory_free */
    char *arc_param;                 /* the zfs_arc_max path */
    struct qvm_arc_status arc;
    uint64_t arc_target;             /* qvm's zfs_arc_max for the running VMs; 0: none runs */
    const char *accel;               /* "kvm" or "tcg" */
    char accel_note[256];            /* why not KVM, or "" */
};
int qvm_host_info(struct qvm_ctx *ctx, struct qvm_host_info *ret, struct qvm_error *err);
void qvm_host_info_release(struct qvm_host_info *h);

/* qvm host --settle: sets the ARC for the VMs running now (after a VM's
 * QEMU died on its own, or an interrupted start). */
int qvm_memory_settle_now(struct qvm_ctx *ctx, struct qvm_error *err);

#endif
