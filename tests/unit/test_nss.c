/* test_nss.c - libnss_qvm through glibc itself: hosts files under a
 * temporary QVM_ROOT, "hosts: qvm" set with __nss_configure_lookup, then
 * getaddrinfo(), gethostbyname*_r() and gethostbyaddr_r() as programs call
 * them; the entry points directly where a status glibc folds away matters
 * (ERANGE, UNAVAIL). The module is the one just built (QVM_NSS_MODULE,
 * from meson): loaded by its full path first, so that glibc's own
 * dlopen("libnss_qvm.so.2") finds it by soname, and checked to be the only
 * libnss_qvm loaded. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <netdb.h>
#include <nss.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#ifndef QVM_NSS_MODULE
#error "QVM_NSS_MODULE (the built module's path) comes from tests/unit/meson.build"
#endif

typedef enum nss_status (*byname4_fn)(const char *, struct gaih_addrtuple **, char *, size_t,
                                      int *, int *, int32_t *);
typedef enum nss_status (*byname3_fn)(const char *, int, struct hostent *, char *, size_t,
                                      int *, int *, int32_t *, char **);
typedef enum nss_status (*byaddr2_fn)(const void *, socklen_t, int, struct hostent *, char *,
                                      size_t, int *, int *, int32_t *);

static char base[64];
static char *root_main, *root_locked, *root_broken, *root_none;
static byname4_fn byname4;
static byname3_fn byname3;
static byaddr2_fn byaddr2;

/* ---------- the trees ---------- */

static void put(const char *root, const char *rel, const void *data, size_t len, mode_t mode)
{
    struct qvm_error err = { 0 };
    char *path = xasprintf("%s/var/lib/qvm/networks/%s", root, rel);
    char *dir = xstrdup(path);
    *strrchr(dir, '/') = '\0';
    if (qvm_mkdir_p(dir, 0755, &err) < 0 || qvm_write_file_atomic(path, data, len, 0644, &err) < 0 ||
        chmod(path, mode) < 0)
        printf("Bail out! writing %s: %s\n", path, err.msg);
    free(dir);
    free(path);
}

static void put_text(const char *root, const char *rel, const char *text)
{
    put(root, rel, text, strlen(text), 0644);
}

/* "ADDR NAME" padded with blanks to exactly LEN bytes, plus a newline. */
static void add_padded_line(struct strbuf *sb, const char *text, size_t len)
{
    strbuf_addstr(sb, text);
    for (size_t i = strlen(text); i < len; i++)
        strbuf_addch(sb, ' ');
    strbuf_addch(sb, '\n');
}

static const char lan_head[] =
    "# qvm network: the VMs' names (read by dnsmasq and libnss_qvm)\n"
    "10.10.0.5 web1 web1.qvm\n"
    "10.10.0.6 db1 db1.qvm   # the database\n"
    "garbage line without an address\n"
    "10.10.0.300 bad1 bad1.qvm\n"
    "fe80::1 v6only v6only.qvm\n"
    "10.10.0.7\n"
    "\n"
    "   \t\n"
    "\t10.10.0.8\tTabbed\ttabbed.qvm\r\n"
    "10.10.0.11 bad/name slash.qvm\n"
    "10.10.0.12 hashed#comment hashed2\n";

static void make_lan(const char *root)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, lan_head);
    add_padded_line(&sb, "10.10.0.9 longline", 1025);    /* one byte over: skipped */
    add_padded_line(&sb, "10.10.0.15 exact1024", 1024);  /* at the limit: read */
    strbuf_addstr(&sb, "10.10.0.10 after-long after-long.qvm\n");
    strbuf_add(&sb, "10.10.0.13 nul\0name nul.qvm\n", 28);
    strbuf_addstr(&sb, "10.10.0.14 last last.qvm");      /* no newline at the end */
    put(root, "lan/hosts", sb.buf, sb.len, 0644);
    strbuf_release(&sb);
}

