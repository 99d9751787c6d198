/* rewrite.c - changing one value of a qvm file the way a person would: in
 * place, leaving every other byte (comments, layout, the cloud-init
 * documents) as written. `qvm edit --set`, `qvm resize` and `qvm autostart`
 * record their changes in the VM's stored qvm file this way, so the file
 * stays the truth a person reads and edits. */

#include "spec_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"

#define MAX_KEY_PARTS 8
#define MAX_VALUE 255

/* libyaml marks count characters from after a BOM; the byte offset of
 * character IDX. The input is valid UTF-8 (libyaml read all of it). */
static size_t byte_of(const struct spec_ctx *c, size_t idx)
{
    size_t off = c->base;
    for (size_t i = 0; i < idx && off < c->len; i++) {
        off++;
        while (off < c->len && ((unsigned char)c->data[off] & 0xC0) == 0x80)
            off++;
    }
    return off;
}

static void ctx_init(struct spec_ctx *c, const char *file, const char *data, size_t len,
                     struct qvm_error *err)
{
    memset(c, 0, sizeof *c);
    c->file = file ? file : "<input>";
    c->data = data ? data : "";
    c->len = data ? len : 0;
    c->err = err;
    const unsigned char *u = (const unsigned char *)c->data;
    if (c->len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF)
        c->base = 3;
    c->cursor_off = c->base;
}

/* The kind a document's qvm key names ("vm", "user-data", ...), or NULL. */
static const char *doc_kind(const struct spec_doc *d)
{
    const struct spec_node *root = d->root;
    if (!root || root->kind != SPEC_MAP)
        return NULL;
    for (size_t k = 0; k + 1 < root->nkids; k += 2) {
        const struct spec_node *key = root->kids[k], *val = root->kids[k + 1];
        if (key->kind == SPEC_SCALAR && strcmp(key->value, "qvm") == 0 &&
            val->kind == SPEC_SCALAR)
            return strcmp(val->value, "metadata") == 0 ? "meta-data" : val->value;
    }
    return NULL;
}

static const struct spec_node *map_get(const struct spec_node *map, const char *key,
                                       const struct spec_node **ret_key)
{
    for (size_t k = 0; k + 1 < map->nkids; k += 2) {
        const struct spec_node *kn = map->kids[k];
        if (kn->kind == SPEC_SCALAR && kn->len == strlen(key) && strcmp(kn->value, key) == 0) {
            if (ret_key)
                *ret_key = kn;
            return map->kids[k + 1];
        }
    }
    return NULL;
}

static bool key_valid(const char *key, char parts[MAX_KEY_PARTS][64], size_t *ret_n)
{
    size_t n = 0;
    for (const char *p = key;;) {
        size_t l = strcspn(p, ".");
        if (l == 0 || l >= 64 || n == MAX_KEY_PARTS)
            return false;
        memcpy(parts[n], p, l);
        parts[n][l] = '\0';
        if (strspn(parts[n], "abcdefghijklmnopqrstuvwxyz0123456789-") != l)
            return false;
        n++;
        if (!p[l])
            break;
        p += l + 1;
    }
    *ret_n = n;
    return strcmp(parts[0], "qvm") != 0;
}

static bool value_valid(const char *v)
{
    size_t n = strlen(v);
    return n > 0 && n <= MAX_VALUE && v[0] != '-' && v[n - 1] != ':' &&
           strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/@+-") == n;
}

/* Start of the line holding byte POS. */
static size_t line_start(const struct spec_ctx *c, size_t pos)
{
    while (pos > c->base && c->data[pos - 1] != '\n' && c->data[pos - 1] != '\r')
        pos--;
    return pos;
}

/* Where a new line of a block mapping goes: the start of the line after
 * its last value (block collections end at the next token, which may be
 * the start of a line, or indented on it). *ret_newline: a line break must
 * come first (the file ends without one). */
