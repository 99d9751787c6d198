/* parse.c - the qvm file: a YAML stream of tagged documents -> struct qvm_vm_spec.
 *
 * Owns reading YAML (libyaml events into a small node tree that keeps marks),
 * the document rules of seed 000 sections 3.1.2 and 7.2.2, the vm document
 * (virt-install's vocabulary), and cutting the cloud-init documents out of
 * the original bytes. Touches nothing on the host but getrandom().
 *
 * Sections: errors; the node tree; scalar readers; the vm document; the
 * documents; cutting a document out of the text; entry points.
 *
 * Why a tree of our own rather than yaml_document_t: we need the marks of
 * every node, the document boundaries and the anchors as written (never
 * expanded), and a hard cap on nodes before anything grows. */

#include "spec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <yaml.h>

#include "util/fsutil.h"
#include "util/names.h"
#include "util/strbuf.h"

#define SPEC_MAX_DOCS 16
#define SPEC_MAX_SCALAR (64u * 1024)
#define SPEC_MAX_NODES (1u << 17)   /* ample for any cloud-config; caps the tree near 20 MiB */

enum spec_kind { SPEC_SCALAR, SPEC_MAP, SPEC_SEQ, SPEC_ALIAS };

struct spec_node {
    enum spec_kind kind;
    yaml_mark_t start, end;
    char *anchor;               /* anchor set on the node; for an alias, its target */
    char *tag;
    char *value;                /* scalar bytes, NUL-terminated (may hold NULs: use len) */
    size_t len;
    yaml_scalar_style_t style;
    int plain_implicit, quoted_implicit;
    int implicit;               /* a container's tag was implicit */
    bool flow;                  /* a flow container: {..} or [..] */
    struct spec_node **kids;    /* sequence items, or key, value, key, value, ... */
    size_t nkids, cap;
};

struct spec_doc {
    yaml_mark_t start_mark;     /* the DOCUMENT-START event */
    yaml_mark_t start_end;      /* just after '---' when explicit */
    bool start_implicit;
    yaml_mark_t end_start;      /* at '...' when explicit, else at the next token */
    yaml_mark_t end_end;
    bool end_implicit;
    bool tag_directives;
    struct spec_node *root;
};

struct spec_ctx {
    const char *file;
    const char *data;
    size_t len;
    size_t base;                /* bytes of a leading UTF-8 BOM (marks do not count it) */
    size_t cursor_idx, cursor_off;
    struct spec_doc docs[SPEC_MAX_DOCS];
    size_t ndocs;
    struct spec_node **all;     /* every node, for freeing */
    size_t nall, allcap;
    struct qvm_error *err;
    /* vm document state */
    const struct spec_node *accel_node, *virt_type_node, *ssh_port_node;
    const struct spec_node *cur_key;    /* the key whose value a handler is reading */
};