static void make_trees(void)
{
    struct qvm_error err = { 0 };
    strcpy(base, "/tmp/qvm-test-nss.XXXXXX");
    if (!mkdtemp(base) || chmod(base, 0755) < 0) {
        printf("Bail out! mkdtemp failed\n");
        exit(1);
    }
    root_main = xasprintf("%s/main", base);
    root_locked = xasprintf("%s/locked", base);
    root_broken = xasprintf("%s/broken", base);
    root_none = xasprintf("%s/none", base);

    /* Two networks; web1 is on both, listed twice on dmz. */
    make_lan(root_main);
    put_text(root_main, "dmz/hosts",
             "10.20.0.5 web1 web1.qvm\n10.20.0.9 mail mail.qvm\n10.20.0.5 web1\n");
    put_text(root_main, ".tmp-new/hosts", "10.60.0.1 hidden hidden.qvm\n");
    char *empty = xasprintf("%s/var/lib/qvm/networks/empty", root_main);
    qvm_mkdir_p(empty, 0755, &err);                     /* a network without hosts yet */
    free(empty);
    put_text(root_main, "stray", "10.70.0.1 stray\n");  /* a file, not a network */

    /* A network whose hosts file cannot be read. */
    make_lan(root_locked);
    put(root_locked, "locked/hosts", "10.30.0.5 secret secret.qvm\n", 28, 0000);

    /* Files qvm did not write: over 1 MiB, a FIFO that must not block, a symlink. */
    make_lan(root_broken);
    size_t big = 1024 * 1024 + 1;
    char *data = xmalloc(big);
    memset(data, '\n', big);
    memcpy(data, "10.40.0.5 big big.qvm\n", 22);
    put(root_broken, "big/hosts", data, big, 0644);
    free(data);
    char *fifo = xasprintf("%s/var/lib/qvm/networks/pipe/hosts", root_broken);
    char *fifo_dir = xasprintf("%s/var/lib/qvm/networks/pipe", root_broken);
    if (qvm_mkdir_p(fifo_dir, 0755, &err) < 0 || mkfifo(fifo, 0644) < 0)
        printf("Bail out! mkfifo %s\n", fifo);
    free(fifo);
    free(fifo_dir);
    /* A hosts file that is a symlink to a file elsewhere. */
    char *outside = xasprintf("%s/outside-hosts", base);
    char *link_dir = xasprintf("%s/var/lib/qvm/networks/link", root_broken);
    char *link = xasprintf("%s/hosts", link_dir);
    qvm_write_file_atomic(outside, "10.80.0.1 outside\n", 18, 0644, &err);
    if (qvm_mkdir_p(link_dir, 0755, &err) < 0 || symlink(outside, link) < 0)
        printf("Bail out! symlink %s\n", link);
    free(outside);
    free(link_dir);
    free(link);

    /* root_none: no networks directory at all. */
    qvm_mkdir_p(root_none, 0755, &err);
}

static void use_root(const char *root)
{
    setenv("QVM_ROOT", root, 1);
}

/* ---------- lookups through glibc ---------- */

struct gai_answer {
    int rc;
    int n;
    char addrs[8][INET_ADDRSTRLEN];
    char canon[256];
};

static struct gai_answer gai(const char *name, int family)
{
    struct gai_answer a;
    memset(&a, 0, sizeof a);
    struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_CANONNAME };
    struct addrinfo *res = NULL;
    a.rc = getaddrinfo(name, NULL, &hints, &res);
    if (a.rc != 0)
        return a;
    if (res->ai_canonname)
        snprintf(a.canon, sizeof a.canon, "%s", res->ai_canonname);
    for (struct addrinfo *ai = res; ai && a.n < 8; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET) {
            snprintf(a.addrs[a.n++], INET_ADDRSTRLEN, "family %d", ai->ai_family);
            continue;
        }
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
        inet_ntop(AF_INET, &sin->sin_addr, a.addrs[a.n++], INET_ADDRSTRLEN);
    }
    freeaddrinfo(res);
    return a;
}

static const char *addr_text(const char *a, char buf[INET_ADDRSTRLEN])
{
    return inet_ntop(AF_INET, a, buf, INET_ADDRSTRLEN);
}

static void test_module_is_the_built_one(void *handle)
{
    void *again = dlopen("libnss_qvm.so.2", RTLD_NOW | RTLD_NOLOAD);
    CHECK(again == handle, "glibc's libnss_qvm.so.2 is the module loaded from the build");
    if (again)
        dlclose(again);
    struct link_map *lm = NULL;
    CHECK(dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 && lm, "dlinfo of the module");
    if (lm)
        CHECK_STR(lm->l_name, QVM_NSS_MODULE, "the module was loaded from the build directory");
}

