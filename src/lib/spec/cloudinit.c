/* cloudinit.c - the cloud-init documents for the NoCloud seed: each cut out of
 * the original bytes without its qvm entry (or re-emitted when it cannot be
 * cut), #cloud-config for user-data, instance-id and local-hostname for
 * meta-data. */

#include "spec_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/strbuf.h"

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

/* ---- the cloud-init texts ---------------------------------------------------- */

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

int spec_cloud_init_texts(struct spec_ctx *c, const struct doc_ref refs[DOC_KINDS],
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