static size_t block_insert_at(const struct spec_ctx *c, const struct spec_node *last,
                              bool *ret_newline)
{
    size_t pos = byte_of(c, last->end.index), ls = line_start(c, pos);
    *ret_newline = false;
    bool blank = true;
    for (size_t i = ls; i < pos; i++)
        blank = blank && (c->data[i] == ' ' || c->data[i] == '\t');
    if (blank)
        return ls;
    while (pos < c->len && c->data[pos] != '\n' && c->data[pos] != '\r')
        pos++;
    if (pos == c->len) {
        *ret_newline = true;
        return pos;
    }
    if (c->data[pos] == '\r' && pos + 1 < c->len && c->data[pos + 1] == '\n')
        pos++;
    return pos + 1;
}

int qvm_spec_set_key(const char *filename, const char *data, size_t len, const char *key,
                     const char *value, char **ret, size_t *ret_len, struct qvm_error *err)
{
    char parts[MAX_KEY_PARTS][64];
    size_t nparts = 0;
    if (!key_valid(key, parts, &nparts))
        return qvm_err(err, EINVAL, "invalid key '%s': expected a key of the vm document "
                       "such as memory, vcpus, disk.size or network.ssh-port", key);
    if (!value_valid(value))
        return qvm_err(err, EINVAL, "invalid value '%s' for %s: --set takes a plain value "
                       "(letters, digits and . _ : / @ + -); write anything else with qvm edit",
                       value, key);
    if (len > QVM_SPEC_MAX_FILE)
        return qvm_err(err, EFBIG, "%s: too large (%zu bytes, limit %u)", filename, len,
                       QVM_SPEC_MAX_FILE);
    struct spec_ctx c;
    ctx_init(&c, filename, data, len, err);
    int r = spec_build_tree(&c);
    const struct spec_node *map = NULL;
    for (size_t i = 0; r == 0 && i < c.ndocs && !map; i++) {
        const char *kind = doc_kind(&c.docs[i]);
        if (kind && strcmp(kind, "vm") == 0)
            map = c.docs[i].root;
    }
    if (r == 0 && !map)
        r = spec_err(&c, NULL, NULL, "no vm document (a mapping with qvm: vm) to set %s in", key);
    const char *nl = c.len && memmem(c.data, c.len, "\r\n", 2) ? "\r\n" : "\n";
    struct strbuf out = STRBUF_INIT;
    size_t at = 0, cut = 0;        /* replace bytes [at, cut) with out */
    for (size_t i = 0; r == 0 && i < nparts; i++) {
        const struct spec_node *kn = NULL, *val = map_get(map, parts[i], &kn);
        char path[160] = "vm";
        for (size_t j = 0; j <= i; j++)
            snprintf(path + strlen(path), sizeof path - strlen(path), ".%s", parts[j]);
        if (!val) {
            /* Missing from here down: KEY: {SUB: {...: VALUE}} is valid in
             * block and flow mappings alike. */
            struct strbuf text = STRBUF_INIT;
            strbuf_addf(&text, "%s: ", parts[i]);
            for (size_t j = i + 1; j < nparts; j++)
                strbuf_addf(&text, "{%s: ", parts[j]);
            strbuf_addstr(&text, value);
            for (size_t j = i + 1; j < nparts; j++)
                strbuf_addch(&text, '}');
            if (map->flow) {
                at = cut = byte_of(&c, map->end.index);
                if (at == 0 || c.data[at - 1] != '}') {
                    r = spec_err(&c, &map->start, path, "cannot add the key to this mapping; "
                                 "use qvm edit");
                } else {
                    at = cut = at - 1;
                    strbuf_addf(&out, "%s%s", map->nkids ? ", " : "", text.buf);
                }
            } else {
                bool newline;
                at = cut = block_insert_at(&c, map->kids[map->nkids - 1], &newline);
                if (newline)
                    strbuf_addstr(&out, nl);
                for (size_t k = 0; k < map->kids[0]->start.column; k++)
                    strbuf_addch(&out, ' ');
                strbuf_addf(&out, "%s%s", text.buf, nl);
            }
            strbuf_release(&text);
            break;
        }
        if (i + 1 < nparts) {
            if (val->kind != SPEC_MAP) {
                char buf[80];
                r = spec_err(&c, &val->start, path, "is %s, not a mapping, so it has no key '%s'; "
                             "set %s itself, or use qvm edit", spec_describe(val, buf, sizeof buf),
                             parts[i + 1], path + 3);
            }
            map = val;
            continue;
        }
        if (val->kind != SPEC_SCALAR || val->style == YAML_LITERAL_SCALAR_STYLE ||
            val->style == YAML_FOLDED_SCALAR_STYLE) {
            char buf[80];
            r = spec_err(&c, &val->start, path, "is %s; --set replaces single values only "
                         "(set the keys inside it, or use qvm edit)",
                         val->kind == SPEC_SCALAR ? "a block scalar" : spec_describe(val, buf, sizeof buf));
        } else if (val->len == 0 && val->style == YAML_PLAIN_SCALAR_STYLE) {
            /* "key:" with nothing after it: the empty scalar's marks are
             * those of the next token, so the value goes after the ':'. */
            at = byte_of(&c, kn->end.index);
            while (at < c.len && (c.data[at] == ' ' || c.data[at] == '\t'))
                at++;
            if (at >= c.len || c.data[at] != ':')
                r = spec_err(&c, &kn->start, path, "cannot find the ':' after the key; use qvm edit");
            cut = ++at;
            strbuf_addf(&out, " %s", value);
        } else {
            at = byte_of(&c, val->start.index);
            cut = byte_of(&c, val->end.index);
            strbuf_addstr(&out, value);
        }
    }
    if (r == 0) {
        struct strbuf res = STRBUF_INIT;
        strbuf_add(&res, c.data, at);
        strbuf_add(&res, out.buf, out.len);
        strbuf_add(&res, c.data + cut, c.len - cut);
        *ret = strbuf_detach(&res, ret_len);
    }
    strbuf_release(&out);
    spec_ctx_free(&c);
    return r;
}

