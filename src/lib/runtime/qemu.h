/* qemu.h - the QEMU command line qvm runs for a VM.
 *
 * Pure: builds an argv from a validated spec plus the host-side facts core/
 * resolved (paths, accelerator, MAC, forwarded port). Knows nothing of
 * storage backends; a disk is a path, a format and whether it is a block
 * device. Tested as exact argv. */
#ifndef QVM_RUNTIME_QEMU_H
#define QVM_RUNTIME_QEMU_H

#include <stdbool.h>

#include "spec/spec.h"

/* Where a data disk is on the host (its name, bus, cache and boot flag are
 * the spec's data_disks entry of the same index). */
struct qvm_qemu_disk {
    const char *path;
    const char *format;           /* "qcow2" or "raw" */
    bool is_block;
};

struct qvm_qemu_config {
    const struct qvm_vm_spec *spec;
    const char *qemu_binary;      /* e.g. "qemu-system-x86_64" */
    const char *accel;            /* resolved: "kvm" or "tcg" */
    const char *disk_path;
    const char *disk_format;      /* "qcow2" or "raw" */
    bool disk_is_block;
    const struct qvm_qemu_disk *data_disks;   /* spec->ndata_disks entries */
    const char *seed_path;        /* NoCloud ISO, attached read-only */
    const char *qmp_socket;
    const char *console_socket;   /* serial console, a server socket */
    const char *console_log;      /* everything the serial console printed */
    const char *qga_socket;       /* guest agent channel */
    const char *vnc_socket;       /* used when graphics is vnc */
    const char *pid_file;
    const char *mac;              /* resolved MAC for the first NIC */
    int tap_fd[QVM_SPEC_MAX_NICS];  /* NIC I's tap, as the fd number QEMU gets; 0: none */
    int ssh_port;                 /* resolved host port forwarded to guest 22, 0 = none */
};

/* NICs of type network and bridge are taps that qvm opens and hands over
 * as fds (-netdev tap,fd=N); user NICs are QEMU's own user networking.
 * Returns a NULL-terminated argv; free it with qvm_argv_free. The process is
 * started with -daemonize and writes PID_FILE. */
char **qvm_qemu_argv(const struct qvm_qemu_config *cfg);
void qvm_argv_free(char **argv);

#endif
