/* passthrough.c - `runtime: virt-install`: the vm document's keys that qvm
 * does not model, kept as virt-install options (seed 000, section 6.4).
 *
 * A key becomes an option of the same name; its value is one of seed 6.4's
 * three kinds: a boolean true or nothing (a bare --KEY; false drops it), a
 * scalar (--KEY=VALUE), or a mapping of sub-options (--KEY=k=v,k2=v2, a
 * nested mapping as dotted names: target.type=virtio). A sequence repeats
 * the option (two --channel). Only qvm writes the argv, so a value never
 * becomes an option of its own: it is always joined to its key with '='.
 * Options qvm sets itself (the connection, the name, the disks, the UUID,
 * the dry run) cannot be given here. */
#include "spec_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"

#define VI_MAX_OPTS 64
#define VI_MAX_VALUE 1024

/* Keys qvm owns in virt-install mode, or that would make virt-install do
 * something other than define one VM from qvm's disk. */
static const char *const reserved[] = {
    "connect", "name", "disk", "uuid", "dry-run", "print-xml", "transient", "destroy-on-exit",
    "cloud-init", "cdrom", "location", "pxe", "install", "unattended", "check", "help",
    "version", "qemu-commandline", "reinstall", "wait", "autoconsole", NULL,
};

static bool key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 40 || k[0] < 'a' || k[0] > 'z')
        return false;
    return strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static bool subkey_ok(const char *k)
{
    size_t n = strlen(k);
    return n > 0 && n <= 40 &&
           strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* A scalar usable inside an option: printable, no ',' (virt-install splits
 * sub-options on it), no '=' at the start. */
static int scalar_text(struct spec_ctx *c, const struct spec_node *n, const char *path,
                       const char **ret)
{
    int r = spec_get_str(c, n, path, ret);
    if (r < 0)
        return r;
    for (const char *p = *ret; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ',')
            return spec_err(c, &n->start, path,
                            "virt-install option values cannot hold commas or control characters");
    if (strlen(*ret) > VI_MAX_VALUE)
        return spec_err(c, &n->start, path, "value longer than %d bytes", VI_MAX_VALUE);
    return 0;
}

static bool is_bool(const struct spec_node *n, bool *ret)
{
    static const char *const yes[] = { "yes", "Yes", "true", "True", "on", "On", NULL };
    static const char *const no[] = { "no", "No", "false", "False", "off", "Off", NULL };
    if (n->kind != SPEC_SCALAR || n->style != YAML_PLAIN_SCALAR_STYLE || n->tag)
        return false;
    for (size_t i = 0; yes[i]; i++) {
        if (strcmp(n->value, yes[i]) == 0) {
            *ret = true;
            return true;
        }
        if (strcmp(n->value, no[i]) == 0) {
            *ret = false;
            return true;
        }
    }
    return false;
}

/* Appends MAP's entries as k=v,k2=v2 (PREFIX. before nested names). */
static int add_suboptions(struct spec_ctx *c, const struct spec_node *map, const char *path,
                          const char *prefix, int depth, struct strbuf *sb)
{
    if (depth > 3)
        return spec_err(c, &map->start, path, "sub-options nested deeper than 3 levels");
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const struct spec_node *k = map->kids[i], *v = map->kids[i + 1];
        const char *key;
        int r = spec_get_str(c, k, path, &key);
        if (r < 0)
            return r;
        char sub[200];
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        if (!subkey_ok(key))
            return spec_err(c, &k->start, sub, "invalid virt-install sub-option name");
        char *name = prefix ? xasprintf("%s.%s", prefix, key) : xstrdup(key);
        if (v->kind == SPEC_MAP) {
            r = add_suboptions(c, v, sub, name, depth + 1, sb);
        } else {
            const char *text;
            r = scalar_text(c, v, sub, &text);
            if (r == 0)
                strbuf_addf(sb, "%s%s=%s", sb->len ? "," : "", name, text);
        }
        free(name);
        if (r < 0)
            return r;
    }
    return 0;
}

static int add_opt(struct spec_ctx *c, const struct spec_node *at, const char *path,
                   struct qvm_vm_spec *s, const char *key, char *value)
{
    if (s->nvi_opts == VI_MAX_OPTS) {
        free(value);
        return spec_err(c, &at->start, path, "more than %d virt-install options", VI_MAX_OPTS);
    }
    s->vi_opts = xrealloc(s->vi_opts, (s->nvi_opts + 1) * sizeof *s->vi_opts);
    s->vi_opts[s->nvi_opts].key = xstrdup(key);
    s->vi_opts[s->nvi_opts].value = value;
    s->nvi_opts++;
    return 0;
}

/* One value of option KEY (an item of a sequence, or the value itself). */
static int add_value(struct spec_ctx *c, const struct spec_node *v, const char *path,
                     struct qvm_vm_spec *s, const char *key)
{
    bool b;
    if (spec_is_null(v))
        return add_opt(c, v, path, s, key, NULL);
    if (is_bool(v, &b))
        return b ? add_opt(c, v, path, s, key, NULL) : 0;
    if (v->kind == SPEC_MAP) {
        struct strbuf sb = STRBUF_INIT;
        int r = add_suboptions(c, v, path, NULL, 0, &sb);
        if (r < 0 || sb.len > VI_MAX_VALUE) {
            strbuf_release(&sb);
            return r < 0 ? r : spec_err(c, &v->start, path, "value longer than %d bytes",
                                        VI_MAX_VALUE);
        }
        return add_opt(c, v, path, s, key, strbuf_detach(&sb, NULL));
    }
    const char *text;
    int r = scalar_text(c, v, path, &text);
    return r < 0 ? r : add_opt(c, v, path, s, key, xstrdup(text));
}

int spec_vi_option(struct spec_ctx *c, const struct spec_node *val, const char *path,
                   struct qvm_vm_spec *s)
{
    const struct spec_node *k = c->cur_key;
    const char *key = k ? k->value : "";
    if (!key_ok(key))
        return spec_err(c, k ? &k->start : NULL, path,
                        "not a virt-install option name (lower-case letters, digits and '-')");
    for (size_t i = 0; reserved[i]; i++)
        if (strcmp(key, reserved[i]) == 0)
            return spec_err(c, &k->start, path,
                            "qvm sets virt-install's --%s itself in virt-install mode", key);
    if (val->kind != SPEC_SEQ)
        return add_value(c, val, path, s, key);
    if (val->nkids == 0)
        return spec_err(c, &val->start, path, "an empty list");
    for (size_t i = 0; i < val->nkids; i++) {
        char sub[200];
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        if (val->kids[i]->kind == SPEC_SEQ)
            return spec_err(c, &val->kids[i]->start, sub, "a list inside a list");
        int r = add_value(c, val->kids[i], sub, s, key);
        if (r < 0)
            return r;
    }
    return 0;
}
