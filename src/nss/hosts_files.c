/* hosts_files.c - reads QVM_ROOT/var/lib/qvm/networks/NAME/hosts for one
 * lookup. The files are /etc/hosts format ("10.0.0.5 web1 web1.qvm",
 * '#' comments); a line that is not exactly that is ignored whole. */
#include "hosts_files.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NETWORKS_DIR "var/lib/qvm/networks"

/* ASCII only: the locale's tolower() would fold 'I' differently in tr_TR. */
static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
}

/* Host names only: what we hand back is printed by ping, ssh and logs. */
static bool name_token_valid(const char *t)
{
    size_t n = 0;
    for (; t[n]; n++)
        if (!name_char(t[n]))
            return false;
    return n > 0 && n <= QVM_HOSTS_NAME_MAX;
}

static bool name_equal(const char *want, size_t want_len, const char *token)
{
    size_t i;
    for (i = 0; i < want_len; i++)
        if (token[i] == '\0' || ascii_lower(want[i]) != ascii_lower(token[i]))
            return false;
    return token[i] == '\0';
}

bool qvm_hosts_query_name(struct qvm_hosts_query *q, const char *name)
{
    memset(q, 0, sizeof *q);
    if (!name)
        return false;
    size_t len = strnlen(name, QVM_HOSTS_NAME_MAX + 2);
    if (len > 0 && name[len - 1] == '.')
        len--;                  /* "web1.qvm." is "web1.qvm", rooted */
    if (len == 0 || len > QVM_HOSTS_NAME_MAX)
        return false;
    q->name = name;
    q->name_len = len;
    return true;
}

static void note_error(struct qvm_hosts_result *r, int err)
{
    if (!r->error)
        r->error = err;
}

/* Next token of a line whose blanks were turned into NULs, or NULL. */
static char *next_token(char **cursor, const char *end)
{
    char *p = *cursor;
    while (p < end && *p == '\0')
        p++;
    if (p >= end)
        return NULL;
    *cursor = p + strlen(p);
    return p;
}

static bool precedes(const char *key_a, unsigned line_a, const char *key_b, unsigned line_b)
{
    int c = strcmp(key_a, key_b);
    return c < 0 || (c == 0 && line_a < line_b);
}

/* Records a matching line: its address in (network, line) order, once; its
 * names if it is now the first match. NAMES/NAMES_LEN: the line's names,
 * each NUL-ended. */
static void add_match(struct qvm_hosts_result *r, const uint8_t addr[4], const char *key,
                      unsigned line, const char *names, size_t names_len, size_t n_names)
{
    for (size_t i = 0; i < r->n_addrs; i++) {
        if (memcmp(r->addrs[i], addr, 4) != 0)
            continue;
        if (!precedes(key, line, r->keys[i], r->lines[i]))
            return;             /* the same address, already listed earlier */
        memmove(&r->addrs[i], &r->addrs[i + 1], (r->n_addrs - i - 1) * sizeof r->addrs[0]);
        memmove(&r->keys[i], &r->keys[i + 1], (r->n_addrs - i - 1) * sizeof r->keys[0]);
        memmove(&r->lines[i], &r->lines[i + 1], (r->n_addrs - i - 1) * sizeof r->lines[0]);
        r->n_addrs--;
        break;
    }

    size_t pos = 0;
    while (pos < r->n_addrs && precedes(r->keys[pos], r->lines[pos], key, line))
        pos++;
    if (pos == QVM_HOSTS_ADDRS_MAX)
        return;
    size_t move = r->n_addrs - pos - (r->n_addrs == QVM_HOSTS_ADDRS_MAX ? 1 : 0);
    memmove(&r->addrs[pos + 1], &r->addrs[pos], move * sizeof r->addrs[0]);
    memmove(&r->keys[pos + 1], &r->keys[pos], move * sizeof r->keys[0]);
    memmove(&r->lines[pos + 1], &r->lines[pos], move * sizeof r->lines[0]);
    memcpy(r->addrs[pos], addr, 4);
    memcpy(r->keys[pos], key, QVM_HOSTS_KEY_MAX + 1);
    r->lines[pos] = line;
    if (r->n_addrs < QVM_HOSTS_ADDRS_MAX)
        r->n_addrs++;

    if (pos == 0) {
        memcpy(r->names, names, names_len);
        r->names_len = names_len;
        r->n_names = n_names;
    }
}