static int count_modules(struct dl_phdr_info *info, size_t size, void *data)
{
    const char *n = info->dlpi_name;
    size_t len = strlen(n), suffix = strlen("libnss_qvm.so.2");
    if (len >= suffix && strcmp(n + len - suffix, "libnss_qvm.so.2") == 0)
        ++*(int *)data;
    return 0;
}

static void test_forward(void)
{
    use_root(root_main);
    struct gai_answer a = gai("web1", AF_INET);
    CHECK(a.rc == 0 && a.n == 2, "getaddrinfo(web1, AF_INET): two addresses (rc %d, %d)", a.rc, a.n);
    CHECK_STR(a.addrs[0], "10.20.0.5", "the dmz address first (networks in name order)");
    CHECK_STR(a.addrs[1], "10.10.0.5", "then the lan address, each once");
    CHECK_STR(a.canon, "web1", "canonical name: the first name of the line");

    a = gai("web1.qvm", AF_UNSPEC);
    CHECK(a.rc == 0 && a.n == 2, "getaddrinfo(web1.qvm, AF_UNSPEC): IPv4 answers only (rc %d, %d)",
          a.rc, a.n);
    CHECK_STR(a.addrs[0], "10.20.0.5", "AF_UNSPEC: dmz first");
    CHECK_STR(a.addrs[1], "10.10.0.5", "AF_UNSPEC: then lan");
    CHECK_STR(a.canon, "web1", "AF_UNSPEC: canonical name web1");

    a = gai("WEB1.Qvm", AF_UNSPEC);
    CHECK(a.rc == 0 && a.n == 2, "upper case matches (ASCII case-insensitive)");
    a = gai("db1.qvm.", AF_INET);
    CHECK(a.rc == 0 && a.n == 1 && strcmp(a.addrs[0], "10.10.0.6") == 0,
          "a rooted name (trailing dot) matches");
    a = gai("tabbed", AF_INET);
    CHECK(a.rc == 0 && strcmp(a.addrs[0], "10.10.0.8") == 0 && strcmp(a.canon, "Tabbed") == 0,
          "tabs and CR are blanks; the name comes back as listed");
    a = gai("mail", AF_UNSPEC);
    CHECK(a.rc == 0 && a.n == 1 && strcmp(a.addrs[0], "10.20.0.9") == 0, "the second network answers");
    a = gai("exact1024", AF_INET);
    CHECK(a.rc == 0 && strcmp(a.addrs[0], "10.10.0.15") == 0, "a line of exactly 1024 bytes is read");
    a = gai("after-long", AF_INET);
    CHECK(a.rc == 0 && strcmp(a.addrs[0], "10.10.0.10") == 0, "lines after an overlong one are read");
    a = gai("last.qvm", AF_INET);
    CHECK(a.rc == 0 && strcmp(a.addrs[0], "10.10.0.14") == 0, "a last line without newline is read");
    a = gai("hashed", AF_INET);
    CHECK(a.rc == 0 && strcmp(a.addrs[0], "10.10.0.12") == 0, "'#' ends the names");

    const char *absent[] = { "nosuch", "web", "web1x", "eb1", "web1.qvm.extra", "web1..",
                             "longline", "bad1", "v6only", "hashed2", "comment", "bad", "slash.qvm",
                             "nul", "nul.qvm", "garbage", "hidden", "stray", "", "." };
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        a = gai(absent[i], AF_INET);
        CHECK(a.rc == EAI_NONAME, "'%s' is not found (EAI_NONAME, got %d: %s)", absent[i], a.rc,
              gai_strerror(a.rc));
    }
}

