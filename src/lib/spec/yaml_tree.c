/* yaml_tree.c - libyaml events into the spec_node tree (marks kept, anchors
 * never expanded, every limit enforced before anything grows), and the error
 * helpers that locate a message at FILE:LINE:COL. */

#include "yaml_tree.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"

/* ---- errors ---------------------------------------------------------------- */

int spec_err(struct spec_ctx *c, const yaml_mark_t *m, const char *path, const char *fmt, ...)
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

void spec_clean(const char *s, size_t len, char *buf, size_t size)
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

const char *spec_describe(const struct spec_node *n, char *buf, size_t size)
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

bool spec_is_null(const struct spec_node *n)
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

int spec_build_tree(struct spec_ctx *c)
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

void spec_ctx_free(struct spec_ctx *c)
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

/* ---- reading a scalar ------------------------------------------------------ */

int spec_get_str(struct spec_ctx *c, const struct spec_node *n, const char *path, const char **ret)
{
    char buf[80];
    if (n->kind != SPEC_SCALAR || spec_is_null(n))
        return spec_err(c, &n->start, path, "expected a string, got %s", spec_describe(n, buf, sizeof buf));
    if (strlen(n->value) != n->len)
        return spec_err(c, &n->start, path, "the value contains a NUL byte");
    *ret = n->value;
    return 0;
}
