/* yaml_tree.h - private to spec/: the YAML node tree with its marks and limits,
 * loading it with libyaml, and the error helpers every part of the parser uses
 * ("FILE:LINE:COL: key 'PATH': ..."). */
#ifndef QVM_SPEC_YAML_TREE_H
#define QVM_SPEC_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "spec.h"

#define SPEC_MAX_DOCS 16
#define SPEC_MAX_SCALAR (64u * 1024)
#define SPEC_MAX_NODES (1u << 17)   /* ample for any cloud-config; caps the tree near 20 MiB */

/* Why a tree of our own rather than yaml_document_t: we need the marks of
 * every node, the document boundaries and the anchors as written (never
 * expanded), and a hard cap on nodes before anything grows. */
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
    size_t cursor_idx, cursor_off;  /* byte_at's cursor (cloudinit.c) */
    struct spec_doc docs[SPEC_MAX_DOCS];
    size_t ndocs;
    struct spec_node **all;     /* every node, for freeing */
    size_t nall, allcap;
    struct qvm_error *err;
    /* vm document state (validate.c) */
    const struct spec_node *accel_node, *virt_type_node, *ssh_port_node;
    const struct spec_node *cur_key;    /* the key whose value a handler is reading */
    struct qvm_net_spec *nic;           /* the NIC network handlers fill (validate.c) */
};

/* Reads the whole stream into c->docs, enforcing every limit before the
 * structure grows past it. */
int spec_build_tree(struct spec_ctx *c);
void spec_ctx_free(struct spec_ctx *c);

/* An EINVAL error located at M (NULL: 1:1), naming key PATH when not NULL. */
int spec_err(struct spec_ctx *c, const yaml_mark_t *m, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* S (LEN bytes) fit for a message: non-printing bytes as '?', cut short
 * with "..." to fit SIZE. */
void spec_clean(const char *s, size_t len, char *buf, size_t size);
/* N as a message names it: "a mapping", "'abc'", ... (may use BUF). */
const char *spec_describe(const struct spec_node *n, char *buf, size_t size);
bool spec_is_null(const struct spec_node *n);
/* Any non-null scalar, as written; quoted or not. No NUL bytes. */
int spec_get_str(struct spec_ctx *c, const struct spec_node *n, const char *path, const char **ret);

#endif
