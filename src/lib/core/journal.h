/* journal.h - undo journals that make every mutating operation atomic.
 *
 * Before each persistent step an operation appends (and syncs) the record
 * that undoes it. On success the journal is deleted; on failure the records
 * are undone in reverse order. A journal whose writer died (SIGKILL, power
 * loss) is found by the next qvm command, which undoes it before doing
 * anything else. A live writer holds an flock on its journal, so no one rolls
 * back an operation still in progress; recovery also takes the operation's
 * object lock (e.g. the VM's) so it never races a new operation on the same
 * object. */
#ifndef QVM_CORE_JOURNAL_H
#define QVM_CORE_JOURNAL_H

#include <stddef.h>

#include "core/context.h"
#include "util/error.h"

struct qvm_journal;

/* Starts a journal for operation OP (e.g. "up") on object LOCK_KIND-LOCK_NAME
 * (the caller already holds that object lock). */
int qvm_journal_begin(struct qvm_ctx *ctx, const char *op, const char *lock_kind,
                      const char *lock_name, struct qvm_journal **ret, struct qvm_error *err);

/* As qvm_journal_begin, for an operation on two objects of LOCK_KIND that
 * holds both their locks (qvm clone: the source and the new VM); recovery
 * takes both, in name order, as the operation did. */
int qvm_journal_begin2(struct qvm_ctx *ctx, const char *op, const char *lock_kind,
                       const char *lock_name, const char *lock_name2, struct qvm_journal **ret,
                       struct qvm_error *err);

/* Undo records. Each is written and synced before the caller acts. */
int qvm_journal_undo_rm_rf(struct qvm_journal *j, const char *path, struct qvm_error *err);
int qvm_journal_undo_kill_qemu(struct qvm_journal *j, const char *pid_file, struct qvm_error *err);
/* Removes a VM bundle or an image through its pool's driver. */
int qvm_journal_undo_vm_destroy(struct qvm_journal *j, const char *pool, const char *vm,
                                struct qvm_error *err);
int qvm_journal_undo_image_destroy(struct qvm_journal *j, const char *pool, const char *image,
                                   struct qvm_error *err);
int qvm_journal_undo_version_destroy(struct qvm_journal *j, const char *pool, const char *image,
                                     const char *version, struct qvm_error *err);
int qvm_journal_undo_rename(struct qvm_journal *j, const char *from, const char *to,
                            struct qvm_error *err);
/* The libvirt runtime (core/runtime_libvirt.h): power off and undefine the
 * domain with UUID at URI; power it off; define it again from the domain
 * XML saved at PATH. */
int qvm_journal_undo_libvirt_undefine(struct qvm_journal *j, const char *uri, const char *uuid,
                                      struct qvm_error *err);
int qvm_journal_undo_libvirt_destroy(struct qvm_journal *j, const char *uri, const char *uuid,
                                     struct qvm_error *err);
int qvm_journal_undo_libvirt_define(struct qvm_journal *j, const char *uri, const char *path,
                                    struct qvm_error *err);
/* ... and thaw its guest's file systems; resume it (a snapshot's quiesce). */
int qvm_journal_undo_libvirt_thaw(struct qvm_journal *j, const char *uri, const char *uuid,
                                  struct qvm_error *err);
int qvm_journal_undo_libvirt_resume(struct qvm_journal *j, const char *uri, const char *uuid,
                                    struct qvm_error *err);
/* Snapshots and clones (core/snapshot.c, core/clone.c), undone through the
 * pool's driver: remove snapshot SNAP of disk DISK of VM; undo a revert of
 * DISK from wherever it got; tidy what a clone of DISK left (snapshot_tidy). */
int qvm_journal_undo_snapshot_destroy(struct qvm_journal *j, const char *pool, const char *vm,
                                      const char *disk, const char *snap, struct qvm_error *err);
int qvm_journal_undo_revert(struct qvm_journal *j, const char *pool, const char *vm,
                            const char *disk, struct qvm_error *err);
int qvm_journal_undo_snapshot_tidy(struct qvm_journal *j, const char *pool, const char *vm,
                                   const char *disk, struct qvm_error *err);
/* A guest whose file systems were frozen through its agent (QGA_SOCKET), or
 * a VM paused through QMP (QMP_SOCKET), for a consistent snapshot: thawed or
 * resumed again, if the QEMU of PID_FILE still runs. */
int qvm_journal_undo_guest_thaw(struct qvm_journal *j, const char *qga_socket,
                                const char *pid_file, struct qvm_error *err);
int qvm_journal_undo_vm_resume(struct qvm_journal *j, const char *qmp_socket,
                               const char *pid_file, struct qvm_error *err);

/* A qvm network (core/net.h): take its host side down; bring it back up
 * if it is still defined. */
int qvm_journal_undo_net_down(struct qvm_journal *j, const char *name, struct qvm_error *err);
int qvm_journal_undo_net_up(struct qvm_journal *j, const char *name, struct qvm_error *err);

/* The operation succeeded: the journal is deleted and freed. */
int qvm_journal_commit(struct qvm_journal *j, struct qvm_error *err);

/* The operation failed: undoes every record in reverse order, then deletes
 * and frees the journal. Returns 0 if everything was undone; otherwise
 * -EIO with a message listing each change that could not be undone (the
 * journal is kept, so `qvm doctor --repair` can retry). */
int qvm_journal_rollback(struct qvm_journal *j, struct qvm_error *err);

/* Rolls back journals left by dead processes. Reports each through the ui.
 * Returns the number recovered, or a negative errno. */
int qvm_journal_recover(struct qvm_ctx *ctx, struct qvm_error *err);

/* Lists journals that are not held by a live process (for doctor). */
int qvm_journal_list_stale(struct qvm_ctx *ctx, char ***ret_descriptions, size_t *ret_n,
                           struct qvm_error *err);

#endif
