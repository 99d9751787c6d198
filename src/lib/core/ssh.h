/* ssh.h - the ssh command line that logs into a VM: the forwarded port on
 * 127.0.0.1, the user its qvm file set up, and the private key whose public
 * half the qvm file installed. Reads the bundle's qvm file; starts nothing
 * (the CLI execs the result). */
#ifndef QVM_CORE_SSH_H
#define QVM_CORE_SSH_H

#include "core/context.h"

struct qvm_ssh_target {
    char *user;
    char *key;              /* private key file, or NULL: ssh's own defaults */
    int port;
    char *known_hosts;      /* in the VM's runtime directory */
    char **argv;            /* ssh ... 127.0.0.1 (or the VM's qvm network address) EXTRA..., NULL-terminated */
    char *note;             /* why no key was picked, or NULL */
};

/* Builds the ssh command for VM NAME. USER (may be NULL) overrides the
 * user; HOME is where ~/.ssh/id_*.pub are looked for; EXTRA (may be NULL)
 * is appended after the destination (ssh still reads options there).
 *
 * The user is the first one the qvm file's user-data gives a key that
 * matches one of HOME/.ssh/id_*.pub (in the order of `users`, where
 * "default" is the default user with the top-level ssh_authorized_keys
 * and meta-data public-keys); else the first user with any key; else the
 * first user. The default user is system_info.default_user.name or `user`
 * from the user-data, else the image's known default (debian, ubuntu,
 * fedora, ...) from os-variant or the image name. */
int qvm_ssh_target(struct qvm_ctx *ctx, const char *name, const char *user, const char *home,
                   const char *const *extra, struct qvm_ssh_target *ret, struct qvm_error *err);
void qvm_ssh_target_release(struct qvm_ssh_target *t);

/* The default user of the cloud images of a distribution named by an
 * os-variant or image name ("debian12" -> "debian"), or NULL. */
const char *qvm_ssh_distro_user(const char *name);

#endif
