/* virt_install.h - the virt-install command line of qvm's compatibility mode
 * (`runtime: virt-install`, seed 000 sections 6.4 and 6.5).
 *
 * Pure, like qemu.h: the same domain configuration the libvirt runtime
 * writes as XML becomes virt-install options, plus the vm document's keys
 * qvm does not model (spec->vi_opts) passed through as --KEY=VALUE. qvm
 * keeps making the disk and the seed; virt-install only defines and starts
 * the domain. Tested as exact argv. */
#ifndef QVM_RUNTIME_VIRT_INSTALL_H
#define QVM_RUNTIME_VIRT_INSTALL_H

#include <stdbool.h>

#include "runtime/domain_xml.h"

enum qvm_vi_mode {
    QVM_VI_DRY_RUN,      /* --dry-run: validate every option, change nothing */
    QVM_VI_INSTALL,      /* define and start the domain */
    QVM_VI_PRINT_XML,    /* --print-xml: the domain XML on stdout (qvm up --no-start) */
};

/* The argv (NULL-terminated, into *ret; free with qvm_argv_free from
 * qemu.h) for connection URI. OSINFO is the --osinfo value: the spec's
 * os-variant when this host's osinfo-db knows it, else
 * "detect=on,require=off". -EINVAL for a path virt-install's option syntax
 * cannot carry (a comma, a quote or a control character in it). */
int qvm_virt_install_argv(const struct qvm_domain_config *cfg, const char *uri,
                          const char *osinfo, enum qvm_vi_mode mode, char ***ret,
                          struct qvm_error *err);

/* Whether an osinfo-db under one of DIRS (NULL-terminated; NULL: libosinfo's
 * system locations) defines an OS with short-id ID. virt-install 4.1 fails on
 * an --osinfo name it does not know (Debian 12's osinfo-db has no
 * "debian12"). */
bool qvm_osinfo_known(const char *id, const char *const *dirs);

#endif