static void test_hostent(void)
{
    use_root(root_main);
    struct hostent he, *res = NULL;
    char buf[1024], ip[INET_ADDRSTRLEN];
    int herr = -1;

    int rc = gethostbyname2_r("db1", AF_INET, &he, buf, sizeof buf, &res, &herr);
    CHECK(rc == 0 && res == &he, "gethostbyname2_r(db1, AF_INET) succeeds (rc %d)", rc);
    if (res) {
        CHECK_STR(he.h_name, "db1", "h_name");
        CHECK(he.h_aliases[0] && strcmp(he.h_aliases[0], "db1.qvm") == 0 && !he.h_aliases[1],
              "h_aliases: db1.qvm only");
        CHECK(he.h_addrtype == AF_INET && he.h_length == 4, "AF_INET, 4 bytes");
        CHECK(he.h_addr_list[0] && !he.h_addr_list[1], "one address");
        CHECK_STR(addr_text(he.h_addr_list[0], ip), "10.10.0.6", "the address");
    }

    res = NULL;
    rc = gethostbyname_r("MAIL.qvm", &he, buf, sizeof buf, &res, &herr);
    CHECK(rc == 0 && res, "gethostbyname_r(MAIL.qvm) succeeds");
    if (res) {
        CHECK_STR(he.h_name, "mail", "h_name is the line's first name");
        CHECK_STR(addr_text(he.h_addr_list[0], ip), "10.20.0.9", "gethostbyname_r address");
    }

    res = &he;
    rc = gethostbyname_r("nosuch", &he, buf, sizeof buf, &res, &herr);
    CHECK(res == NULL && herr == HOST_NOT_FOUND, "unknown name: HOST_NOT_FOUND (h_errno %d)", herr);

    /* AF_INET6: the name is ours but has no IPv6 address. */
    res = &he;
    rc = gethostbyname2_r("web1", AF_INET6, &he, buf, sizeof buf, &res, &herr);
    CHECK(res == NULL && herr == NO_DATA, "gethostbyname2_r(web1, AF_INET6): NO_DATA (h_errno %d)",
          herr);
    res = &he;
    rc = gethostbyname2_r("nosuch", AF_INET6, &he, buf, sizeof buf, &res, &herr);
    CHECK(res == NULL && herr == HOST_NOT_FOUND, "AF_INET6 of an unknown name: HOST_NOT_FOUND");
    struct gai_answer a = gai("web1", AF_INET6);
    CHECK((a.rc == EAI_NODATA || a.rc == EAI_NONAME) && a.n == 0,
          "getaddrinfo(web1, AF_INET6) finds nothing (%d: %s)", a.rc, gai_strerror(a.rc));

    /* A buffer too small: ERANGE, at every size up to the one that fits.
     * Each buffer is exactly its size, so ASan and valgrind see overruns. */
    size_t fits = 0;
    int bad = 0;
    for (size_t len = 0; len <= 256; len++) {
        char *small = xmalloc(len ? len : 1);
        res = &he;
        rc = gethostbyname2_r("web1.qvm", AF_INET, &he, small, len, &res, &herr);
        if (rc == 0 && res && !fits) {
            fits = len;
            if (he.h_addr_list[1] == NULL || strcmp(he.h_name, "web1") != 0)
                bad++;
        } else if (rc == 0 && !res) {
            bad++;
        } else if (rc != 0 && (rc != ERANGE || res != NULL || fits)) {
            bad++;
        }
        free(small);
    }
    CHECK(fits > 0 && bad == 0, "gethostbyname2_r: ERANGE below %zu bytes, an answer from there on",
          fits);
    res = &he;
    rc = gethostbyname_r("web1", &he, buf, 8, &res, &herr);
    CHECK(rc == ERANGE && res == NULL, "an 8-byte buffer: ERANGE through glibc (rc %d)", rc);
}

static void test_reverse(void)
{
    use_root(root_main);
    struct hostent he, *res = NULL;
    char buf[1024];
    int herr = -1;
    struct in_addr in;

    inet_pton(AF_INET, "10.10.0.6", &in);
    int rc = gethostbyaddr_r(&in, sizeof in, AF_INET, &he, buf, sizeof buf, &res, &herr);
    CHECK(rc == 0 && res, "gethostbyaddr_r(10.10.0.6) succeeds");
    if (res) {
        CHECK_STR(he.h_name, "db1", "reverse: the first name");
        CHECK(he.h_aliases[0] && strcmp(he.h_aliases[0], "db1.qvm") == 0, "reverse: its alias");
        CHECK(memcmp(he.h_addr_list[0], &in, 4) == 0 && !he.h_addr_list[1], "reverse: the address");
    }

    struct sockaddr_in sin = { .sin_family = AF_INET };
    inet_pton(AF_INET, "10.20.0.9", &sin.sin_addr);
    char host[256] = "";
    rc = getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, NULL, 0, NI_NAMEREQD);
    CHECK(rc == 0 && strcmp(host, "mail") == 0, "getnameinfo(10.20.0.9) is mail (%s)", host);

    inet_pton(AF_INET, "10.99.0.1", &in);
    res = &he;
    rc = gethostbyaddr_r(&in, sizeof in, AF_INET, &he, buf, sizeof buf, &res, &herr);
    CHECK(res == NULL && herr == HOST_NOT_FOUND, "an address not listed: HOST_NOT_FOUND");
    inet_pton(AF_INET, "10.10.0.9", &in);
    res = &he;
    rc = gethostbyaddr_r(&in, sizeof in, AF_INET, &he, buf, sizeof buf, &res, &herr);
    CHECK(res == NULL, "the address of an overlong line is not listed");
    inet_pton(AF_INET, "10.10.0.7", &in);
    res = &he;
    rc = gethostbyaddr_r(&in, sizeof in, AF_INET, &he, buf, sizeof buf, &res, &herr);
    CHECK(res == NULL, "an address without names is not listed");
}