static int spec_err(struct spec_ctx *c, const yaml_mark_t *m, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool spec_is_null(const struct spec_node *n);

/* ---- errors ---------------------------------------------------------------- */

static int spec_err(struct spec_ctx *c, const yaml_mark_t *m, const char *path, const char *fmt, ...)
{
    char msg[QVM_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t line = m ? m->line + 1 : 1, col = m ? m->column + 1 : 1;
    if (path)
        return qvm_err(c->err, EINVAL, "%s:%zu:%zu: key '%s': %s", c->file, line, col, path, msg);
    return qvm_err(c->err, EINVAL, "%s:%zu:%zu: %s", c->file, line, col, msg);
}

static void spec_clean(const char *s, size_t len, char *buf, size_t size)
{
    size_t max = size > 4 ? size - 4 : 0, o = 0;
    for (size_t i = 0; i < len && o < size - 1; i++) {
        if (o == max && i + 1 < len) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char ch = (unsigned char)s[i];
        buf[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    buf[o] = '\0';
}

static const char *spec_describe(const struct spec_node *n, char *buf, size_t size)
{
    switch (n->kind) {
    case SPEC_MAP:
        return "a mapping";
    case SPEC_SEQ:
        return "a list";
    case SPEC_ALIAS:
        return "an alias";
    case SPEC_SCALAR:
        break;
    }
    if (spec_is_null(n))
        return "nothing (null)";
    char clean[48];
    spec_clean(n->value, n->len, clean, sizeof clean);
    snprintf(buf, size, "%s'%s'",
             n->style == YAML_PLAIN_SCALAR_STYLE ? "" : "the quoted string ", clean);
    return buf;
}

static bool spec_is_null(const struct spec_node *n)
{
    if (n->kind != SPEC_SCALAR || n->style != YAML_PLAIN_SCALAR_STYLE || n->tag)
        return false;
    return n->len == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
           strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0;
}

/* ---- the node tree ------------------------------------------------------------ */

static char *dup_opt(const yaml_char_t *s)
{
    return s ? xstrdup((const char *)s) : NULL;
}

static struct spec_node *node_new(struct spec_ctx *c, enum spec_kind kind, const yaml_event_t *ev)
{
    struct spec_node *n = xcalloc(1, sizeof *n);
    n->kind = kind;
    n->start = ev->start_mark;
    n->end = ev->end_mark;
    if (c->nall == c->allcap) {
        c->allcap = c->allcap ? c->allcap * 2 : 64;
        c->all = xrealloc(c->all, c->allcap * sizeof *c->all);
    }
    c->all[c->nall++] = n;
    return n;
}

static void node_add(struct spec_node *parent, struct spec_node *kid)
{
    if (parent->nkids == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 4;
        parent->kids = xrealloc(parent->kids, parent->cap * sizeof *parent->kids);
    }
    parent->kids[parent->nkids++] = kid;
}

/* Line and column (0-based, in characters) of byte OFF, for reader errors,
 * which libyaml reports as a byte offset only. */
static void pos_of_offset(const struct spec_ctx *c, size_t off, yaml_mark_t *m)
{
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < off && i < c->len; i++) {
        unsigned char ch = (unsigned char)c->data[i];
        if (ch == '\n' || (ch == '\r' && (i + 1 >= c->len || c->data[i + 1] != '\n'))) {
            m->line++;
            m->column = 0;
        } else if ((ch & 0xC0) != 0x80 && ch != '\r') {
            m->column++;
        }
    }
}

static int syntax_error(struct spec_ctx *c, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return qvm_err(c->err, ENOMEM, "%s: out of memory while reading YAML", c->file);
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_READER_ERROR) {
        yaml_mark_t m;
        pos_of_offset(c, p->problem_offset, &m);
        if (p->problem_value != -1)
            return spec_err(c, &m, NULL, "YAML syntax error: %s (byte #%X at offset %zu)", problem,
                            (unsigned)p->problem_value, p->problem_offset);
        return spec_err(c, &m, NULL, "YAML syntax error: %s", problem);
    }
    if (p->context)
        return spec_err(c, &p->problem_mark, NULL, "YAML syntax error: %s (%s at line %zu, column %zu)",
                        problem, p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    return spec_err(c, &p->problem_mark, NULL, "YAML syntax error: %s", problem);
}

/* Reads the whole stream into c->docs, enforcing every limit before the
 * structure grows past it. */
static int build_tree(struct spec_ctx *c)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return qvm_err(c->err, ENOMEM, "%s: cannot initialise the YAML parser", c->file);
    yaml_parser_set_input_string(&p, (const unsigned char *)c->data, c->len);

    struct spec_node *stack[QVM_SPEC_MAX_DEPTH];
    size_t depth = 0;
    struct spec_doc *doc = NULL;
    int r = 0;
    for (bool done = false; !done && r == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            r = syntax_error(c, &p);
            break;
        }
        struct spec_node *n = NULL;
        bool container = false;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (c->ndocs == SPEC_MAX_DOCS) {
                r = spec_err(c, &ev.start_mark, NULL, "too many documents (a qvm file holds at most %d)",
                             SPEC_MAX_DOCS);
                break;
            }
            doc = &c->docs[c->ndocs++];
            doc->start_mark = ev.start_mark;
            doc->start_end = ev.end_mark;
            doc->start_implicit = ev.data.document_start.implicit;
            doc->tag_directives = ev.data.document_start.tag_directives.start !=
                                  ev.data.document_start.tag_directives.end;
            break;
        case YAML_DOCUMENT_END_EVENT:
            doc->end_start = ev.start_mark;
            doc->end_end = ev.end_mark;
            doc->end_implicit = ev.data.document_end.implicit;
            break;
        case YAML_ALIAS_EVENT:
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (c->nall >= SPEC_MAX_NODES) {
                r = spec_err(c, &ev.start_mark, NULL, "too many YAML nodes (limit %u)", SPEC_MAX_NODES);
                break;
            }
            if (ev.type == YAML_ALIAS_EVENT) {
                n = node_new(c, SPEC_ALIAS, &ev);
                n->anchor = dup_opt(ev.data.alias.anchor);
            } else if (ev.type == YAML_SCALAR_EVENT) {
                if (ev.data.scalar.length > SPEC_MAX_SCALAR) {
                    r = spec_err(c, &ev.start_mark, NULL, "scalar of %zu bytes is longer than the %u byte limit",
                                 ev.data.scalar.length, SPEC_MAX_SCALAR);
                    break;
                }
                n = node_new(c, SPEC_SCALAR, &ev);
                n->anchor = dup_opt(ev.data.scalar.anchor);
                n->tag = dup_opt(ev.data.scalar.tag);
                n->len = ev.data.scalar.length;
                n->value = xmalloc(n->len + 1);
                memcpy(n->value, ev.data.scalar.value, n->len);
                n->value[n->len] = '\0';
                n->style = ev.data.scalar.style;
                n->plain_implicit = ev.data.scalar.plain_implicit;
                n->quoted_implicit = ev.data.scalar.quoted_implicit;
            } else {
                if (depth == QVM_SPEC_MAX_DEPTH) {
                    r = spec_err(c, &ev.start_mark, NULL, "YAML nested deeper than %d levels",
                                 QVM_SPEC_MAX_DEPTH);
                    break;
                }
                bool map = ev.type == YAML_MAPPING_START_EVENT;
                n = node_new(c, map ? SPEC_MAP : SPEC_SEQ, &ev);
                n->anchor = dup_opt(map ? ev.data.mapping_start.anchor : ev.data.sequence_start.anchor);
                n->tag = dup_opt(map ? ev.data.mapping_start.tag : ev.data.sequence_start.tag);
                n->implicit = map ? ev.data.mapping_start.implicit : ev.data.sequence_start.implicit;
                n->flow = map ? ev.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE
                              : ev.data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE;
                container = true;
            }
            if (depth == 0)
                doc->root = n;
            else
                node_add(stack[depth - 1], n);
            if (container)
                stack[depth++] = n;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            stack[--depth]->end = ev.end_mark;
            break;
        case YAML_STREAM_START_EVENT:
        case YAML_NO_EVENT:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return r;
}

static void ctx_free(struct spec_ctx *c)
{
    for (size_t i = 0; i < c->nall; i++) {
        struct spec_node *n = c->all[i];
        free(n->anchor);
        free(n->tag);
        free(n->value);
        free(n->kids);
        free(n);
    }
    free(c->all);
}

/* ---- scalar readers ------------------------------------------------------------ */

#define INT_TAG "tag:yaml.org,2002:int"
#define FLOAT_TAG "tag:yaml.org,2002:float"

/* Any non-null scalar, as written; quoted or not. No NUL bytes. */
static int spec_get_str(struct spec_ctx *c, const struct spec_node *n, const char *path,
                        const char **ret)
{
    char buf[80];
    if (n->kind != SPEC_SCALAR || spec_is_null(n))
        return spec_err(c, &n->start, path, "expected a string, got %s", spec_describe(n, buf, sizeof buf));
    if (strlen(n->value) != n->len)
        return spec_err(c, &n->start, path, "the value contains a NUL byte");
    *ret = n->value;
    return 0;
}

static bool is_plain_number(const struct spec_node *n, const char *tag)
{
    return n->kind == SPEC_SCALAR && n->style == YAML_PLAIN_SCALAR_STYLE &&
           (!n->tag || strcmp(n->tag, tag) == 0);
}

static int type_error(struct spec_ctx *c, const struct spec_node *n, const char *path, const char *want)
{
    char buf[80];
    bool quoted = n->kind == SPEC_SCALAR && n->style != YAML_PLAIN_SCALAR_STYLE;
    return spec_err(c, &n->start, path, "expected %s, got %s%s", want, spec_describe(n, buf, sizeof buf),
                    quoted ? " (write numbers and booleans without quotes)" : "");
}

/* A plain decimal integer: YAML 1.1 reads a leading 0 as octal and 1:30 as
 * sexagesimal, so only [1-9][0-9]* and 0 are accepted. */
static int get_uint(struct spec_ctx *c, const struct spec_node *n, const char *path, const char *want,
                    uint64_t min, uint64_t max, uint64_t *ret)
{
    if (!is_plain_number(n, INT_TAG) || n->len == 0 || n->len > 19 ||
        strspn(n->value, "0123456789") != n->len)
        return type_error(c, n, path, want);
    if (n->value[0] == '0' && n->len > 1)
        return spec_err(c, &n->start, path, "'%s': leading zeros are not allowed (YAML 1.1 reads them as octal)",
                        n->value);
    uint64_t v = strtoull(n->value, NULL, 10);
    if (v < min || v > max)
        return spec_err(c, &n->start, path, "%s is out of range (%llu to %llu)", n->value,
                        (unsigned long long)min, (unsigned long long)max);
    *ret = v;
    return 0;
}

static int get_bool(struct spec_ctx *c, const struct spec_node *n, const char *path, bool *ret)
{
    static const char *const yes[] = { "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON" };
    static const char *const no[] = { "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF" };
    if (is_plain_number(n, "tag:yaml.org,2002:bool"))
        for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
            if (strcmp(n->value, yes[i]) == 0) {
                *ret = true;
                return 0;
            }
            if (strcmp(n->value, no[i]) == 0) {
                *ret = false;
                return 0;
            }
        }
    return type_error(c, n, path, "a boolean (true, false, yes or no)");
}

/* One of CHOICES (NULL-terminated); *ret_idx is its index. */
static int get_choice(struct spec_ctx *c, const struct spec_node *n, const char *path,
                      const char *const *choices, size_t *ret_idx)
{
    const char *v;
    char list[256] = "";
    for (size_t i = 0; choices[i]; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", choices[i]);
    }
    if (n->kind != SPEC_SCALAR || spec_is_null(n)) {
        char buf[80];
        return spec_err(c, &n->start, path, "expected one of %s, got %s", list, spec_describe(n, buf, sizeof buf));
    }
    int r = spec_get_str(c, n, path, &v);
    if (r < 0)
        return r;
    for (size_t i = 0; choices[i]; i++)
        if (strcmp(v, choices[i]) == 0) {
            *ret_idx = i;
            return 0;
        }
    char clean[48];
    spec_clean(n->value, n->len, clean, sizeof clean);
    return spec_err(c, &n->start, path, "'%s' is not supported (expected one of %s)", clean, list);
}

/* ---- the vm document ------------------------------------------------------------ */

typedef int (*key_fn)(struct spec_ctx *c, const struct spec_node *val, const char *path,
                      struct qvm_vm_spec *s);

struct key_handler {
    const char *name;
    key_fn fn;
};

/* Prefix the message of a util/ check with the location. */
static int located(struct spec_ctx *c, const struct spec_node *n, const char *path, struct qvm_error *e)
{
    return spec_err(c, &n->start, path, "%s", e->msg);
}

static void set_str(char **field, const char *v)
{
    free(*field);
    *field = xstrdup(v);
}

/* Walks mapping MAP with handlers TAB (NULL-terminated). Keys not in TAB go
 * to OTHER, or are errors naming them. Bit i of *ret_seen says TAB[i] was
 * there. Duplicate keys are errors; since every key must be known, the
 * duplicate check never sees more than a few dozen keys. */
static int walk_map(struct spec_ctx *c, const struct spec_node *map, const char *path,
                    const struct key_handler *tab, key_fn other, struct qvm_vm_spec *s, uint64_t *ret_seen)
{
    char buf[80];
    uint64_t seen = 0;
    if (map->kind != SPEC_MAP)
        return spec_err(c, &map->start, path, "expected a mapping, got %s", spec_describe(map, buf, sizeof buf));
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const struct spec_node *key = map->kids[i], *val = map->kids[i + 1];
        if (key->kind != SPEC_SCALAR || spec_is_null(key) || strlen(key->value) != key->len)
            return spec_err(c, &key->start, path, "keys must be strings, got %s", spec_describe(key, buf, sizeof buf));
        char clean[48], sub[160];
        spec_clean(key->value, key->len, clean, sizeof clean);
        snprintf(sub, sizeof sub, "%s.%s", path, clean);
        for (size_t j = 0; j < i; j += 2)
            if (strcmp(map->kids[j]->value, key->value) == 0)
                return spec_err(c, &key->start, sub, "duplicate key (the first is at line %zu)",
                                map->kids[j]->start.line + 1);
        size_t t = 0;
        while (tab[t].name && strcmp(tab[t].name, key->value) != 0)
            t++;
        int r;
        c->cur_key = key;
        if (tab[t].name) {
            seen |= UINT64_C(1) << t;
            r = tab[t].fn(c, val, sub, s);
        } else if (other) {
            r = other(c, val, sub, s);
        } else {
            char list[512] = "", hint[96] = "";
            for (size_t k = 0; tab[k].name; k++) {
                if (strcmp(tab[k].name, "qvm") == 0)
                    continue;
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", l ? ", " : "", tab[k].name);
                /* os_variant for os-variant, and the like */
                char alt[48];
                snprintf(alt, sizeof alt, "%s", clean);
                for (char *p = alt; *p; p++)
                    if (*p == '_')
                        *p = '-';
                if (strcmp(alt, clean) != 0 && strcmp(alt, tab[k].name) == 0)
                    snprintf(hint, sizeof hint, "did you mean '%s'? ", tab[k].name);
            }
            return spec_err(c, &key->start, sub, "unsupported option '%s' (%sqvm supports: %s)", clean, hint,
                            list);
        }
        if (r < 0)
            return r;
    }
    if (ret_seen)
        *ret_seen = seen;
    return 0;
}

