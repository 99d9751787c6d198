/* qmp.h - a client for QEMU's machine protocol (QMP) and for the guest
 * agent (QGA), which speaks the same JSON framing.
 *
 * Replies are matched to requests by id; asynchronous events are queued or
 * skipped; input is capped at 16 MiB per message. One process at a time may
 * use a VM's sockets: callers hold the VM's lock (util/lock.h) first. */
#ifndef QVM_RUNTIME_QMP_H
#define QVM_RUNTIME_QMP_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "util/error.h"

#define QVM_QMP_MAX_MESSAGE (16u << 20)

struct qvm_qmp;

/* Connects to a QMP socket, reads the greeting and negotiates capabilities.
 * Retries ENOENT/ECONNREFUSED until TIMEOUT_MS (QEMU may still be starting). */
int qvm_qmp_connect(const char *socket_path, int timeout_ms, struct qvm_qmp **ret,
                    struct qvm_error *err);

/* Is the process behind a socket still there? (core/ knows which one it is.) */
typedef bool qvm_qmp_alive_fn(void *arg);

/* As qvm_qmp_connect, but a refused or missing socket fails at once with
 * -ESRCH when ALIVE(ARG) says its QEMU is gone, instead of being retried
 * until the timeout. (A QEMU that dies once connected closes the socket,
 * which every call reports at once as -ECONNRESET.) */
int qvm_qmp_connect_watch(const char *socket_path, int timeout_ms, qvm_qmp_alive_fn *alive,
                          void *alive_arg, struct qvm_qmp **ret, struct qvm_error *err);

/* Runs COMMAND with ARGS (borrowed, may be NULL). On success *ret_return (may
 * be NULL) receives the "return" member (caller puts it). A QMP error reply
 * becomes -EIO with QEMU's class and description in the message. */
int qvm_qmp_execute(struct qvm_qmp *q, const char *command, struct json_object *args,
                    int timeout_ms, struct json_object **ret_return, struct qvm_error *err);

/* Waits for an event named EVENT (e.g. "SHUTDOWN"); events seen earlier are
 * remembered. -ETIMEDOUT after TIMEOUT_MS; -ECONNRESET if QEMU went away. */
int qvm_qmp_wait_event(struct qvm_qmp *q, const char *event, int timeout_ms,
                       struct qvm_error *err);

void qvm_qmp_close(struct qvm_qmp *q);

/* Guest agent: connects and synchronises the stream with guest-sync-delimited
 * (the agent may hold stale data from an earlier client). -ETIMEDOUT when the
 * agent does not answer within TIMEOUT_MS. */
int qvm_qga_connect(const char *socket_path, int timeout_ms, struct qvm_qmp **ret,
                    struct qvm_error *err);
int qvm_qga_connect_watch(const char *socket_path, int timeout_ms, qvm_qmp_alive_fn *alive,
                          void *alive_arg, struct qvm_qmp **ret, struct qvm_error *err);

/* guest-exec of ARGV (argv[0] is the program path in the guest) with optional
 * INPUT on stdin, then guest-exec-status until it exits or TIMEOUT_MS passes.
 * Fills exit status and decoded stdout/stderr (caller frees). */
int qvm_qga_exec(struct qvm_qmp *q, const char *const argv[], const char *input,
                 int timeout_ms, int *ret_exit, char **ret_out, size_t *ret_out_len,
                 char **ret_err, size_t *ret_err_len, struct qvm_error *err);

#endif