/* The entry points directly: statuses, errno and h_errno as glibc gets them. */
static void test_entry_points(void)
{
    use_root(root_main);
    int err = 0, herr = 0;
    int32_t ttl = -1;
    char buf[512];

    /* gethostbyname4_r, every buffer size: TRYAGAIN/ERANGE until it fits. */
    size_t fits = 0;
    int bad = 0;
    for (size_t len = 0; len <= 256; len++) {
        char *small = xmalloc(len ? len : 1);
        struct gaih_addrtuple *pat = NULL;
        enum nss_status s = byname4("web1", &pat, small, len, &err, &herr, &ttl);
        if (s == NSS_STATUS_SUCCESS && !fits) {
            fits = len;
            char ip[INET_ADDRSTRLEN];
            if (!pat || pat->family != AF_INET || strcmp(pat->name, "web1") != 0 ||
                strcmp(addr_text((const char *)pat->addr, ip), "10.20.0.5") != 0 || !pat->next ||
                strcmp(addr_text((const char *)pat->next->addr, ip), "10.10.0.5") != 0 ||
                pat->next->next || ttl != 0 || herr != NETDB_SUCCESS)
                bad++;
        } else if (s != NSS_STATUS_SUCCESS &&
                   (s != NSS_STATUS_TRYAGAIN || err != ERANGE || herr != NETDB_INTERNAL || fits)) {
            bad++;
        }
        free(small);
    }
    CHECK(fits > 0 && bad == 0,
          "gethostbyname4_r: TRYAGAIN, ERANGE, NETDB_INTERNAL below %zu bytes, then the tuples", fits);

    /* nscd passes its own first tuple to be filled in. */
    struct gaih_addrtuple mine = { 0 }, *pat = &mine;
    enum nss_status s = byname4("mail.qvm", &pat, buf, sizeof buf, &err, &herr, NULL);
    char ip[INET_ADDRSTRLEN];
    CHECK(s == NSS_STATUS_SUCCESS && pat == &mine && mine.family == AF_INET &&
              strcmp(addr_text((const char *)mine.addr, ip), "10.20.0.9") == 0 && !mine.next,
          "gethostbyname4_r fills a tuple the caller brings");

    s = byname4("nosuch", &pat, buf, sizeof buf, &err, &herr, NULL);
    CHECK(s == NSS_STATUS_NOTFOUND && err == ENOENT && herr == HOST_NOT_FOUND,
          "unknown name: NOTFOUND, ENOENT, HOST_NOT_FOUND");

    struct hostent he;
    char *canon = NULL;
    s = byname3("Web1", AF_INET, &he, buf, sizeof buf, &err, &herr, &ttl, &canon);
    CHECK(s == NSS_STATUS_SUCCESS && canon == he.h_name && canon && strcmp(canon, "web1") == 0,
          "gethostbyname3_r gives the canonical name");
    s = byname3("web1", AF_UNSPEC, &he, buf, sizeof buf, &err, &herr, NULL, NULL);
    CHECK(s == NSS_STATUS_SUCCESS && he.h_addrtype == AF_INET, "gethostbyname3_r(AF_UNSPEC): IPv4");
    s = byname3("web1", AF_INET6, &he, buf, sizeof buf, &err, &herr, NULL, NULL);
    CHECK(s == NSS_STATUS_NOTFOUND && herr == NO_DATA, "gethostbyname3_r(AF_INET6): NOTFOUND, NO_DATA");
    s = byname3("web1", AF_PACKET, &he, buf, sizeof buf, &err, &herr, NULL, NULL);
    CHECK(s == NSS_STATUS_UNAVAIL && err == EAFNOSUPPORT, "another family: UNAVAIL, EAFNOSUPPORT");

    struct in_addr in;
    inet_pton(AF_INET, "10.20.0.5", &in);
    s = byaddr2(&in, 4, AF_INET, &he, buf, 8, &err, &herr, NULL);
    CHECK(s == NSS_STATUS_TRYAGAIN && err == ERANGE, "gethostbyaddr2_r with 8 bytes: ERANGE");
    s = byaddr2(&in, 3, AF_INET, &he, buf, sizeof buf, &err, &herr, NULL);
    CHECK(s == NSS_STATUS_UNAVAIL && err == EINVAL, "gethostbyaddr2_r with a 3-byte address: EINVAL");
    s = byaddr2(&in, 4, AF_INET, &he, buf, sizeof buf, &err, &herr, &ttl);
    CHECK(s == NSS_STATUS_SUCCESS && strcmp(he.h_name, "web1") == 0,
          "gethostbyaddr2_r(10.20.0.5): web1, listed twice on dmz");
}

