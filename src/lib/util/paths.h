/* paths.h - where qvm keeps things. Everything hangs off one root so that
 * QVM_ROOT=DIR (or --root DIR) gives tests and unprivileged users a tree of
 * their own:
 *
 *   ROOT/etc/qvm/qvm.conf         configuration
 *   ROOT/var/lib/qvm/pools/NAME   storage pools (the default dir pool)
 *   ROOT/var/lib/qvm/journal      journals of operations in flight
 *   ROOT/run/qvm/vms/NAME         runtime: QMP, console and agent sockets, pid
 *   ROOT/run/qvm/locks            lock files
 */
#ifndef QVM_PATHS_H
#define QVM_PATHS_H

#include "error.h"

struct qvm_paths {
    char *root;         /* "" for the real system root */
    char *conf_file;
    char *state_dir;
    char *pools_dir;
    char *journal_dir;
    char *run_dir;
    char *lock_dir;
};

/* ROOT_OVERRIDE (may be NULL) wins over $QVM_ROOT; neither means "/".
 * The root must be an absolute path. */
int qvm_paths_init(struct qvm_paths *p, const char *root_override, struct qvm_error *err);
void qvm_paths_release(struct qvm_paths *p);

/* Creates the state, journal, run and lock directories. */
int qvm_paths_ensure(const struct qvm_paths *p, struct qvm_error *err);

/* ROOT/run/qvm/vms/NAME; caller frees. */
char *qvm_paths_vm_run_dir(const struct qvm_paths *p, const char *vm);

#endif