static int missing(struct spec_ctx *c, const struct spec_node *map, const char *path, const char *key)
{
    return spec_err(c, &map->start, path, "missing key '%s'", key);
}

static int h_ignore(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    return 0;
}

static int h_name(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    const char *v;
    struct qvm_error e = { 0 };
    int r = spec_get_str(c, val, path, &v);
    if (r < 0)
        return r;
    if (qvm_name_check("VM", v, &e) < 0)
        return located(c, val, path, &e);
    set_str(&s->name, v);
    return 0;
}

static int h_memory_mib(struct spec_ctx *c, const struct spec_node *val, const char *path,
                        struct qvm_vm_spec *s)
{
    return get_uint(c, val, path, "an integer (MiB)", 64, 1048576, &s->memory_mib);
}

static int h_memory(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const struct key_handler tab[] = { { "memory", h_memory_mib }, { NULL, NULL } };
    uint64_t seen;
    if (val->kind != SPEC_MAP)
        return h_memory_mib(c, val, path, s);
    int r = walk_map(c, val, path, tab, NULL, s, &seen);
    return r < 0 ? r : !(seen & 1) ? missing(c, val, path, "memory") : 0;
}

static int h_vcpus_n(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    uint64_t v;
    int r = get_uint(c, val, path, "an integer", 1, 256, &v);
    if (r == 0)
        s->vcpus = (unsigned)v;
    return r;
}

static int h_vcpus(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const struct key_handler tab[] = { { "vcpus", h_vcpus_n }, { NULL, NULL } };
    uint64_t seen;
    if (val->kind != SPEC_MAP)
        return h_vcpus_n(c, val, path, s);
    int r = walk_map(c, val, path, tab, NULL, s, &seen);
    return r < 0 ? r : !(seen & 1) ? missing(c, val, path, "vcpus") : 0;
}

static bool chars_in(const char *v, const char *set, size_t max)
{
    size_t n = strlen(v);
    return n > 0 && n <= max && strspn(v, set) == n;
}

#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

static int h_cpu(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    const char *v;
    int r = spec_get_str(c, val, path, &v);
    if (r < 0)
        return r;
    /* host-passthrough, host, host-model, max, or a QEMU model such as Skylake-Server-v4 */
    if (!chars_in(v, ALNUM "._-", 64))
        return spec_err(c, &val->start, path,
                        "invalid CPU model: expected host-passthrough, host, host-model, max or a QEMU CPU model name");
    set_str(&s->cpu, v);
    return 0;
}

static int set_accel(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s,
                     const char *accel, const struct spec_node *other, const char *other_name)
{
    if (s->accel && strcmp(s->accel, accel) != 0)
        return spec_err(c, &val->start, path, "'%s' conflicts with %s at line %zu", val->value, other_name,
                        other->start.line + 1);
    set_str(&s->accel, accel);
    return 0;
}

static int h_virt_type(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const char *const choices[] = { "kvm", "qemu", NULL };
    size_t i;
    int r = get_choice(c, val, path, choices, &i);
    if (r < 0)
        return r;
    c->virt_type_node = val;
    return set_accel(c, val, path, s, i == 0 ? "kvm" : "tcg", c->accel_node, "accel");
}

static int h_accel(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const char *const choices[] = { "auto", "kvm", "tcg", NULL };
    size_t i;
    int r = get_choice(c, val, path, choices, &i);
    if (r < 0)
        return r;
    c->accel_node = val;
    return set_accel(c, val, path, s, choices[i], c->virt_type_node, "virt-type");
}

static int h_machine(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const char *const choices[] = { "q35", "pc", NULL };
    size_t i;
    int r = get_choice(c, val, path, choices, &i);
    if (r == 0)
        set_str(&s->machine, choices[i]);
    return r;
}

static int h_os_variant(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    const char *v;
    int r = spec_get_str(c, val, path, &v);
    if (r < 0)
        return r;
    if (!chars_in(v, ALNUM "._+-", 64))
        return spec_err(c, &val->start, path, "invalid OS variant: use letters, digits, '.', '_', '+' and '-'");
    set_str(&s->os_variant, v);
    return 0;
}

