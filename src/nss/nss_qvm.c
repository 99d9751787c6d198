/* nss_qvm.c - libnss_qvm.so.2, the glibc NSS "hosts" module that makes
 * qvm's VM names resolve on the host ("hosts: files qvm dns" in
 * /etc/nsswitch.conf). It answers from the hosts files qvm keeps per
 * network (hosts_files.c), IPv4 only, and owns the NSS side: the entry
 * points glibc looks up by name, their statuses and h_errno values, and the
 * layout of answers in the caller's buffer. Only the _nss_qvm_* symbols are
 * exported (the module is built with hidden visibility). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <nss.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "hosts_files.h"

#define NSS_EXPORT __attribute__((visibility("default")))

/* glibc declares none of these; it finds them with dlsym. */
NSS_EXPORT enum nss_status _nss_qvm_gethostbyname4_r(
    const char *name, struct gaih_addrtuple **pat, char *buffer, size_t buflen,
    int *errnop, int *herrnop, int32_t *ttlp);
NSS_EXPORT enum nss_status _nss_qvm_gethostbyname3_r(
    const char *name, int af, struct hostent *host, char *buffer, size_t buflen,
    int *errnop, int *herrnop, int32_t *ttlp, char **canonp);
NSS_EXPORT enum nss_status _nss_qvm_gethostbyname2_r(
    const char *name, int af, struct hostent *host, char *buffer, size_t buflen,
    int *errnop, int *herrnop);
NSS_EXPORT enum nss_status _nss_qvm_gethostbyname_r(
    const char *name, struct hostent *host, char *buffer, size_t buflen,
    int *errnop, int *herrnop);
NSS_EXPORT enum nss_status _nss_qvm_gethostbyaddr2_r(
    const void *addr, socklen_t len, int af, struct hostent *host, char *buffer,
    size_t buflen, int *errnop, int *herrnop, int32_t *ttlp);
NSS_EXPORT enum nss_status _nss_qvm_gethostbyaddr_r(
    const void *addr, socklen_t len, int af, struct hostent *host, char *buffer,
    size_t buflen, int *errnop, int *herrnop);

/* The caller's buffer, handed out front to back; NULL when it is used up. */
struct arena {
    char *next;
    size_t left;
};

static void *arena_take(struct arena *a, size_t size, size_t align)
{
    size_t pad = (align - (uintptr_t)a->next % align) % align;
    if (pad > a->left || size > a->left - pad)
        return NULL;
    void *p = a->next + pad;
    a->next += pad + size;
    a->left -= pad + size;
    return p;
}