static void test_missing_and_broken(void)
{
    int err = 0, herr = 0;
    char buf[512];
    struct gaih_addrtuple *pat = NULL;

    use_root(root_none);
    struct gai_answer a = gai("web1", AF_UNSPEC);
    CHECK(a.rc == EAI_NONAME, "no networks directory: EAI_NONAME (%d)", a.rc);
    enum nss_status s = byname4("web1", &pat, buf, sizeof buf, &err, &herr, NULL);
    CHECK(s == NSS_STATUS_NOTFOUND && herr == HOST_NOT_FOUND, "no networks directory: NOTFOUND");
    char *gone = xasprintf("%s/does-not-exist", base);
    use_root(gone);
    s = byname4("web1", &pat, buf, sizeof buf, &err, &herr, NULL);
    CHECK(s == NSS_STATUS_NOTFOUND, "QVM_ROOT that does not exist: NOTFOUND");
    free(gone);

    use_root(root_broken);
    a = gai("big", AF_INET);
    CHECK(a.rc != 0, "a hosts file over 1 MiB is not read (%d)", a.rc);
    a = gai("outside", AF_INET);
    CHECK(a.rc != 0, "a hosts file that is a symlink is not followed (%d)", a.rc);
    a = gai("web1", AF_INET);
    CHECK(a.rc == 0 && a.n == 1, "the other networks still answer beside them");
    s = byname4("big", &pat, buf, sizeof buf, &err, &herr, NULL);
    CHECK(s == NSS_STATUS_UNAVAIL && (err == EFBIG || err == EINVAL || err == ELOOP) &&
              herr == NO_RECOVERY,
          "a name not found beside unreadable files: UNAVAIL (errno %d)", err);

    /* The unreadable file: root reads anything, so look as nobody. */
    use_root(root_locked);
    uid_t uid = geteuid();
    if (uid == 0 && seteuid(65534) < 0) {
        printf("ok %d # SKIP cannot become nobody\n", ++test_n);
        return;
    }
    a = gai("secret", AF_INET);
    int secret_rc = a.rc;
    a = gai("web1", AF_INET);
    int web1_rc = a.rc;
    pat = NULL;
    s = byname4("secret", &pat, buf, sizeof buf, &err, &herr, NULL);
    int saved_err = err;
    if (uid == 0 && seteuid(0) < 0)
        printf("Bail out! seteuid(0): %s\n", strerror(errno));
    CHECK(secret_rc != 0, "a name in a file without read access is not found (%d)", secret_rc);
    CHECK(web1_rc == 0, "names in the readable network still resolve");
    CHECK(s == NSS_STATUS_UNAVAIL && saved_err == EACCES,
          "the module says UNAVAIL with EACCES, not NOTFOUND (status %d, errno %d)", s, saved_err);
}