static int h_import(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    return get_bool(c, val, path, &s->import);
}

static int h_noautoconsole(struct spec_ctx *c, const struct spec_node *val, const char *path,
                           struct qvm_vm_spec *s)
{
    return get_bool(c, val, path, &s->noautoconsole);
}

static int h_boot(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const char *const devs[] = { "hd", "cdrom", "network" };
    const char *v;
    int r = spec_get_str(c, val, path, &v);
    if (r < 0)
        return r;
    bool used[3] = { false };
    for (const char *p = v;;) {
        size_t n = strcspn(p, ","), i = 0;
        while (i < 3 && !(strlen(devs[i]) == n && memcmp(p, devs[i], n) == 0))
            i++;
        char clean[48];
        spec_clean(p, n, clean, sizeof clean);
        if (i == 3)
            return spec_err(c, &val->start, path,
                            "unsupported boot device '%s' (expected a comma-separated list of hd, cdrom, network)",
                            clean);
        if (used[i])
            return spec_err(c, &val->start, path, "boot device '%s' is listed twice", clean);
        used[i] = true;
        if (!p[n])
            break;
        p += n + 1;
    }
    set_str(&s->boot, v);
    return 0;
}

static int h_graphics_type(struct spec_ctx *c, const struct spec_node *val, const char *path,
                           struct qvm_vm_spec *s)
{
    static const char *const choices[] = { "none", "vnc", NULL };
    size_t i = 0;
    int r = get_choice(c, val, path, choices, &i);
    s->graphics = i == 1 ? QVM_GRAPHICS_VNC : QVM_GRAPHICS_NONE;
    return r;
}

static int h_graphics(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const struct key_handler tab[] = { { "type", h_graphics_type }, { NULL, NULL } };
    uint64_t seen;
    if (val->kind != SPEC_MAP)
        return h_graphics_type(c, val, path, s);
    int r = walk_map(c, val, path, tab, NULL, s, &seen);
    return r < 0 ? r : !(seen & 1) ? missing(c, val, path, "type") : 0;
}

/* disk.size: GiB as virt-install, fractions allowed ("0.5"), in bytes
 * rounded up to a whole MiB. Integer arithmetic only. */
static int h_disk_size(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    if (val->kind != SPEC_SCALAR)
        return type_error(c, val, path, "a size in GiB such as 20 or 0.5");
    const char *v = val->value;
    size_t ni = 0, nf = 0;
    if (is_plain_number(val, val->tag && strcmp(val->tag, INT_TAG) == 0 ? INT_TAG : FLOAT_TAG)) {
        ni = strspn(v, "0123456789");
        if (v[ni] == '.')
            nf = strspn(v + ni + 1, "0123456789");
    }
    size_t total = ni + (v[ni] == '.' ? 1 + nf : 0);
    if ((ni == 0 && nf == 0) || total != val->len || ni > 6 || nf > 9)
        return type_error(c, val, path, "a size in GiB such as 20 or 0.5");
    uint64_t whole = ni ? strtoull(v, NULL, 10) : 0, frac = 0, scale = 1;
    for (size_t i = 0; i < nf; i++) {
        frac = frac * 10 + (uint64_t)(v[ni + 1 + i] - '0');
        scale *= 10;
    }
    if ((whole == 0 && frac == 0) || whole > 65536 || (whole == 65536 && frac))
        return spec_err(c, &val->start, path, "%s GiB is out of range (more than 0, at most 65536)", v);
    const uint64_t gib = UINT64_C(1) << 30, mib = UINT64_C(1) << 20;
    uint64_t bytes = whole * gib + (frac * gib + scale - 1) / scale;
    s->disk.size_bytes = (bytes + mib - 1) / mib * mib;
    return 0;
}

static int h_disk_bus(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const char *const choices[] = { "virtio", "scsi", "sata", "ide", NULL };
    size_t i;
    int r = get_choice(c, val, path, choices, &i);
    if (r == 0)
        set_str(&s->disk.bus, choices[i]);
    return r;
}

static int h_disk_cache(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const char *const choices[] = { "none", "writeback", "writethrough", "directsync", "unsafe", NULL };
    size_t i;
    int r = get_choice(c, val, path, choices, &i);
    if (r == 0)
        set_str(&s->disk.cache, choices[i]);
    return r;
}

static int h_disk_pool(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    const char *v;
    struct qvm_error e = { 0 };
    int r = spec_get_str(c, val, path, &v);
    if (r < 0)
        return r;
    if (qvm_name_check("pool", v, &e) < 0)
        return located(c, val, path, &e);
    set_str(&s->disk.pool, v);
    return 0;
}

/* A raw ZFS snapshot "pool/vol@snap": one '@', a non-empty snapshot, no
 * empty path components. */
static bool zfs_snapshot_valid(const char *v)
{
    const char *at = strchr(v, '@');
    if (!chars_in(v, ALNUM "._:/@-", 255) || !at || strchr(at + 1, '@') || !at[1] || !strchr(v, '/'))
        return false;
    if (v[0] == '/' || at[-1] == '/' || strstr(v, "//") || strchr(at, '/'))
        return false;
    return true;
}

static int h_zvol_base(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    const char *v;
    int r = spec_get_str(c, val, path, &v);
    if (r < 0)
        return r;
    if (strchr(v, '/')) {
        if (!zfs_snapshot_valid(v))
            return spec_err(c, &val->start, path,
                            "invalid ZFS snapshot: expected pool/volume@snapshot of letters, digits and ._:-");
    } else {
        char image[QVM_NAME_MAX + 1], version[QVM_NAME_MAX + 1];
        struct qvm_error e = { 0 };
        if (qvm_image_ref_parse(v, image, version, &e) < 0)
            return located(c, val, path, &e);
    }
    set_str(&s->disk.base, v);
    return 0;
}

static int h_zvol_name(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    const char *v;
    struct qvm_error e = { 0 };
    int r = spec_get_str(c, val, path, &v);
    if (r < 0)
        return r;
    if (qvm_name_check("disk", v, &e) < 0)
        return located(c, val, path, &e);
    set_str(&s->disk.target_name, v);
    return 0;
}

/* Any other disk.zvol key is a property for the clone (zfs create -o K=V). */
static int h_zvol_prop(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    const char *key = c->cur_key->value, *v;
    if (!chars_in(key, "abcdefghijklmnopqrstuvwxyz0123456789:._-", 255))
        return spec_err(c, &c->cur_key->start, path, "invalid property name: use a-z, 0-9, ':', '.', '_' and '-'");
    if (s->disk.nprops == QVM_SPEC_MAX_PROPS)
        return spec_err(c, &c->cur_key->start, path, "too many properties (at most %d)", QVM_SPEC_MAX_PROPS);
    if (val->kind != SPEC_SCALAR) {
        char buf[80];
        return spec_err(c, &val->start, path, "expected a property value, got %s",
                        spec_describe(val, buf, sizeof buf));
    }
    int r = spec_get_str(c, val, path, &v);
    if (r < 0)
        return r;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return spec_err(c, &val->start, path, "the property value contains a control character");
    s->disk.props[s->disk.nprops].key = xstrdup(key);
    s->disk.props[s->disk.nprops].value = xstrdup(v);
    s->disk.nprops++;
    return 0;
}

static int h_zvol(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const struct key_handler tab[] = {
        { "base", h_zvol_base }, { "name", h_zvol_name }, { NULL, NULL },
    };
    uint64_t seen;
    int r = walk_map(c, val, path, tab, h_zvol_prop, s, &seen);
    return r < 0 ? r : !(seen & 1) ? missing(c, val, path, "base") : 0;
}