/* The bytes of each cloud-init document of a qvm file, by kind. */
struct ci_docs {
    const char *text[3];
    size_t len[3];
};

static const char *const ci_kinds[3] = { "user-data", "meta-data", "network-config" };

static int ci_docs_of(const char *data, size_t len, struct ci_docs *ret, struct qvm_error *err)
{
    struct spec_ctx c;
    ctx_init(&c, "<qvm file>", data, len, err);
    memset(ret, 0, sizeof *ret);
    int r = spec_build_tree(&c);
    for (size_t i = 0; r == 0 && i < c.ndocs; i++) {
        const char *kind = doc_kind(&c.docs[i]);
        for (size_t k = 0; kind && k < 3; k++) {
            if (strcmp(kind, ci_kinds[k]) != 0)
                continue;
            size_t from = byte_of(&c, c.docs[i].root->start.index);
            size_t to = byte_of(&c, c.docs[i].root->end.index);
            ret->text[k] = c.data + from;
            ret->len[k] = to > from ? to - from : 0;
        }
    }
    spec_ctx_free(&c);
    return r;
}

int qvm_spec_same_cloud_init(const char *a, size_t alen, const char *b, size_t blen,
                             bool *ret_same, const char **ret_kind, struct qvm_error *err)
{
    struct ci_docs da, db;
    int r = ci_docs_of(a, alen, &da, err);
    if (r == 0)
        r = ci_docs_of(b, blen, &db, err);
    if (r < 0)
        return r;
    *ret_same = true;
    for (size_t k = 0; k < 3 && *ret_same; k++) {
        bool same = da.len[k] == db.len[k] && (!!da.text[k] == !!db.text[k]) &&
                    (!da.len[k] || memcmp(da.text[k], db.text[k], da.len[k]) == 0);
        if (!same) {
            *ret_same = false;
            if (ret_kind)
                *ret_kind = ci_kinds[k];
        }
    }
    return 0;
}
