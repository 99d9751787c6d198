/* fuzz_spec.c - libFuzzer target for the qvm file parser.
 *
 * Beyond "no crash, no leak", it checks what the parser promises. On
 * success, each cloud-init text qvm cut out of the file must read back as
 * the very same YAML as the original document without its qvm entry: same
 * nodes, values, tags, anchors and plain/quoted-ness (layout may differ).
 * meta-data may have instance-id and local-hostname appended. Every failure
 * must carry a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "spec/spec.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void add_field(struct strbuf *sb, const yaml_char_t *s, size_t len)
{
    strbuf_addf(sb, "%zu:", len);
    if (len)
        strbuf_add(sb, s, len);
}

static void add_str(struct strbuf *sb, const yaml_char_t *s)
{
    add_field(sb, s, s ? strlen((const char *)s) : 0);
}

/* Would V, written plain, resolve to something other than a string (YAML
 * 1.1 null, bool, number)? Only then does plain against quoted matter: the
 * emitter may quote a plain scalar it cannot write plain, such as "-". */
static bool resolves_special(const char *v, size_t len)
{
    static const char *const words[] = { "~", "null", "y", "n", "yes", "no", "true", "false", "on", "off" };
    if (len == 0)
        return true;
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strcasecmp(v, words[i]) == 0)
            return true;
    for (size_t k = 0; k < len; k++)
        if (v[k] <= ' ' || v[k] > '~')
            return false;   /* no YAML 1.1 number has spaces or non-ASCII */
    size_t i = (v[0] == '+' || v[0] == '-') ? 1 : 0;
    if (i < len && v[i] >= '0' && v[i] <= '9')
        return true;
    if (i >= len || v[i] != '.')
        return false;
    i++;
    return i < len && ((v[i] >= '0' && v[i] <= '9') || strncasecmp(v + i, "inf", 3) == 0 ||
                       strncasecmp(v + i, "nan", 3) == 0);
}

/* One line per node event; "qvm: KIND" at the top of each document is
 * dropped and KIND returned in kinds[] (for up to 16 documents). */
static int serialize(const char *text, size_t len, struct strbuf docs[16], char kinds[16][32])
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        abort();
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int ndocs = -1, depth = 0, skip = 0;
    bool at_key = false;    /* the next node at depth 1 is a key */
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            yaml_parser_delete(&p);
            return -1;
        }
        yaml_event_type_t t = ev.type;
        if (t == YAML_DOCUMENT_START_EVENT) {
            if (++ndocs >= 16)
                abort();
            strbuf_init(&docs[ndocs]);
            kinds[ndocs][0] = '\0';
        }
        bool node = t == YAML_SCALAR_EVENT || t == YAML_ALIAS_EVENT || t == YAML_SEQUENCE_START_EVENT ||
                    t == YAML_MAPPING_START_EVENT;
        bool node_end = t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT;
        if (node && depth == 1 && at_key && t == YAML_SCALAR_EVENT && !kinds[ndocs][0] &&
            strcmp((const char *)ev.data.scalar.value, "qvm") == 0)
            skip = 2;   /* the key and its (scalar) value */
        if (skip) {
            if (skip == 1 && t == YAML_SCALAR_EVENT)
                snprintf(kinds[ndocs], 32, "%s", (const char *)ev.data.scalar.value);
            skip--;
        } else if (node || node_end) {
            struct strbuf *sb = &docs[ndocs];
            strbuf_addch(sb, "?SEAM{}[]"[t == YAML_SCALAR_EVENT ? 1 : t == YAML_ALIAS_EVENT ? 3
                                         : t == YAML_MAPPING_START_EVENT ? 5 : t == YAML_MAPPING_END_EVENT ? 6
                                         : t == YAML_SEQUENCE_START_EVENT ? 7 : 8]);
            if (t == YAML_SCALAR_EVENT) {
                add_str(sb, ev.data.scalar.anchor);
                const char *v = (const char *)ev.data.scalar.value;
                size_t vlen = ev.data.scalar.length;
                bool plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                /* "!" on a scalar means nothing to PyYAML; qvm may drop it. */
                const yaml_char_t *tag = ev.data.scalar.tag;
                if (tag && strcmp((const char *)tag, "!") == 0)
                    tag = NULL;
                if (plain && vlen == 0 && !tag)
                    v = "~", vlen = 1;      /* the same null */
                add_str(sb, tag);
                /* With a tag, the tag and not the style decides the type. */
                strbuf_addch(sb, tag || !resolves_special(v, vlen) ? 's' : plain ? 'p' : 'q');
                add_field(sb, (const yaml_char_t *)v, vlen);
            } else if (t == YAML_ALIAS_EVENT) {
                add_str(sb, ev.data.alias.anchor);
            } else if (t == YAML_MAPPING_START_EVENT) {
                add_str(sb, ev.data.mapping_start.anchor);
                add_str(sb, ev.data.mapping_start.implicit ? NULL : ev.data.mapping_start.tag);
            } else if (t == YAML_SEQUENCE_START_EVENT) {
                add_str(sb, ev.data.sequence_start.anchor);
                add_str(sb, ev.data.sequence_start.implicit ? NULL : ev.data.sequence_start.tag);
            }
            strbuf_addch(sb, '\n');
        }
        if (depth == 1 && node)
            at_key = !at_key;
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
            depth++;
            if (depth == 1)
                at_key = true;
        }
        if (node_end)
            depth--;
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&p);
    return ndocs + 1;
}

