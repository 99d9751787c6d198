/* lock.h - advisory locks (flock) on lock files. One process at a time may
 * change a VM or image, or talk to a VM's QMP socket. A lock dies with its
 * holder, so a killed qvm never leaves a stale lock. */
#ifndef QVM_LOCK_H
#define QVM_LOCK_H

#include <stdbool.h>

#include "error.h"

/* Opens (creating) PATH and takes an exclusive lock. With WAIT false, a
 * lock held elsewhere fails with -EBUSY. WHAT names the object in messages.
 * Returns the lock fd (>= 0); close it to release. */
int qvm_lock_path(const char *path, bool wait, const char *what, struct qvm_error *err);

/* LOCK_DIR/KIND-NAME.lock */
int qvm_lock_object(const char *lock_dir, const char *kind, const char *name, bool wait,
                    struct qvm_error *err);

void qvm_unlock(int fd);

#endif
