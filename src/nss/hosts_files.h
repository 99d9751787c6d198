/* hosts_files.h - the part of libnss_qvm that reads qvm's per-network hosts
 * files (QVM_ROOT/var/lib/qvm/networks/NAME/hosts, written by core/net.c)
 * and finds the lines a lookup wants. It owns reading and parsing only; the
 * NSS entry points and their buffer layouts are in nss_qvm.c.
 *
 * It runs inside other people's programs (every getaddrinfo() of a host with
 * "qvm" in nsswitch.conf), so: libc only, no static state, no allocation
 * but opendir's, bounded stack, and every input capped. */
#ifndef QVM_NSS_HOSTS_FILES_H
#define QVM_NSS_HOSTS_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QVM_HOSTS_LINE_MAX   1024               /* longer lines are skipped */
#define QVM_HOSTS_FILE_MAX   (1024 * 1024)      /* larger files are skipped */
#define QVM_HOSTS_NETS_MAX   1024               /* network directories read */
#define QVM_HOSTS_ADDRS_MAX  16                 /* addresses in one answer */
#define QVM_HOSTS_NAME_MAX   253                /* a DNS name, without the root dot */
#define QVM_HOSTS_KEY_MAX    64                 /* network name bytes used for ordering */

/* One lookup: by name (NAME set) or by address (NAME NULL, ADDR set). */
struct qvm_hosts_query {
    const char *name;        /* compared ASCII case-insensitively */
    size_t name_len;         /* without a trailing root dot */
    uint8_t addr[4];         /* network byte order */
};

/* What the files said. Addresses are ordered by network name, then by line,
 * so an answer does not depend on readdir order. NAMES holds the names of
 * the first matching line in that order (N_NAMES strings, each NUL-ended):
 * the canonical name first, then its aliases. */
struct qvm_hosts_result {
    size_t n_addrs;
    uint8_t addrs[QVM_HOSTS_ADDRS_MAX][4];
    char keys[QVM_HOSTS_ADDRS_MAX][QVM_HOSTS_KEY_MAX + 1];   /* network of each address */
    unsigned lines[QVM_HOSTS_ADDRS_MAX];                      /* line of each address */
    size_t n_names;
    size_t names_len;                       /* bytes used in NAMES */
    char names[QVM_HOSTS_LINE_MAX + 1];
    int error;      /* first errno that kept a file (or the directory) from being read; 0 if none */
};

/* Fills Q for a name lookup. False if NAME cannot be a qvm name at all
 * (empty, too long): the caller answers "not found" without reading files. */
bool qvm_hosts_query_name(struct qvm_hosts_query *q, const char *name);

/* Reads every network's hosts file and fills R (zeroed first). A missing
 * networks directory is not an error: there are no names, R->error is 0. */
void qvm_hosts_lookup(const struct qvm_hosts_query *q, struct qvm_hosts_result *r);

#endif