/* LINE: NUL-ended, no newline, no NUL inside; changed in place. */
static void parse_line(char *line, const char *key, unsigned lineno,
                       const struct qvm_hosts_query *q, struct qvm_hosts_result *r)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    size_t len = strlen(line);
    for (size_t i = 0; i < len; i++)
        if (is_blank(line[i]))
            line[i] = '\0';
    const char *end = line + len;

    char *cursor = line;
    const char *addr_text = next_token(&cursor, end);
    uint8_t addr[4];
    if (!addr_text || inet_pton(AF_INET, addr_text, addr) != 1)
        return;                 /* blank, comment, IPv6 or garbage */

    /* Names: pack them to the front of what is left, NUL-separated. */
    char names[QVM_HOSTS_LINE_MAX + 1];
    size_t names_len = 0, n_names = 0;
    bool match = q->name == NULL && memcmp(addr, q->addr, 4) == 0;
    const char *tok;
    while ((tok = next_token(&cursor, end))) {
        if (!name_token_valid(tok))
            return;
        size_t n = strlen(tok) + 1;
        memcpy(names + names_len, tok, n);
        names_len += n;
        n_names++;
        if (q->name && name_equal(q->name, q->name_len, tok))
            match = true;
    }
    if (n_names == 0 || !match)
        return;
    add_match(r, addr, key, lineno, names, names_len, n_names);
}

/* Returns 0 or the errno that kept the file from being read (as a whole:
 * lines before a read error may have matched). */
static int scan_file(int fd, const char *key, const struct qvm_hosts_query *q,
                     struct qvm_hosts_result *r)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return errno;
    if (!S_ISREG(st.st_mode))
        return S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    if (st.st_size > QVM_HOSTS_FILE_MAX)
        return EFBIG;

    char chunk[4096];
    char line[QVM_HOSTS_LINE_MAX + 1];
    size_t used = 0, total = 0;
    bool skip = false;          /* too long, or a NUL inside */
    unsigned lineno = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            break;
        total += (size_t)n;
        if (total > QVM_HOSTS_FILE_MAX)
            return EFBIG;       /* grew after fstat */
        for (ssize_t i = 0; i < n; i++) {
            char c = chunk[i];
            if (c == '\n') {
                lineno++;
                if (!skip) {
                    line[used] = '\0';
                    parse_line(line, key, lineno, q, r);
                }
                used = 0;
                skip = false;
            } else if (c == '\0' || used == QVM_HOSTS_LINE_MAX) {
                skip = true;
            } else if (!skip) {
                line[used++] = c;
            }
        }
    }
    if (used > 0 && !skip) {    /* a last line without its newline */
        line[used] = '\0';
        parse_line(line, key, lineno + 1, q, r);
    }
    return 0;
}

static int open_networks_dir(void)
{
    /* secure_getenv: a setuid program must not be pointed at another tree. */
    const char *root = secure_getenv("QVM_ROOT");
    if (!root || !*root)
        return open("/" NETWORKS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return -1;
    int fd = openat(rootfd, NETWORKS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int saved = errno;
    close(rootfd);
    errno = saved;
    return fd;
}

void qvm_hosts_lookup(const struct qvm_hosts_query *q, struct qvm_hosts_result *r)
{
    memset(r, 0, sizeof *r);
    int netfd = open_networks_dir();
    if (netfd < 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            note_error(r, errno);   /* no networks at all is not an error */
        return;
    }
    DIR *dir = fdopendir(netfd);
    if (!dir) {
        note_error(r, errno);
        close(netfd);
        return;
    }

    unsigned networks = 0;
    while (networks < QVM_HOSTS_NETS_MAX) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (!de) {
            if (errno)
                note_error(r, errno);
            break;
        }
        /* Dot entries: ".", "..", and anything half-made (".tmp-*"). */
        if (de->d_name[0] == '.')
            continue;
        if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN && de->d_type != DT_LNK)
            continue;
        networks++;

        char rel[NAME_MAX + sizeof "/hosts"];
        snprintf(rel, sizeof rel, "%s/hosts", de->d_name);
        /* O_NONBLOCK: a FIFO planted as "hosts" must not hang the lookup.
         * O_NOFOLLOW: qvm renames a regular file into place; a symlink there
         * is not qvm's and must not make root's lookups read other files. */
        int fd = openat(dirfd(dir), rel,
                        O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
        if (fd < 0) {
            if (errno != ENOENT && errno != ENOTDIR)
                note_error(r, errno);   /* a network without hosts yet is fine */
            continue;
        }
        /* Only for ordering: a longer network name is cut, not refused. */
        char key[QVM_HOSTS_KEY_MAX + 1] = "";
        memcpy(key, de->d_name, strnlen(de->d_name, QVM_HOSTS_KEY_MAX));
        int err = scan_file(fd, key, q, r);
        if (err)
            note_error(r, err);
        close(fd);
    }
    closedir(dir);
}
