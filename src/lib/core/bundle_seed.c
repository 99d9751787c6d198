/* bundle_seed.c - a copy of a VM under a new name must not look like the
 * same machine to cloud-init: it gets a new instance-id (so cloud-init
 * runs again) and its name as host name. The qvm file keeps its text; only
 * the vm document's name is replaced in place. The cloud-init documents
 * are re-emitted through libyaml with the keys changed (comments in them
 * are lost, which cloud-init does not read; user-data is left as written
 * unless it sets hostname or fqdn itself). */
#include "bundle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <yaml.h>

#include "seed/seed.h"
#include "spec/spec.h"
#include "util/strbuf.h"

/* libyaml's marks count characters; the text is UTF-8 (libyaml checked). */
static size_t byte_offset(const char *s, size_t len, size_t base, size_t chars)
{
    size_t off = base;
    for (size_t i = 0; i < chars && off < len; i++) {
        off++;
        while (off < len && ((unsigned char)s[off] & 0xC0) == 0x80)
            off++;
    }
    return off;
}

/* The byte range of the value of top-level key "name" in the document whose
 * "qvm" key is "vm". */
static int find_vm_name(const char *s, size_t len, size_t *ret_start, size_t *ret_end,
                        struct qvm_error *err)
{
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)s, len);
    int depth = 0, r = -1;
    size_t idx = 0;
    bool vm_doc = false, have = false, key_qvm = false, key_name = false;
    size_t start = 0, end = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            r = qvm_err(err, EINVAL, "the bundle's qvm file is not valid YAML: %s",
                        p.problem ? p.problem : "?");
            break;
        }
        yaml_event_type_t t = ev.type;
        bool at_root = depth == 1;
        if (t == YAML_DOCUMENT_START_EVENT) {
            vm_doc = have = false;
            idx = 0;
        } else if (t == YAML_DOCUMENT_END_EVENT && vm_doc && have) {
            yaml_event_delete(&ev);
            r = 0;
            break;
        } else if (t == YAML_SCALAR_EVENT && at_root) {
            const char *v = (const char *)ev.data.scalar.value;
            if (idx % 2 == 0) {
                key_qvm = !strcmp(v, "qvm");
                key_name = !strcmp(v, "name");
            } else if (key_qvm && !strcmp(v, "vm")) {
                vm_doc = true;
            } else if (key_name) {
                have = true;
                start = ev.start_mark.index;
                end = ev.end_mark.index;
            }
            idx++;
        } else if (t == YAML_ALIAS_EVENT && at_root) {
            idx++;
        } else if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) {
            depth++;
        } else if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) {
            if (--depth == 1)
                idx++;
        } else if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            r = qvm_err(err, EINVAL, "the bundle's qvm file has no vm document with a name");
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (r == 0) {
        size_t base = len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3) ? 3 : 0;
        *ret_start = byte_offset(s, len, base, start);
        *ret_end = byte_offset(s, len, base, end);
    }
    return r;
}

struct kv {
    const char *key;
    const char *value;
    bool add;          /* add it when the document lacks it */
    bool keep_domain;  /* keep what followed the first '.' of the old value */
};

static int emit_to(void *data, unsigned char *buf, size_t size)
{
    strbuf_add(data, buf, size);
    return 1;
}

/* TEXT with top-level KEYS set (only those present, unless .add). *RET is
 * NULL if nothing needed changing and no key is to be added. */