static int h_disk(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const struct key_handler tab[] = {
        { "bus", h_disk_bus }, { "size", h_disk_size }, { "cache", h_disk_cache },
        { "pool", h_disk_pool }, { "zvol", h_zvol }, { NULL, NULL },
    };
    uint64_t seen;
    int r = walk_map(c, val, path, tab, NULL, s, &seen);
    return r < 0 ? r : !(seen & (1u << 4)) ? missing(c, val, path, "zvol") : 0;
}

static int h_net_type(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const char *const choices[] = { "user", "none", NULL };
    size_t i = 0;
    int r = get_choice(c, val, path, choices, &i);
    s->net.type = i == 1 ? QVM_NET_NONE : QVM_NET_USER;
    return r;
}

static int h_net_model(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const char *const choices[] = { "virtio", "e1000", "rtl8139", NULL };
    size_t i;
    int r = get_choice(c, val, path, choices, &i);
    if (r == 0)
        set_str(&s->net.model, choices[i]);
    return r;
}

/* Six hex octets; the first one's low bit clear (unicast), not all zero. */
static int h_net_mac(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    const char *v;
    int r = spec_get_str(c, val, path, &v);
    if (r < 0)
        return r;
    bool ok = strlen(v) == 17, zero = true;
    unsigned first = 0;
    for (size_t i = 0; ok && i < 17; i++) {
        if (i % 3 == 2)
            ok = v[i] == ':';
        else
            ok = strchr("0123456789abcdefABCDEF", v[i]) != NULL && v[i];
        if (ok && i % 3 != 2 && v[i] != '0')
            zero = false;
    }
    if (ok)
        sscanf(v, "%2x", &first);
    if (!ok || zero || (first & 1))
        return spec_err(c, &val->start, path, "invalid MAC address: expected a unicast address such as 52:54:00:12:34:56");
    char lower[18];
    for (size_t i = 0; i < 18; i++)
        lower[i] = (char)(v[i] >= 'A' && v[i] <= 'F' ? v[i] - 'A' + 'a' : v[i]);
    set_str(&s->net.mac, lower);
    return 0;
}

static int h_net_ssh_port(struct spec_ctx *c, const struct spec_node *val, const char *path,
                          struct qvm_vm_spec *s)
{
    c->ssh_port_node = val;
    if (val->kind == SPEC_SCALAR && val->style == YAML_PLAIN_SCALAR_STYLE && !val->tag) {
        if (strcmp(val->value, "auto") == 0) {
            s->net.ssh_port = 0;
            return 0;
        }
        if (strcmp(val->value, "none") == 0) {
            s->net.ssh_port = -1;
            return 0;
        }
    }
    uint64_t v;
    int r = get_uint(c, val, path, "auto, none or a port number (1024 to 65535)", 1024, 65535, &v);
    if (r == 0)
        s->net.ssh_port = (int)v;
    return r;
}

static int h_network(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const struct key_handler tab[] = {
        { "type", h_net_type }, { "model", h_net_model }, { "mac", h_net_mac },
        { "ssh-port", h_net_ssh_port }, { NULL, NULL },
    };
    int r = val->kind == SPEC_MAP ? walk_map(c, val, path, tab, NULL, s, NULL) : h_net_type(c, val, path, s);
    if (r < 0)
        return r;
    if (s->net.type == QVM_NET_NONE) {
        if (c->ssh_port_node && s->net.ssh_port > 0)
            return spec_err(c, &c->ssh_port_node->start, "vm.network.ssh-port",
                            "a forwarded SSH port needs network type user");
        s->net.ssh_port = -1;
    }
    return 0;
}

static const struct key_handler vm_keys[] = {
    { "qvm", h_ignore },
    { "name", h_name },
    { "memory", h_memory },
    { "vcpus", h_vcpus },
    { "cpu", h_cpu },
    { "virt-type", h_virt_type },
    { "accel", h_accel },
    { "machine", h_machine },
    { "os-variant", h_os_variant },
    { "import", h_import },
    { "noautoconsole", h_noautoconsole },
    { "boot", h_boot },
    { "graphics", h_graphics },
    { "disk", h_disk },
    { "network", h_network },
    { NULL, NULL },
};

/* Anchors and aliases are refused in the vm document: qvm never expands an
 * alias, and a vm document has no use for them. */
static int no_aliases(struct spec_ctx *c, const struct spec_node *n, const char *path)
{
    if (n->kind == SPEC_ALIAS || n->anchor)
        return spec_err(c, &n->start, path,
                        "YAML anchors and aliases are not allowed in the vm document");
    for (size_t i = 0; i < n->nkids; i++) {
        char sub[160], clean[48];
        const struct spec_node *k = n->kids[i];
        if (n->kind == SPEC_MAP && i % 2 == 1 && n->kids[i - 1]->kind == SPEC_SCALAR) {
            spec_clean(n->kids[i - 1]->value, n->kids[i - 1]->len, clean, sizeof clean);
            snprintf(sub, sizeof sub, "%s.%s", path, clean);
        } else if (n->kind == SPEC_SEQ) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        } else {
            snprintf(sub, sizeof sub, "%s", path);
        }
        int r = no_aliases(c, k, sub);
        if (r < 0)
            return r;
    }
    return 0;
}

static int spec_vm(struct spec_ctx *c, const struct spec_node *root, struct qvm_vm_spec *s)
{
    uint64_t seen;
    int r = no_aliases(c, root, "vm");
    if (r == 0)
        r = walk_map(c, root, "vm", vm_keys, NULL, s, &seen);
    if (r < 0)
        return r;
    if (!(seen & (1u << 1)))
        return missing(c, root, "vm", "name");
    if (!(seen & (1u << 13)))
        return missing(c, root, "vm", "disk");
    if (!s->memory_mib)
        s->memory_mib = 1024;
    if (!s->vcpus)
        s->vcpus = 1;
    if (!s->cpu)
        s->cpu = xstrdup("host-model");
    if (!s->accel)
        s->accel = xstrdup("auto");
    if (!s->machine)
        s->machine = xstrdup("q35");
    if (!s->boot)
        s->boot = xstrdup("hd");
    if (!s->disk.bus)
        s->disk.bus = xstrdup("virtio");
    if (!s->disk.cache)
        s->disk.cache = xstrdup("writeback");
    if (!s->net.model)
        s->net.model = xstrdup("virtio");
    return 0;
}

/* ---- the documents ------------------------------------------------------------ */

enum doc_kind { DOC_VM, DOC_USER_DATA, DOC_META_DATA, DOC_NETWORK_CONFIG, DOC_KINDS };
static const char *const doc_kind_names[DOC_KINDS] = { "vm", "user-data", "meta-data", "network-config" };

struct doc_ref {
    size_t index;                   /* into c->docs */
    const struct spec_node *qkey;   /* the qvm entry of the root mapping */
    const struct spec_node *qval;
};