/* No static state: lookups from several threads at once stay right. */
static void *lookup_loop(void *arg)
{
    long wrong = 0;
    for (int i = 0; i < 50; i++) {
        struct gai_answer a = gai((i + (long)arg) % 2 ? "db1" : "mail.qvm", AF_UNSPEC);
        const char *want = (i + (long)arg) % 2 ? "10.10.0.6" : "10.20.0.9";
        if (a.rc != 0 || a.n != 1 || strcmp(a.addrs[0], want) != 0)
            wrong++;
    }
    return (void *)wrong;
}

static void test_threads(void)
{
    use_root(root_main);
    pthread_t t[4];
    long wrong = 0;
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, lookup_loop, (void *)i);
    for (int i = 0; i < 4; i++) {
        void *w;
        pthread_join(t[i], &w);
        wrong += (long)w;
    }
    CHECK(wrong == 0, "4 threads x 50 lookups at once: all right (%ld wrong)", wrong);
}

/* Only the _nss_qvm_* entry points are exported, and the soname is the one
 * glibc asks for. Read from the file's .dynsym and .dynamic. */
static void test_exports(void)
{
    int fd = open(QVM_NSS_MODULE, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        CHECK(0, "open %s", QVM_NSS_MODULE);
        return;
    }
    const char *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        CHECK(0, "mmap %s", QVM_NSS_MODULE);
        return;
    }
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)map;
    CHECK(memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64,
          "the module is a 64-bit ELF file");
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(map + eh->e_shoff);
    int ours = 0, others = 0;
    const char *soname = NULL;
    for (int i = 0; i < eh->e_shnum; i++) {
        const char *strtab = map + sh[sh[i].sh_link].sh_offset;
        if (sh[i].sh_type == SHT_DYNSYM) {
            const Elf64_Sym *sym = (const Elf64_Sym *)(map + sh[i].sh_offset);
            for (size_t k = 0; k < sh[i].sh_size / sizeof *sym; k++) {
                if (sym[k].st_shndx == SHN_UNDEF || ELF64_ST_BIND(sym[k].st_info) == STB_LOCAL)
                    continue;
                const char *name = strtab + sym[k].st_name;
                if (strncmp(name, "_nss_qvm_", 9) == 0) {
                    ours++;
                } else {
                    others++;
                    printf("#   also exported: %s\n", name);
                }
            }
        } else if (sh[i].sh_type == SHT_DYNAMIC) {
            const Elf64_Dyn *dyn = (const Elf64_Dyn *)(map + sh[i].sh_offset);
            for (size_t k = 0; k < sh[i].sh_size / sizeof *dyn; k++)
                if (dyn[k].d_tag == DT_SONAME)
                    soname = strtab + dyn[k].d_un.d_val;
        }
    }
    CHECK(ours == 6 && others == 0, "exports: the 6 _nss_qvm_* entry points and nothing else");
    CHECK_STR(soname, "libnss_qvm.so.2", "soname");
    munmap((void *)map, (size_t)st.st_size);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    make_trees();

    void *handle = dlopen(QVM_NSS_MODULE, RTLD_NOW);
    CHECK(handle != NULL, "dlopen %s (%s)", QVM_NSS_MODULE, handle ? "ok" : dlerror());
    if (!handle)
        return test_done();
    byname4 = (byname4_fn)dlsym(handle, "_nss_qvm_gethostbyname4_r");
    byname3 = (byname3_fn)dlsym(handle, "_nss_qvm_gethostbyname3_r");
    byaddr2 = (byaddr2_fn)dlsym(handle, "_nss_qvm_gethostbyaddr2_r");
    CHECK(byname4 && byname3 && byaddr2, "the entry points are there");
    CHECK(dlsym(handle, "qvm_hosts_lookup") == NULL, "internal functions are not exported");
    CHECK(__nss_configure_lookup("hosts", "qvm") == 0, "hosts: qvm");

    test_forward();
    test_module_is_the_built_one(handle);
    int modules = 0;
    dl_iterate_phdr(count_modules, &modules);
    CHECK(modules == 1, "one libnss_qvm.so.2 in the process (%d)", modules);
    test_hostent();
    test_reverse();
    test_entry_points();
    test_missing_and_broken();
    test_threads();
    test_exports();

    dlclose(handle);
    struct qvm_error err = { 0 };
    qvm_rm_rf(base, &err);
    free(root_main);
    free(root_locked);
    free(root_broken);
    free(root_none);
    return test_done();
}
