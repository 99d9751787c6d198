/* libvirt.h - the libvirt runtime's client: a connection to libvirtd through
 * the libvirt C API (never virsh), and the domain operations qvm needs.
 *
 * A qvm VM's domain carries the VM's UUID, so domains are addressed by
 * UUID: a domain renamed by hand is still found, and a foreign domain that
 * happens to have the VM's name is never touched. libvirt's own error
 * printing is switched off; its messages end up in struct qvm_error.
 * Knows nothing of storage or of qvm's bundles (core/runtime_libvirt.c
 * joins them). */
#ifndef QVM_RUNTIME_LIBVIRT_H
#define QVM_RUNTIME_LIBVIRT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

#define QVM_LIBVIRT_DEFAULT_URI "qemu:///system"

struct qvm_libvirt;

/* Connects to URI (NULL: qemu:///system). -ECONNREFUSED when libvirtd
 * cannot be reached, with libvirt's reason. */
int qvm_libvirt_open(const char *uri, struct qvm_libvirt **ret, struct qvm_error *err);
void qvm_libvirt_close(struct qvm_libvirt *lv);

/* Defines (or redefines) the persistent domain XML. */
int qvm_libvirt_define(struct qvm_libvirt *lv, const char *xml, struct qvm_error *err);

/* The UUID of the domain named NAME into UUID (37 bytes), or -ENOENT. */
int qvm_libvirt_lookup_name(struct qvm_libvirt *lv, const char *name, char *uuid,
                            struct qvm_error *err);

/* The name of domain UUID into *ret (caller frees), or -ENOENT. */
int qvm_libvirt_name(struct qvm_libvirt *lv, const char *uuid, char **ret, struct qvm_error *err);

/* The state of domain UUID in qvm's words into BUF: "running", "paused",
 * "stopped" (shut off), "shutting-down", "crashed", "suspended" (guest
 * power management), "blocked". -ENOENT if there is no such domain. */
int qvm_libvirt_state(struct qvm_libvirt *lv, const char *uuid, char *buf, size_t size,
                      struct qvm_error *err);

/* True if domain UUID is active (running, paused, ...). */
int qvm_libvirt_active(struct qvm_libvirt *lv, const char *uuid, bool *ret,
                       struct qvm_error *err);

int qvm_libvirt_start(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err);

/* Presses the ACPI power button. */
int qvm_libvirt_shutdown(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err);

/* Powers the domain off at once. A domain that is not running, or not
 * there, is not an error. */
int qvm_libvirt_destroy(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err);

/* Removes the persistent definition (and libvirt's managed save, snapshot
 * and checkpoint metadata and NVRAM with it; never disks). A missing
 * domain is not an error, so journals can replay it. */
int qvm_libvirt_undefine(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err);

int qvm_libvirt_suspend(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err);

/* Freezes (thaws) the guest's file systems through its agent; *ret_count
 * (may be NULL) receives how many were frozen. */
int qvm_libvirt_fsfreeze(struct qvm_libvirt *lv, const char *uuid, int *ret_count,
                         struct qvm_error *err);
int qvm_libvirt_fsthaw(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err);
int qvm_libvirt_resume(struct qvm_libvirt *lv, const char *uuid, struct qvm_error *err);

/* The domain XML (INACTIVE: the persistent definition, not the live one)
 * into *ret (caller frees). */
int qvm_libvirt_xml(struct qvm_libvirt *lv, const char *uuid, bool inactive, char **ret,
                    struct qvm_error *err);

/* Sets the autostart flag of the domain. */
int qvm_libvirt_set_autostart(struct qvm_libvirt *lv, const char *uuid, bool on,
                              struct qvm_error *err);

/* Sets qvm's <metadata> element (namespace QVM_DOMAIN_XMLNS, prefix qvm)
 * of the persistent definition (and of the running domain) to FRAGMENT,
 * an XML element. */
int qvm_libvirt_set_metadata(struct qvm_libvirt *lv, const char *uuid, const char *fragment,
                             struct qvm_error *err);

/* QMP passthrough (libvirt-qemu): runs the QMP command CMD (a JSON
 * object text) on the domain's monitor; the reply text into *ret. */
int qvm_libvirt_monitor_command(struct qvm_libvirt *lv, const char *uuid, const char *cmd,
                                char **ret, struct qvm_error *err);

/* Guest-agent passthrough (libvirt-qemu): sends CMD (a JSON object text)
 * to the agent, waiting up to TIMEOUT_S; the reply text into *ret.
 * -EAGAIN while the agent is not connected or does not answer (the guest
 * is still booting); -ESRCH if the domain is not running. */
int qvm_libvirt_agent_command(struct qvm_libvirt *lv, const char *uuid, const char *cmd,
                              int timeout_s, char **ret, struct qvm_error *err);

/* guest-exec of ARGV with optional INPUT on stdin through the agent, then
 * guest-exec-status until it exits or TIMEOUT_MS passes (qga.c's protocol
 * over libvirt). Fills the exit status and the decoded stdout/stderr
 * (caller frees). */
int qvm_libvirt_agent_exec(struct qvm_libvirt *lv, const char *uuid, const char *const argv[],
                           const char *input, int timeout_ms, int *ret_exit, char **ret_out,
                           size_t *ret_out_len, char **ret_err, size_t *ret_err_len,
                           struct qvm_error *err);

/* Attaches the terminal (IN_FD, OUT_FD) to the domain's serial console
 * through libvirt until ESCAPE (a byte; < 0: none) is read from IN_FD, IN_FD
 * ends, or the console closes. -EBUSY if another client holds it. */
int qvm_libvirt_console(struct qvm_libvirt *lv, const char *uuid, int in_fd, int out_fd,
                        int escape, struct qvm_error *err);

#endif