static int classify(struct spec_ctx *c, struct doc_ref refs[DOC_KINDS], bool have[DOC_KINDS])
{
    for (size_t i = 0; i < c->ndocs; i++) {
        const struct spec_doc *d = &c->docs[i];
        const struct spec_node *root = d->root;
        char buf[80];
        if (!root || spec_is_null(root))
            return spec_err(c, &d->start_mark, NULL,
                            "document %zu is empty; each document is a mapping with a 'qvm' key", i + 1);
        if (root->kind != SPEC_MAP)
            return spec_err(c, &root->start, NULL,
                            "document %zu is not a mapping (it is %s); each document is a mapping with a 'qvm' key",
                            i + 1, spec_describe(root, buf, sizeof buf));
        const struct spec_node *qkey = NULL, *qval = NULL;
        for (size_t k = 0; k + 1 < root->nkids; k += 2) {
            const struct spec_node *key = root->kids[k];
            if (key->kind != SPEC_SCALAR || strcmp(key->value, "qvm") != 0 || key->len != 3)
                continue;
            if (qkey)
                return spec_err(c, &key->start, "qvm", "duplicate key (the first is at line %zu)",
                                qkey->start.line + 1);
            qkey = key;
            qval = root->kids[k + 1];
        }
        if (!qkey)
            return spec_err(c, &root->start, NULL,
                            "document %zu: missing key 'qvm' (expected qvm: vm, user-data, meta-data or network-config)",
                            i + 1);
        if (qval->kind != SPEC_SCALAR || spec_is_null(qval))
            return spec_err(c, &qval->start, "qvm",
                            "expected vm, user-data, meta-data or network-config, got %s",
                            spec_describe(qval, buf, sizeof buf));
        int kind = -1;
        for (int k = 0; k < DOC_KINDS; k++)
            if (strcmp(qval->value, doc_kind_names[k]) == 0)
                kind = k;
        if (strcmp(qval->value, "metadata") == 0)   /* seed 000's spelling */
            kind = DOC_META_DATA;
        if (kind < 0 || strlen(qval->value) != qval->len) {
            char clean[48];
            spec_clean(qval->value, qval->len, clean, sizeof clean);
            return spec_err(c, &qval->start, "qvm",
                            "unknown document kind '%s' (expected vm, user-data, meta-data or network-config)",
                            clean);
        }
        if (have[kind])
            return spec_err(c, &qval->start, "qvm", "duplicate %s document (the first is at line %zu)",
                            doc_kind_names[kind], refs[kind].qval->start.line + 1);
        have[kind] = true;
        refs[kind] = (struct doc_ref){ .index = i, .qkey = qkey, .qval = qval };
    }
    if (c->ndocs == 0)
        return spec_err(c, NULL, NULL,
                        "empty file: a qvm file holds vm, user-data and meta-data documents");
    char missing[128] = "";
    int nmissing = 0, left = !have[DOC_VM] + !have[DOC_USER_DATA] + !have[DOC_META_DATA];
    for (int k = DOC_VM; k <= DOC_META_DATA; k++) {
        if (have[k])
            continue;
        size_t l = strlen(missing);
        nmissing++;
        snprintf(missing + l, sizeof missing - l, "%s%s",
                 nmissing == 1 ? "" : nmissing == left ? " and " : ", ", doc_kind_names[k]);
    }
    if (nmissing)
        return spec_err(c, NULL, NULL,
                        "missing %s document%s (a qvm file holds documents tagged qvm: vm, qvm: user-data and qvm: meta-data)",
                        missing, nmissing > 1 ? "s" : "");
    return 0;
}

/* ---- cutting a document out of the original text ------------------------------- */

/* libyaml marks count characters; map a character index to a byte offset.
 * The input is valid UTF-8 (libyaml checked all of it). Calls come in
 * increasing order, so a cursor keeps this linear. */
static size_t byte_at(struct spec_ctx *c, size_t idx)
{
    if (idx < c->cursor_idx) {
        c->cursor_idx = 0;
        c->cursor_off = c->base;
    }
    size_t i = c->cursor_idx, off = c->cursor_off;
    while (i < idx && off < c->len) {
        off++;
        while (off < c->len && ((unsigned char)c->data[off] & 0xC0) == 0x80)
            off++;
        i++;
    }
    c->cursor_idx = i;
    c->cursor_off = off;
    return off;
}

/* NEL, LS and PS are line breaks to libyaml; we never cut across them. */
static bool odd_break(const struct spec_ctx *c, size_t i)
{
    const unsigned char *d = (const unsigned char *)c->data;
    return (d[i] == 0xC2 && i + 1 < c->len && d[i + 1] == 0x85) ||
           (d[i] == 0xE2 && i + 2 < c->len && d[i + 1] == 0x80 && (d[i + 2] == 0xA8 || d[i + 2] == 0xA9));
}

/* True if only blanks and a comment follow POS up to the end of its line;
 * *ret_next is the start of the next line (or LIM). */
static bool rest_blank(const struct spec_ctx *c, size_t pos, size_t lim, size_t *ret_next)
{
    size_t i = pos;
    while (i < lim && (c->data[i] == ' ' || c->data[i] == '\t'))
        i++;
    if (i < lim && c->data[i] == '#')
        for (; i < lim && c->data[i] != '\n' && c->data[i] != '\r'; i++)
            if (odd_break(c, i))
                return false;
    if (i < lim && c->data[i] == '\r') {
        i++;
        if (i < lim && c->data[i] == '\n')
            i++;
    } else if (i < lim && c->data[i] == '\n') {
        i++;
    } else if (i != lim) {
        return false;
    }
    *ret_next = i;
    return true;
}

/* A value we append to meta-data as a plain scalar must read back as a
 * string: VM names are [a-z0-9._-], so digits first and YAML 1.1 words are
 * the only traps. */
static bool needs_quotes(const char *v)
{
    static const char *const words[] = { "y", "n", "yes", "no", "true", "false", "on", "off", "null" };
    bool quote = v[0] >= '0' && v[0] <= '9';
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        quote = quote || strcmp(v, words[i]) == 0;
    return quote;
}

static void add_scalar(struct strbuf *sb, const char *v)
{
    strbuf_addf(sb, needs_quotes(v) ? "\"%s\"" : "%s", v);
}

struct extra {
    const char *key;
    const char *value;
};

static int write_handler(void *data, unsigned char *buffer, size_t size)
{
    strbuf_add(data, buffer, size);
    return 1;
}

/* Emits N; in a mapping, the pair whose key is SKIP is left out and EX
 * pairs are added at its end. Containers are written in block style,
 * where the emitter can keep the most scalars plain. */