static char *arena_strdup(struct arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = arena_take(a, n, 1);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* glibc's convention: ERANGE with TRYAGAIN makes it retry with a larger buffer. */
static enum nss_status too_small(int *errnop, int *herrnop)
{
    *errnop = ERANGE;
    *herrnop = NETDB_INTERNAL;
    return NSS_STATUS_TRYAGAIN;
}

static enum nss_status not_found(int herr, int *errnop, int *herrnop)
{
    *errnop = ENOENT;
    *herrnop = herr;
    return NSS_STATUS_NOTFOUND;
}

static enum nss_status unavailable(int err, int *errnop, int *herrnop)
{
    *errnop = err;
    *herrnop = NO_RECOVERY;
    return NSS_STATUS_UNAVAIL;
}

/* Nothing matched: "not found", unless a file we could not read might have
 * held the answer. */
static enum nss_status no_answer(const struct qvm_hosts_result *r, int *errnop, int *herrnop)
{
    if (r->error)
        return unavailable(r->error, errnop, herrnop);
    return not_found(HOST_NOT_FOUND, errnop, herrnop);
}

static enum nss_status lookup_name(const char *name, struct qvm_hosts_result *r,
                                   int *errnop, int *herrnop)
{
    struct qvm_hosts_query q;
    if (!qvm_hosts_query_name(&q, name))
        return not_found(HOST_NOT_FOUND, errnop, herrnop);
    qvm_hosts_lookup(&q, r);
    if (r->n_addrs == 0)
        return no_answer(r, errnop, herrnop);
    return NSS_STATUS_SUCCESS;
}

/* ADDRS: N_ADDRS addresses, 4 bytes each. Layout: alias pointers, address
 * pointers, addresses, then the strings. HOST is written only on success. */
static enum nss_status fill_hostent(const struct qvm_hosts_result *r, const uint8_t *addrs,
                                    size_t n_addrs, struct hostent *host, char *buffer,
                                    size_t buflen, int *errnop, int *herrnop, char **canonp)
{
    struct arena a = { buffer, buflen };
    char **aliases = arena_take(&a, r->n_names * sizeof(char *), _Alignof(char *));
    char **addr_list = arena_take(&a, (n_addrs + 1) * sizeof(char *), _Alignof(char *));
    char *addr_bytes = arena_take(&a, n_addrs * 4, _Alignof(struct in_addr));
    const char *s = r->names;
    char *h_name = arena_strdup(&a, s);
    if (!aliases || !addr_list || !addr_bytes || !h_name)
        return too_small(errnop, herrnop);
    for (size_t k = 1; k < r->n_names; k++) {
        s += strlen(s) + 1;
        aliases[k - 1] = arena_strdup(&a, s);
        if (!aliases[k - 1])
            return too_small(errnop, herrnop);
    }
    aliases[r->n_names - 1] = NULL;
    for (size_t i = 0; i < n_addrs; i++) {
        memcpy(addr_bytes + 4 * i, addrs + 4 * i, 4);
        addr_list[i] = addr_bytes + 4 * i;
    }
    addr_list[n_addrs] = NULL;

    host->h_name = h_name;
    host->h_aliases = aliases;
    host->h_addrtype = AF_INET;
    host->h_length = 4;
    host->h_addr_list = addr_list;
    if (canonp)
        *canonp = h_name;
    *herrnop = NETDB_SUCCESS;
    return NSS_STATUS_SUCCESS;
}

/* getaddrinfo() with AF_UNSPEC: a chain of IPv4 tuples. */
enum nss_status _nss_qvm_gethostbyname4_r(const char *name, struct gaih_addrtuple **pat,
                                          char *buffer, size_t buflen, int *errnop,
                                          int *herrnop, int32_t *ttlp)
{
    struct qvm_hosts_result r;
    enum nss_status status = lookup_name(name, &r, errnop, herrnop);
    if (status != NSS_STATUS_SUCCESS)
        return status;

    struct arena a = { buffer, buflen };
    struct gaih_addrtuple *first = NULL, *prev = NULL;
    for (size_t i = 0; i < r.n_addrs; i++) {
        struct gaih_addrtuple *t = arena_take(&a, sizeof *t, _Alignof(struct gaih_addrtuple));
        if (!t)
            return too_small(errnop, herrnop);
        memset(t, 0, sizeof *t);
        t->family = AF_INET;
        memcpy(t->addr, r.addrs[i], 4);
        if (prev)
            prev->next = t;
        else
            first = t;
        prev = t;
    }
    char *canon = arena_strdup(&a, r.names);
    if (!canon)
        return too_small(errnop, herrnop);
    for (struct gaih_addrtuple *t = first; t; t = t->next)
        t->name = canon;

    /* A caller that brings its own first tuple (nscd) gets it filled in. */
    if (*pat)
        **pat = *first;
    else
        *pat = first;
    if (ttlp)
        *ttlp = 0;
    *herrnop = NETDB_SUCCESS;
    return NSS_STATUS_SUCCESS;
}

enum nss_status _nss_qvm_gethostbyname3_r(const char *name, int af, struct hostent *host,
                                          char *buffer, size_t buflen, int *errnop,
                                          int *herrnop, int32_t *ttlp, char **canonp)
{
    if (af == AF_UNSPEC)
        af = AF_INET;
    if (af != AF_INET && af != AF_INET6) {
        *errnop = EAFNOSUPPORT;
        *herrnop = NO_DATA;
        return NSS_STATUS_UNAVAIL;
    }
    struct qvm_hosts_result r;
    enum nss_status status = lookup_name(name, &r, errnop, herrnop);
    if (status != NSS_STATUS_SUCCESS)
        return status;
    if (af == AF_INET6)     /* the name is ours, but has no IPv6 address */
        return not_found(NO_DATA, errnop, herrnop);
    if (ttlp)
        *ttlp = 0;
    return fill_hostent(&r, &r.addrs[0][0], r.n_addrs, host, buffer, buflen, errnop, herrnop, canonp);
}

enum nss_status _nss_qvm_gethostbyname2_r(const char *name, int af, struct hostent *host,
                                          char *buffer, size_t buflen, int *errnop,
                                          int *herrnop)
{
    return _nss_qvm_gethostbyname3_r(name, af, host, buffer, buflen, errnop, herrnop,
                                     NULL, NULL);
}

enum nss_status _nss_qvm_gethostbyname_r(const char *name, struct hostent *host,
                                         char *buffer, size_t buflen, int *errnop,
                                         int *herrnop)
{
    return _nss_qvm_gethostbyname3_r(name, AF_INET, host, buffer, buflen, errnop, herrnop,
                                     NULL, NULL);
}

/* Reverse lookups of the addresses the files list (qvm's networks: 10.x). */
enum nss_status _nss_qvm_gethostbyaddr2_r(const void *addr, socklen_t len, int af,
                                          struct hostent *host, char *buffer, size_t buflen,
                                          int *errnop, int *herrnop, int32_t *ttlp)
{
    if (af == AF_INET6)
        return not_found(HOST_NOT_FOUND, errnop, herrnop);
    if (af != AF_INET) {
        *errnop = EAFNOSUPPORT;
        *herrnop = NO_DATA;
        return NSS_STATUS_UNAVAIL;
    }
    if (len != 4 || !addr)
        return unavailable(EINVAL, errnop, herrnop);

    struct qvm_hosts_query q;
    memset(&q, 0, sizeof q);
    memcpy(q.addr, addr, 4);
    struct qvm_hosts_result r;
    qvm_hosts_lookup(&q, &r);
    if (r.n_addrs == 0)
        return no_answer(&r, errnop, herrnop);
    if (ttlp)
        *ttlp = 0;
    return fill_hostent(&r, q.addr, 1, host, buffer, buflen, errnop, herrnop, NULL);
}

enum nss_status _nss_qvm_gethostbyaddr_r(const void *addr, socklen_t len, int af,
                                         struct hostent *host, char *buffer, size_t buflen,
                                         int *errnop, int *herrnop)
{
    return _nss_qvm_gethostbyaddr2_r(addr, len, af, host, buffer, buflen, errnop, herrnop,
                                     NULL);
}
