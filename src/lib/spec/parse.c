/* parse.c - the qvm file: a YAML stream of tagged documents -> struct qvm_vm_spec.
 * Owns the document rules of seed 000 sections 3.1.2 and 7.2.2 (kinds, none
 * missing or twice) and the entry points that run tree, vm and cloud-init. */

#include "spec_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fsutil.h"

/* ---- the documents ------------------------------------------------------------ */

static const char *const doc_kind_names[DOC_KINDS] = { "vm", "user-data", "meta-data", "network-config" };

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
    /* YAML 1.1 also breaks lines at NEL, LS and PS; qvm keeps user-data as
     * text and cuts documents at "\n", so those would split it differently
     * from libyaml. No real qvm file needs them. */
    for (size_t i = c.base, line = 1, col = 1; i + 1 < c.len; i++, col++) {
        bool nel = u[i] == 0xC2 && u[i + 1] == 0x85;
        bool lsps = i + 2 < c.len && u[i] == 0xE2 && u[i + 1] == 0x80 &&
                    (u[i + 2] == 0xA8 || u[i + 2] == 0xA9);
        if (nel || lsps)
            return qvm_err(err, EINVAL, "%s:%zu:%zu: the line break U+%s is not supported; "
                           "end lines with \\n", filename, line, col,
                           nel ? "0085" : u[i + 2] == 0xA8 ? "2028" : "2029");
        if (u[i] == '\n')
            line++, col = 0;
        else if ((u[i] & 0xC0) == 0x80)
            col--;      /* a UTF-8 continuation byte: same column */
    }

    struct qvm_vm_spec s = { 0 };
    struct doc_ref refs[DOC_KINDS];
    bool have[DOC_KINDS] = { false };
    int r = spec_build_tree(&c);
    if (r == 0)
        r = classify(&c, refs, have);
    if (r == 0)
        r = spec_vm(&c, c.docs[refs[DOC_VM].index].root, &s);
    if (r == 0)
        r = spec_cloud_init_texts(&c, refs, have, &s);
    spec_ctx_free(&c);
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

void qvm_disk_spec_release(struct qvm_disk_spec *d)
{
    free(d->base);
    free(d->target_name);
    for (size_t i = 0; i < d->nprops && i < QVM_SPEC_MAX_PROPS; i++) {
        free(d->props[i].key);
        free(d->props[i].value);
    }
    free(d->bus);
    free(d->cache);
    free(d->pool);
    memset(d, 0, sizeof *d);
}

bool qvm_spec_image_disk_boots(const struct qvm_vm_spec *spec)
{
    for (size_t i = 0; i < spec->ndata_disks; i++)
        if (spec->data_disks[i].boot)
            return false;
    return true;
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
    qvm_disk_spec_release(&spec->disk);
    for (size_t i = 0; i < spec->ndata_disks; i++)
        qvm_disk_spec_release(&spec->data_disks[i]);
    free(spec->data_disks);
    for (size_t i = 0; i < qvm_spec_nic_count(spec); i++) {
        struct qvm_net_spec *n = qvm_spec_nic_mut(spec, i);
        free(n->model);
        free(n->mac);
        free(n->source);
    }
    spec->nextra_nets = 0;
    free(spec->runtime);
    free(spec->runtime_uri);
    for (size_t i = 0; i < spec->nvi_opts; i++) {
        free(spec->vi_opts[i].key);
        free(spec->vi_opts[i].value);
    }
    free(spec->vi_opts);
    free(spec->user_data);
    free(spec->meta_data);
    free(spec->network_config);
    free(spec->instance_id);
    free(spec->hostname);
    memset(spec, 0, sizeof *spec);
}