static int emit_node(yaml_emitter_t *em, const struct spec_node *n, const struct spec_node *skip,
                     const struct extra *ex, size_t nex)
{
    yaml_event_t ev;
    const yaml_char_t *anchor = (const yaml_char_t *)n->anchor, *tag = (const yaml_char_t *)n->tag;
    switch (n->kind) {
    case SPEC_ALIAS:
        return yaml_alias_event_initialize(&ev, anchor) && yaml_emitter_emit(em, &ev);
    case SPEC_SCALAR: {
        /* The non-specific tag "!" is dropped: PyYAML, cloud-init's reader,
         * resolves "! 123" like "123", and libyaml can only write it as
         * "!<%21>". Where the emitter cannot keep a plain scalar plain (an
         * empty one in flow context, "-" as a key) it quotes it, and tags
         * it "!" unless quoted_implicit is set: a plain scalar it refuses
         * is a string either way, and an empty one is null, written "~". */
        bool untagged = !n->tag || strcmp(n->tag, "!") == 0;
        if (untagged && n->style == YAML_PLAIN_SCALAR_STYLE)
            return yaml_scalar_event_initialize(&ev, anchor, NULL,
                                                (const yaml_char_t *)(n->len ? n->value : "~"),
                                                n->len ? (int)n->len : 1, 1, 1, YAML_PLAIN_SCALAR_STYLE) &&
                   yaml_emitter_emit(em, &ev);
        if (untagged)
            return yaml_scalar_event_initialize(&ev, anchor, NULL, (const yaml_char_t *)n->value, (int)n->len,
                                                0, 1, n->style) &&
                   yaml_emitter_emit(em, &ev);
        return yaml_scalar_event_initialize(&ev, anchor, tag, (const yaml_char_t *)n->value, (int)n->len,
                                            n->plain_implicit, n->quoted_implicit, n->style) &&
               yaml_emitter_emit(em, &ev);
    }
    case SPEC_SEQ:
        if (!yaml_sequence_start_event_initialize(&ev, anchor, tag, n->implicit, YAML_BLOCK_SEQUENCE_STYLE) ||
            !yaml_emitter_emit(em, &ev))
            return 0;
        for (size_t i = 0; i < n->nkids; i++)
            if (!emit_node(em, n->kids[i], NULL, NULL, 0))
                return 0;
        return yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
    case SPEC_MAP:
        if (!yaml_mapping_start_event_initialize(&ev, anchor, tag, n->implicit, YAML_BLOCK_MAPPING_STYLE) ||
            !yaml_emitter_emit(em, &ev))
            return 0;
        for (size_t i = 0; i + 1 < n->nkids; i += 2)
            if (n->kids[i] != skip &&
                (!emit_node(em, n->kids[i], NULL, NULL, 0) || !emit_node(em, n->kids[i + 1], NULL, NULL, 0)))
                return 0;
        for (size_t i = 0; i < nex; i++)
            if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)ex[i].key, -1, 1, 1,
                                              YAML_PLAIN_SCALAR_STYLE) ||
                !yaml_emitter_emit(em, &ev) ||
                !yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)ex[i].value, -1, 1, 1,
                                              needs_quotes(ex[i].value) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                                                        : YAML_PLAIN_SCALAR_STYLE) ||
                !yaml_emitter_emit(em, &ev))
                return 0;
        return yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
    }
    return 0;
}

/* True if TEXT reads as YAML. libyaml's emitter can write what its parser
 * refuses (a tag shorthand holding ','), so re-emitted text is checked. */
static bool yaml_readable(const char *text, size_t len)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return false;
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    bool ok = true;
    for (bool done = false; ok && !done;) {
        yaml_event_t ev;
        ok = yaml_parser_parse(&p, &ev);
        if (ok) {
            done = ev.type == YAML_STREAM_END_EVENT;
            yaml_event_delete(&ev);
        }
    }
    yaml_parser_delete(&p);
    return ok;
}

/* The fallback when the qvm entry does not sit alone on its line (a flow
 * mapping, say): re-emit the document without it. Comments are lost. */
static int emit_without(struct spec_ctx *c, const struct spec_doc *d, const struct spec_node *qkey,
                        const struct extra *ex, size_t nex, struct strbuf *out)
{
    yaml_emitter_t em;
    if (!yaml_emitter_initialize(&em))
        return qvm_err(c->err, ENOMEM, "%s: cannot initialise the YAML emitter", c->file);
    yaml_emitter_set_output(&em, write_handler, out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    const struct spec_node *root = d->root;
    yaml_event_t ev;
    int ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) && yaml_emitter_emit(&em, &ev) &&
             yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) && yaml_emitter_emit(&em, &ev) &&
             emit_node(&em, root, qkey, ex, nex) &&
             yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&em, &ev) &&
             yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&em, &ev);
    int r = 0;
    if (!ok)
        r = spec_err(c, &root->start, NULL, "cannot re-emit document without its qvm key: %s",
                     em.problem ? em.problem : "out of memory");
    yaml_emitter_delete(&em);
    /* An open-ended last scalar makes the emitter close the stream with "...". */
    if (r == 0 && out->len >= 4 && memcmp(out->buf + out->len - 4, "...\n", 4) == 0 &&
        (out->len == 4 || out->buf[out->len - 5] == '\n'))
        out->buf[out->len -= 4] = '\0';
    if (r == 0 && !yaml_readable(out->buf, out->len))
        r = spec_err(c, &qkey->start, "qvm",
                     "cannot rewrite this document without its qvm entry: libyaml cannot write one of its "
                     "tags back (%s)",
                     d->tag_directives ? "avoid %TAG directives here" : "simplify the tags");
    return r;
}

/* True if the last node of N is a literal or folded scalar: running to
 * the end of the file, it would gain a line break if we added one. */
static bool ends_in_block_scalar(const struct spec_node *n)
{
    while ((n->kind == SPEC_MAP || n->kind == SPEC_SEQ) && n->nkids)
        n = n->kids[n->nkids - 1];
    return n->kind == SPEC_SCALAR &&
           (n->style == YAML_LITERAL_SCALAR_STYLE || n->style == YAML_FOLDED_SCALAR_STYLE);
}

/* Document D's text without its '---'/'...' markers and without the qvm
 * entry, otherwise byte for byte as written, plus EX entries at the end. */
static int doc_text(struct spec_ctx *c, const struct doc_ref *ref, const struct extra *ex, size_t nex,
                    struct strbuf *out)
{
    const struct spec_doc *d = &c->docs[ref->index];
    const struct spec_node *root = d->root, *qkey = ref->qkey, *qval = ref->qval;
    const char *data = c->data;
    /* The cut needs a block mapping whose qvm entry sits alone on its line,
     * and no tag or anchor on the mapping (they stand on a line of their
     * own and would apply to whatever is left). */
    bool ok = !root->flow && !d->tag_directives && !root->tag && !root->anchor &&
              (qval->style == YAML_PLAIN_SCALAR_STYLE || qval->style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
               qval->style == YAML_DOUBLE_QUOTED_SCALAR_STYLE) &&
              qkey->start.line == qval->end.line;
    size_t rs = c->base, re = 0, ls = 0, le = 0;
    if (ok && !d->start_implicit)
        ok = rest_blank(c, byte_at(c, d->start_end.index), c->len, &rs);
    else if (ok && ref->index > 0)
        ok = rest_blank(c, byte_at(c, c->docs[ref->index - 1].end_end.index), c->len, &rs);
    if (ok) {
        size_t kb = byte_at(c, qkey->start.index), ve = byte_at(c, qval->end.index);
        re = byte_at(c, d->end_start.index);
        ls = kb;
        while (ls > rs && (data[ls - 1] == ' ' || data[ls - 1] == '\t'))
            ls--;
        ok = kb >= rs && ve <= re && (ls == rs || data[ls - 1] == '\n' || data[ls - 1] == '\r') &&
             rest_blank(c, ve, re, &le);
    }
    if (!ok)
        return emit_without(c, d, qkey, ex, nex, out);

    /* Leading blank lines go, so that a '#cloud-config' line comes first. */
    for (size_t i = rs; i < ls; i++) {
        if (data[i] == '\n' || data[i] == '\r')
            rs = i + 1;
        else if (data[i] != ' ' && data[i] != '\t')
            break;
    }
    if (ls == rs)
        for (size_t i = le; i < re; i++) {
            if (data[i] == '\n' || data[i] == '\r')
                le = i + 1;
            else if (data[i] != ' ' && data[i] != '\t')
                break;
        }
    strbuf_add(out, data + rs, ls - rs);
    strbuf_add(out, data + le, re - le);
    /* A document may run to the end of the file without a final line
     * break. One is added, unless it would change a block scalar ending
     * there: then the text stays as it is, or, when keys must be appended,
     * the emitter writes the document. */
    if (out->len && out->buf[out->len - 1] != '\n' && out->buf[out->len - 1] != '\r') {
        if (!ends_in_block_scalar(root)) {
            strbuf_addch(out, '\n');
        } else if (nex) {
            strbuf_reset(out);
            return emit_without(c, d, qkey, ex, nex, out);
        }
    }
    for (size_t i = 0; i < nex; i++) {
        for (size_t k = 0; k < qkey->start.column; k++)
            strbuf_addch(out, ' ');
        strbuf_addf(out, "%s: ", ex[i].key);
        add_scalar(out, ex[i].value);
        strbuf_addch(out, '\n');
    }
    return 0;
}