static int set_keys(const char *text, const struct kv *keys, size_t n, char **ret,
                    struct qvm_error *err)
{
    yaml_parser_t p;
    yaml_document_t doc;
    *ret = NULL;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&p, &doc)) {
        int r = qvm_err(err, EINVAL, "a cloud-init document of the bundle is not valid YAML: %s",
                        p.problem ? p.problem : "?");
        yaml_parser_delete(&p);
        return r;
    }
    yaml_parser_delete(&p);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    bool changed = false;
    int r = 0;
    if (!root) {
        bool any = false;
        for (size_t i = 0; i < n; i++)
            any = any || keys[i].add;
        if (!any)
            goto done;
        yaml_document_delete(&doc);
        yaml_document_initialize(&doc, NULL, NULL, NULL, 1, 1);
        yaml_document_add_mapping(&doc, NULL, YAML_BLOCK_MAPPING_STYLE);
        root = yaml_document_get_root_node(&doc);
    }
    if (root->type != YAML_MAPPING_NODE) {
        r = qvm_err(err, EINVAL, "a cloud-init document of the bundle is not a mapping");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        root = yaml_document_get_root_node(&doc);
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
             pr < root->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
            if (k && k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, keys[i].key)) {
                yaml_node_t *old = yaml_document_get_node(&doc, pr->value);
                const char *dot = keys[i].keep_domain && old && old->type == YAML_SCALAR_NODE
                                  ? strchr((char *)old->data.scalar.value, '.') : NULL;
                char *value = xasprintf("%s%s", keys[i].value, dot ? dot : "");
                int v = yaml_document_add_scalar(&doc, NULL, (yaml_char_t *)value, -1,
                                                 YAML_DOUBLE_QUOTED_SCALAR_STYLE);
                free(value);
                /* add_scalar may move the node array: find the pair again. */
                root = yaml_document_get_root_node(&doc);
                root->data.mapping.pairs.start[pr - root->data.mapping.pairs.start].value = v;
                found = changed = true;
                break;
            }
        }
        if (!found && keys[i].add) {
            int k = yaml_document_add_scalar(&doc, NULL, (yaml_char_t *)keys[i].key, -1,
                                             YAML_PLAIN_SCALAR_STYLE);
            int v = yaml_document_add_scalar(&doc, NULL, (yaml_char_t *)keys[i].value, -1,
                                             YAML_DOUBLE_QUOTED_SCALAR_STYLE);
            yaml_document_append_mapping_pair(&doc, 1, k, v);
            changed = true;
        }
    }
    if (!changed)
        goto done;
    doc.start_implicit = 1;
    doc.end_implicit = 1;
    struct strbuf sb = STRBUF_INIT;
    yaml_emitter_t e;
    yaml_emitter_initialize(&e);
    yaml_emitter_set_output(&e, emit_to, &sb);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    /* dump takes the document (and deletes it). */
    bool ok = yaml_emitter_open(&e) && yaml_emitter_dump(&e, &doc) && yaml_emitter_close(&e) &&
              yaml_emitter_flush(&e);
    if (!ok)
        r = qvm_err(err, EINVAL, "cannot write a cloud-init document: %s",
                    e.problem ? e.problem : "?");
    yaml_emitter_delete(&e);
    if (r < 0) {
        strbuf_release(&sb);
        return r;
    }
    *ret = strbuf_detach(&sb, NULL);
    return 0;
done:
    yaml_document_delete(&doc);
    return r;
}

int qvm_bundle_renamed_seed(const char *yaml, size_t len, const char *new_name,
                            const char *seed_path, char **ret_yaml, char **ret_instance_id,
                            char **ret_hostname, struct qvm_error *err)
{
    size_t start = 0, end = 0;
    int r = find_vm_name(yaml, len, &start, &end, err);
    if (r < 0)
        return r;
    struct strbuf y = STRBUF_INIT;
    strbuf_add(&y, yaml, start);
    strbuf_addf(&y, "\"%s\"", new_name);
    strbuf_add(&y, yaml + end, len - end);
    struct qvm_vm_spec spec;
    r = qvm_spec_parse("vm.yaml", y.buf, y.len, &spec, err);
    if (r < 0) {
        strbuf_release(&y);
        return qvm_err_wrap(err, "the bundle's qvm file");
    }
    if (strcmp(spec.name, new_name) != 0) {
        r = qvm_err(err, EINVAL, "cannot set the name in the bundle's qvm file");
        goto out;
    }
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        r = qvm_err_errno(err, errno, "cannot make an instance-id: getrandom");
        goto out;
    }
    char *iid = xasprintf("%s-%02x%02x%02x%02x%02x%02x%02x%02x", new_name, rnd[0], rnd[1],
                          rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    const struct kv meta[] = {
        { "instance-id", iid, true, false },
        { "local-hostname", new_name, true, false },
    };
    char *meta_text = NULL, *user_text = NULL;
    r = set_keys(spec.meta_data, meta, 2, &meta_text, err);
    if (r == 0) {
        /* fqdn: the new name in the old domain. */
        const struct kv user[] = { { "hostname", new_name, false, false },
                                   { "fqdn", new_name, false, true } };
        r = set_keys(spec.user_data, user, 2, &user_text, err);
    }
    if (r == 0 && user_text) {
        char *t = xasprintf("#cloud-config\n%s", user_text);
        free(user_text);
        user_text = t;
    }
    if (r == 0)
        r = qvm_seed_write(seed_path, user_text ? user_text : spec.user_data, meta_text,
                           spec.network_config, err);
    free(meta_text);
    free(user_text);
    if (r == 0) {
        *ret_yaml = strbuf_detach(&y, NULL);
        *ret_instance_id = iid;
        *ret_hostname = xstrdup(new_name);
    } else {
        free(iid);
    }
out:
    qvm_spec_release(&spec);
    strbuf_release(&y);
    return r;
}
