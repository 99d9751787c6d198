/* arc.h - the ZFS ARC's upper limit as VMs come and go (seed 003's memory
 * provisioner, on Linux).
 *
 * ZFS takes free memory for its cache (the ARC) and gives it back slowly;
 * a VM whose QEMU needs that memory at once can be starved. While VMs run,
 * qvm writes the module parameter zfs_arc_max so that the ARC leaves the
 * VMs and the host reserve alone, but keeps at least a share (default 20%)
 * of the memory not given to VMs. When no VM runs it restores the value the
 * administrator had, remembered in STATE/arc.json the first time qvm
 * changed it. Where the zfs module is not loaded, nothing is touched.
 *
 * Files, under a root prefix ("" for the real system; QVM_SYSFS_ROOT, as
 * runtime/accel.c, so tests point it at a tree they create):
 *   ROOT/sys/module/zfs/parameters/zfs_arc_max   the limit (0 = ZFS's default)
 *   ROOT/proc/spl/kstat/zfs/arcstats             c_min and c_max, if present
 *
 * The arithmetic (qvm_arc_target) is pure; qvm_arc_apply reads and writes
 * the files and must run under the host memory lock (core/memory.h). */
#ifndef QVM_CORE_ARC_H
#define QVM_CORE_ARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define QVM_ARC_SHARE_DEFAULT 20               /* percent of the memory not given to VMs */
#define QVM_ARC_MIN_MAX (UINT64_C(64) << 20)   /* ZFS ignores a zfs_arc_max below 64 MiB */

struct qvm_arc_input {
    uint64_t total;        /* MemTotal, bytes */
    uint64_t reserve;      /* the host reserve, bytes */
    uint64_t committed;    /* running VMs, with their QEMU overhead, bytes */
    unsigned share_pct;    /* 0..100 */
    uint64_t admin;        /* the administrator's own zfs_arc_max; 0 = ZFS's default */
    uint64_t arc_min;      /* arcstats c_min (ZFS ignores a limit not above it); 0 = unknown */
};

/* The zfs_arc_max qvm wants while VMs run, in bytes, a whole number of MiB:
 *   avail  = total - committed             (memory not given to VMs)
 *   target = max(avail - reserve, share% of avail), each rounded down to a MiB,
 * then at least the lowest limit ZFS accepts (64 MiB, and above c_min),
 * below total (ZFS ignores a limit of all memory), and never above the
 * administrator's own non-zero limit. */
uint64_t qvm_arc_target(const struct qvm_arc_input *in);

/* The lowest zfs_arc_max ZFS accepts, given arcstats' c_min (0: unknown). */
uint64_t qvm_arc_floor(uint64_t arc_min);

/* ROOT/sys/module/zfs/parameters/zfs_arc_max; caller frees. */
char *qvm_arc_param_path(const char *root);

struct qvm_arc_status {
    bool present;          /* the zfs module parameter exists */
    uint64_t current;      /* zfs_arc_max now */
    bool managed;          /* qvm changed it and remembers the administrator's value */
    uint64_t admin;        /* the administrator's value (current when not managed) */
    uint64_t arc_min;      /* arcstats c_min, 0 if unknown */
    uint64_t arc_c_max;    /* arcstats c_max (the limit in effect), 0 if unknown */
};

/* Reads the parameter, arcstats and the state file STATE_FILE. Without the
 * module, *ret says present = false and this succeeds. */
int qvm_arc_status(const char *root, const char *state_file, struct qvm_arc_status *ret,
                   struct qvm_error *err);

/* Brings zfs_arc_max in line with NVMS running VMs using IN->committed
 * bytes (IN->admin and IN->arc_min are filled here): the target above while
 * VMs run, the administrator's value when none does. The state file is
 * written before the parameter, so a qvm killed in between still knows the
 * administrator's value. A zfs_arc_max changed by someone else since qvm
 * last wrote it becomes the new administrator's value. *RET_SET (may be
 * NULL) gets the value now in effect. Caller holds the host memory lock. */
int qvm_arc_apply(const char *root, const char *state_file, const struct qvm_arc_input *in,
                  size_t nvms, struct qvm_arc_status *ret, struct qvm_error *err);

#endif