static bool starts_cloud_config(const char *s, size_t len)
{
    return len >= 13 && memcmp(s, "#cloud-config", 13) == 0 &&
           (len == 13 || s[13] == '\n' || s[13] == '\r' || s[13] == ' ' || s[13] == '\t');
}

static bool hostname_valid(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253 || h[0] == '-' || h[0] == '.' || strstr(h, ".."))
        return false;
    return strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

static bool instance_id_valid(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 128 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

/* The value of top-level KEY in meta-data as a string, or NULL. */
static int meta_value(struct spec_ctx *c, const struct spec_node *root, const char *key,
                      const char **ret, const struct spec_node **ret_node)
{
    const struct spec_node *found = NULL;
    char path[64];
    snprintf(path, sizeof path, "meta-data.%s", key);
    for (size_t i = 0; i + 1 < root->nkids; i += 2) {
        const struct spec_node *k = root->kids[i];
        if (k->kind != SPEC_SCALAR || strcmp(k->value, key) != 0 || strlen(key) != k->len)
            continue;
        if (found)
            return spec_err(c, &k->start, path, "duplicate key '%s' (the first is at line %zu)", key,
                            found->start.line + 1);
        found = k;
        *ret_node = root->kids[i + 1];
        int r = spec_get_str(c, root->kids[i + 1], path, ret);
        if (r < 0)
            return r;
    }
    if (!found)
        *ret = NULL;
    return 0;
}

static int random_hex(struct spec_ctx *c, char out[17])
{
    unsigned char b[8];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return qvm_err_errno(c->err, errno, "%s: cannot make an instance-id: getrandom", c->file);
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

static int cloud_init_texts(struct spec_ctx *c, const struct doc_ref refs[DOC_KINDS],
                            const bool have[DOC_KINDS], struct qvm_vm_spec *s)
{
    /* Documents in file order, so that byte_at's cursor only moves forward. */
    int order[DOC_KINDS], n = 0;
    for (int k = DOC_USER_DATA; k < DOC_KINDS; k++)
        if (have[k])
            order[n++] = k;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && refs[order[j]].index < refs[order[j - 1]].index; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }

    for (int i = 0; i < n; i++) {
        int kind = order[i];
        struct strbuf sb = STRBUF_INIT;
        int r = 0;
        if (kind == DOC_META_DATA) {
            const struct spec_node *root = c->docs[refs[kind].index].root;
            const char *iid, *host;
            const struct spec_node *iid_node = NULL, *host_node = NULL;
            struct extra ex[2];
            size_t nex = 0;
            char hex[17];
            if ((r = meta_value(c, root, "instance-id", &iid, &iid_node)) < 0 ||
                (r = meta_value(c, root, "local-hostname", &host, &host_node)) < 0)
                return r;
            if (iid && !instance_id_valid(iid))
                return spec_err(c, &iid_node->start, "meta-data.instance-id",
                                "invalid instance-id: use 1 to 128 letters, digits, '.', '_', ':' and '-'");
            if (host && !hostname_valid(host))
                return spec_err(c, &host_node->start, "meta-data.local-hostname",
                                "invalid host name: use letters, digits, '-' and '.'");
            if (iid) {
                s->instance_id = xstrdup(iid);
            } else {
                if ((r = random_hex(c, hex)) < 0)
                    return r;
                s->instance_id = xasprintf("%s-%s", s->name, hex);
                ex[nex++] = (struct extra){ "instance-id", s->instance_id };
            }
            s->hostname = xstrdup(host ? host : s->name);
            if (!host)
                ex[nex++] = (struct extra){ "local-hostname", s->hostname };
            r = doc_text(c, &refs[kind], ex, nex, &sb);
        } else {
            r = doc_text(c, &refs[kind], NULL, 0, &sb);
        }
        if (r < 0) {
            strbuf_release(&sb);
            return r;
        }
        char *text = strbuf_detach(&sb, NULL);
        if (kind == DOC_USER_DATA) {
            if (!starts_cloud_config(text, strlen(text))) {
                char *t = xasprintf("#cloud-config\n%s", text);
                free(text);
                text = t;
            }
            s->user_data = text;
        } else if (kind == DOC_META_DATA) {
            s->meta_data = text;
        } else {
            s->network_config = text;
        }
    }
    return 0;
}

/* ---- entry points ---------------------------------------------------------- */

int qvm_spec_parse(const char *filename, const char *data, size_t len,
                   struct qvm_vm_spec *ret, struct qvm_error *err)
{
    if (!filename)
        filename = "<input>";
    if (len > QVM_SPEC_MAX_FILE)
        return qvm_err(err, EFBIG, "%s: too large (%zu bytes, limit %u)", filename, len, QVM_SPEC_MAX_FILE);
    struct spec_ctx c = { .file = filename, .data = data ? data : "", .len = data ? len : 0, .err = err };
    const unsigned char *u = (const unsigned char *)c.data;
    if (c.len >= 2 && ((u[0] == 0xFE && u[1] == 0xFF) || (u[0] == 0xFF && u[1] == 0xFE)))
        return spec_err(&c, NULL, NULL, "UTF-16 is not supported; save the file as UTF-8");
    if (c.len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF)
        c.base = 3;     /* libyaml skips a UTF-8 BOM without counting it in marks */
    c.cursor_off = c.base;

    struct qvm_vm_spec s = { 0 };
    struct doc_ref refs[DOC_KINDS];
    bool have[DOC_KINDS] = { false };
    int r = build_tree(&c);
    if (r == 0)
        r = classify(&c, refs, have);
    if (r == 0)
        r = spec_vm(&c, c.docs[refs[DOC_VM].index].root, &s);
    if (r == 0)
        r = cloud_init_texts(&c, refs, have, &s);
    ctx_free(&c);
    if (r < 0) {
        qvm_spec_release(&s);
        return r;
    }
    *ret = s;
    return 0;
}

int qvm_spec_load(const char *filename, struct qvm_vm_spec *ret, struct qvm_error *err)
{
    char *data;
    size_t len;
    int r = qvm_read_file(filename, QVM_SPEC_MAX_FILE, &data, &len, err);
    if (r < 0)
        return r;
    r = qvm_spec_parse(filename, data, len, ret, err);
    free(data);
    return r;
}

void qvm_spec_release(struct qvm_vm_spec *spec)
{
    if (!spec)
        return;
    free(spec->name);
    free(spec->cpu);
    free(spec->accel);
    free(spec->machine);
    free(spec->os_variant);
    free(spec->boot);
    free(spec->disk.base);
    free(spec->disk.target_name);
    for (size_t i = 0; i < spec->disk.nprops && i < QVM_SPEC_MAX_PROPS; i++) {
        free(spec->disk.props[i].key);
        free(spec->disk.props[i].value);
    }
    free(spec->disk.bus);
    free(spec->disk.cache);
    free(spec->disk.pool);
    free(spec->net.model);
    free(spec->net.mac);
    free(spec->user_data);
    free(spec->meta_data);
    free(spec->network_config);
    free(spec->instance_id);
    free(spec->hostname);
    memset(spec, 0, sizeof *spec);
}