static void release_docs(struct strbuf *docs, int n)
{
    for (int i = 0; i < n; i++)
        strbuf_release(&docs[i]);
}

/* TEXT (qvm's output) must serialize as WANT; with PREFIX_ONLY, WANT minus
 * its closing "}" must be a prefix (meta-data's appended keys). */
static void check_same(const char *text, const struct strbuf *want, bool prefix_only)
{
    struct strbuf got[16];
    char kinds[16][32];
    int n = serialize(text, strlen(text), got, kinds);
    if (n < 0 || n > 1)
        abort();    /* not YAML, or not one document */
    const char *g = n ? got[0].buf : "";
    size_t glen = n ? got[0].len : 0;
    /* An empty document where an empty mapping was: both mean "nothing". */
    bool empty_map = want->len >= 4 && strcmp(want->buf + want->len - 2, "}\n") == 0 &&
                     want->buf[0] == '{' && strchr(want->buf, '\n') == want->buf + want->len - 3;
    if (glen == 0 && empty_map) {
        release_docs(got, n);
        return;
    }
    size_t cmp = prefix_only ? want->len - 2 : want->len;
    if (glen < cmp || memcmp(g, want->buf, cmp) != 0 || (!prefix_only && glen != cmp))
        abort();    /* the cut changed the document */
    release_docs(got, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qvm_vm_spec spec;
    struct qvm_error err = { 0 };
    if (qvm_spec_parse("fuzz.yaml", (const char *)data, size, &spec, &err) < 0) {
        if (err.code == 0 || err.msg[0] == '\0')
            abort();    /* every failure carries a message */
        return 0;
    }
    if (!spec.name || !spec.disk.base || !spec.instance_id || !spec.hostname || !spec.meta_data ||
        !spec.user_data || strncmp(spec.user_data, "#cloud-config", 13) != 0)
        abort();

    struct strbuf orig[16];
    char kinds[16][32];
    int n = serialize((const char *)data, size, orig, kinds);
    if (n < 3)
        abort();    /* qvm accepted what libyaml refuses */
    for (int i = 0; i < n; i++) {
        if (strcmp(kinds[i], "user-data") == 0)
            check_same(spec.user_data, &orig[i], false);
        else if (strcmp(kinds[i], "meta-data") == 0 || strcmp(kinds[i], "metadata") == 0)
            check_same(spec.meta_data, &orig[i], true);
        else if (strcmp(kinds[i], "network-config") == 0)
            check_same(spec.network_config, &orig[i], false);
    }
    release_docs(orig, n);
    qvm_spec_release(&spec);
    qvm_spec_release(&spec);    /* release of a zeroed struct is allowed */
    return 0;
}
