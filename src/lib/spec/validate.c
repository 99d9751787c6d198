/* validate.c - the vm document into struct qvm_vm_spec: the keys qvm supports
 * (virt-install's vocabulary), their types and ranges, and the defaults. */

#include "spec_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/names.h"
#include "util/strbuf.h"

/* ---- scalar readers ------------------------------------------------------------ */

#define INT_TAG "tag:yaml.org,2002:int"
#define FLOAT_TAG "tag:yaml.org,2002:float"

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
    /* Ten fraction digits write any whole MiB exactly (1 MiB = 0.0009765625
     * GiB), as qvm resize records sizes; 10^10 GiB-scaled still fits 64 bits. */
    if ((ni == 0 && nf == 0) || total != val->len || ni > 6 || nf > 10)
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
    if (s->disk.target_name)    /* a list entry's name was given too */
        return spec_err(c, &val->start, path, "the disk's name is given twice (name and zvol.name)");
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

/* ---- disk as a list: one image disk and empty data disks ---------------------------- */

static int h_list_disk_name(struct spec_ctx *c, const struct spec_node *val, const char *path,
                            struct qvm_vm_spec *s)
{
    return h_zvol_name(c, val, path, s);
}

static int h_list_disk_boot(struct spec_ctx *c, const struct spec_node *val, const char *path,
                            struct qvm_vm_spec *s)
{
    return get_bool(c, val, path, &s->disk.boot);
}

/* Controllers with a fixed number of ports: q35's AHCI (ide.0-ide.5) takes
 * sata and ide disks, pc's own AHCI sata disks, pc's two IDE channels two
 * disks each. virtio and scsi have room for every disk of a list. */
static int check_ports(struct spec_ctx *c, const struct spec_node *list, const struct qvm_vm_spec *s)
{
    bool q35 = !s->machine || strcmp(s->machine, "pc") != 0;
    size_t sata = 0, ide = 0;
    for (size_t i = 0; i <= s->ndata_disks; i++) {
        const char *bus = i == s->ndata_disks ? s->disk.bus : s->data_disks[i].bus;
        sata += bus && strcmp(bus, "sata") == 0;
        ide += bus && strcmp(bus, "ide") == 0;
    }
    if (q35 && sata + ide > 6)
        return spec_err(c, &list->start, "vm.disk",
                        "%zu disks on bus sata or ide: machine q35 has 6 SATA ports", sata + ide);
    if (!q35 && sata > 6)
        return spec_err(c, &list->start, "vm.disk", "%zu disks on bus sata: at most 6", sata);
    if (!q35 && ide > 4)
        return spec_err(c, &list->start, "vm.disk",
                        "%zu disks on bus ide: machine pc has 4 IDE places", ide);
    return 0;
}

/* Default names, unique names, at most one boot: true (else the first entry
 * boots). NODES are the list's entries, for locations. */
static int check_list(struct spec_ctx *c, const struct spec_node *list, struct qvm_vm_spec *s)
{
    size_t n = s->ndata_disks + 1, k = 0, boots = 0, boot_pos = 0;
    const char *names[QVM_SPEC_MAX_DISKS + 1];
    for (size_t pos = 0; pos < n; pos++) {
        bool image = pos == s->image_disk_pos;
        struct qvm_disk_spec *d = image ? &s->disk : &s->data_disks[k++];
        if (!image && !d->target_name)
            d->target_name = xasprintf("disk%zu", k);
        names[pos] = d->target_name ? d->target_name : "disk0";
        char path[48];
        snprintf(path, sizeof path, "vm.disk[%zu]", pos);
        for (size_t q = 0; q < pos; q++)
            if (strcmp(names[q], names[pos]) == 0)
                return spec_err(c, &list->kids[pos]->start, path,
                                "disk name '%s' is used twice (also vm.disk[%zu]); name the "
                                "disks apart with name:", names[pos], q);
        if (d->boot) {
            if (boots++)
                return spec_err(c, &list->kids[pos]->start, path,
                                "only one disk can have boot: true (also vm.disk[%zu])", boot_pos);
            boot_pos = pos;
        }
        if (!d->bus)
            d->bus = xstrdup("virtio");
        if (!d->cache)
            d->cache = xstrdup("writeback");
    }
    /* The image disk's flag is implied (qvm_spec_image_disk_boots): only
     * data disks record it, so a single mapping stays as it was. */
    if (!boots && s->image_disk_pos != 0)
        s->data_disks[0].boot = true;
    s->disk.boot = false;
    return 0;
}

static int h_disk_list(struct spec_ctx *c, const struct spec_node *val, const char *path,
                       struct qvm_vm_spec *s)
{
    static const struct key_handler tab[] = {
        { "bus", h_disk_bus }, { "size", h_disk_size }, { "cache", h_disk_cache },
        { "pool", h_disk_pool }, { "zvol", h_zvol }, { "name", h_list_disk_name },
        { "boot", h_list_disk_boot }, { NULL, NULL },
    };
    if (val->nkids == 0)
        return spec_err(c, &val->start, path, "expected at least one disk (the image disk, with zvol)");
    if (val->nkids > QVM_SPEC_MAX_DISKS)
        return spec_err(c, &val->kids[QVM_SPEC_MAX_DISKS]->start, path,
                        "too many disks (at most %d)", QVM_SPEC_MAX_DISKS);
    bool have_image = false;
    int r = 0;
    for (size_t i = 0; i < val->nkids && r == 0; i++) {
        const struct spec_node *item = val->kids[i];
        char sub[48];
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        struct qvm_vm_spec one = { 0 };    /* the disk handlers fill one.disk */
        uint64_t seen = 0;
        r = walk_map(c, item, sub, tab, NULL, &one, &seen);
        bool image = seen & (1u << 4);
        if (r == 0 && image && have_image)
            r = spec_err(c, &item->start, sub, "only one disk can have zvol (the image disk, at "
                         "vm.disk[%zu]); the others are empty data disks given by size",
                         s->image_disk_pos);
        if (r == 0 && !image && !(seen & (1u << 1)))
            r = spec_err(c, &item->start, sub, "missing key 'size': a data disk is an empty disk "
                         "of 'size' GiB (the image disk has zvol: {base: IMAGE})");
        if (r == 0 && image) {
            have_image = true;
            s->image_disk_pos = i;
            qvm_disk_spec_release(&s->disk);
            s->disk = one.disk;
            memset(&one.disk, 0, sizeof one.disk);
        } else if (r == 0) {
            s->data_disks = xrealloc(s->data_disks, (s->ndata_disks + 1) * sizeof *s->data_disks);
            s->data_disks[s->ndata_disks++] = one.disk;
            memset(&one.disk, 0, sizeof one.disk);
        }
        qvm_spec_release(&one);
    }
    if (r == 0 && !have_image)
        r = spec_err(c, &val->start, path, "no disk has zvol: one disk of the list must be the "
                     "image disk (zvol: {base: IMAGE})");
    if (r == 0)
        r = check_list(c, val, s);
    return r;
}

static int h_disk(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    if (val->kind == SPEC_SEQ)
        return h_disk_list(c, val, path, s);
    static const struct key_handler tab[] = {
        { "bus", h_disk_bus }, { "size", h_disk_size }, { "cache", h_disk_cache },
        { "pool", h_disk_pool }, { "zvol", h_zvol }, { NULL, NULL },
    };
    uint64_t seen;
    int r = walk_map(c, val, path, tab, NULL, s, &seen);
    return r < 0 ? r : !(seen & (1u << 4)) ? missing(c, val, path, "zvol") : 0;
}

static int h_autostart(struct spec_ctx *c, const struct spec_node *val, const char *path,
                       struct qvm_vm_spec *s)
{
    return get_bool(c, val, path, &s->autostart);
}

static int h_runtime(struct spec_ctx *c, const struct spec_node *val, const char *path,
                     struct qvm_vm_spec *s)
{
    static const char *const choices[] = { "qemu", "libvirt", "virt-install", NULL };
    size_t i;
    int r = get_choice(c, val, path, choices, &i);
    if (r == 0)
        set_str(&s->runtime, choices[i]);
    return r;
}

/* A libvirt connection URI: "qemu:///system", "qemu+ssh://host/system".
 * Checked for shape only; libvirt says whether it can connect. */
static int h_runtime_uri(struct spec_ctx *c, const struct spec_node *val, const char *path,
                         struct qvm_vm_spec *s)
{
    const char *v;
    int r = spec_get_str(c, val, path, &v);
    if (r < 0)
        return r;
    const char *colon = strstr(v, "://");
    if (!colon || colon == v || strlen(v) > 256 ||
        strspn(v, ALNUM "+-.:/_~@%?=&") != strlen(v))
        return spec_err(c, &val->start, path, "expected a libvirt URI such as qemu:///system");
    set_str(&s->runtime_uri, v);
    return 0;
}

static int h_net_type(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const char *const choices[] = { "user", "none", NULL };
    size_t i = 0;
    int r = get_choice(c, val, path, choices, &i);
    c->nic->type = i == 1 ? QVM_NET_NONE : QVM_NET_USER;
    return r;
}

static int h_net_model(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    static const char *const choices[] = { "virtio", "e1000", "rtl8139", NULL };
    size_t i;
    int r = get_choice(c, val, path, choices, &i);
    if (r == 0)
        set_str(&c->nic->model, choices[i]);
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
    set_str(&c->nic->mac, lower);
    return 0;
}

static int h_net_ssh_port(struct spec_ctx *c, const struct spec_node *val, const char *path,
                          struct qvm_vm_spec *s)
{
    c->ssh_port_node = val;
    if (val->kind == SPEC_SCALAR && val->style == YAML_PLAIN_SCALAR_STYLE && !val->tag) {
        if (strcmp(val->value, "auto") == 0) {
            c->nic->ssh_port = 0;
            return 0;
        }
        if (strcmp(val->value, "none") == 0) {
            c->nic->ssh_port = -1;
            return 0;
        }
    }
    uint64_t v;
    int r = get_uint(c, val, path, "auto, none or a port number (1024 to 65535)", 1024, 65535, &v);
    if (r == 0)
        c->nic->ssh_port = (int)v;
    return r;
}

/* network: network=NAME / bridge=NAME (virt-install's spelling), or the
 * mapping keys network: NAME / bridge: NAME: the libvirt runtime's. A
 * libvirt network name or a Linux interface name (15 bytes at most). */
static int set_net_source(struct spec_ctx *c, const struct spec_node *val, const char *path,
                          struct qvm_vm_spec *s, enum qvm_net_type type, const char *name)
{
    bool bridge = type == QVM_NET_BRIDGE;
    if (!chars_in(name, ALNUM "._-", bridge ? 15 : 64))
        return spec_err(c, &val->start, path, bridge ?
                        "invalid bridge name: 1 to 15 letters, digits, '.', '_' or '-'" :
                        "invalid libvirt network name: 1 to 64 letters, digits, '.', '_' or '-'");
    if (c->nic->source)
        return spec_err(c, &val->start, path, "give one of network and bridge, not both");
    c->nic->type = type;
    set_str(&c->nic->source, name);
    return 0;
}

static int h_net_network(struct spec_ctx *c, const struct spec_node *val, const char *path,
                         struct qvm_vm_spec *s)
{
    const char *v;
    int r = spec_get_str(c, val, path, &v);
    return r < 0 ? r : set_net_source(c, val, path, s, QVM_NET_NETWORK, v);
}

static int h_net_bridge(struct spec_ctx *c, const struct spec_node *val, const char *path,
                        struct qvm_vm_spec *s)
{
    const char *v;
    int r = spec_get_str(c, val, path, &v);
    return r < 0 ? r : set_net_source(c, val, path, s, QVM_NET_BRIDGE, v);
}

static int h_net_scalar(struct spec_ctx *c, const struct spec_node *val, const char *path,
                        struct qvm_vm_spec *s)
{
    if (val->kind == SPEC_SCALAR && strncmp(val->value, "network=", 8) == 0)
        return set_net_source(c, val, path, s, QVM_NET_NETWORK, val->value + 8);
    if (val->kind == SPEC_SCALAR && strncmp(val->value, "bridge=", 7) == 0)
        return set_net_source(c, val, path, s, QVM_NET_BRIDGE, val->value + 7);
    return h_net_type(c, val, path, s);
}

/* One NIC: a scalar (user, none, network=NAME, bridge=NAME) or a mapping.
 * FIRST: only the first NIC may forward SSH (to its user network). */
static int one_nic(struct spec_ctx *c, const struct spec_node *val, const char *path,
                   struct qvm_vm_spec *s, bool first)
{
    static const struct key_handler tab[] = {
        { "type", h_net_type }, { "model", h_net_model }, { "mac", h_net_mac },
        { "ssh-port", h_net_ssh_port }, { "network", h_net_network }, { "bridge", h_net_bridge },
        { NULL, NULL },
    };
    uint64_t seen = 0;
    c->ssh_port_node = NULL;
    int r = val->kind == SPEC_MAP ? walk_map(c, val, path, tab, NULL, s, &seen)
                                  : h_net_scalar(c, val, path, s);
    if (r < 0)
        return r;
    struct qvm_net_spec *n = c->nic;
    char sp[160];
    snprintf(sp, sizeof sp, "%s.ssh-port", path);
    if (n->source && (seen & 1))
        return spec_err(c, &val->start, path, "type and %s exclude each other",
                        n->type == QVM_NET_BRIDGE ? "bridge" : "network");
    if (n->source || n->type == QVM_NET_NONE) {
        if (c->ssh_port_node && n->ssh_port > 0)
            return spec_err(c, &c->ssh_port_node->start, sp,
                            "a forwarded SSH port needs network type user");
        n->ssh_port = -1;
    }
    if (!first) {
        if (c->ssh_port_node && n->ssh_port >= 0)
            return spec_err(c, &c->ssh_port_node->start, sp,
                            "only the first NIC forwards SSH");
        n->ssh_port = -1;
        if (n->type == QVM_NET_NONE)
            return spec_err(c, &val->start, path, "'none' is only for a VM's only NIC");
    }
    return 0;
}

/* network: one NIC (a scalar or a mapping), or a list of them. */
static int h_network(struct spec_ctx *c, const struct spec_node *val, const char *path, struct qvm_vm_spec *s)
{
    if (val->kind != SPEC_SEQ) {
        c->nic = &s->net;
        return one_nic(c, val, path, s, true);
    }
    if (val->nkids == 0)
        return spec_err(c, &val->start, path, "an empty list: give at least one NIC, or none");
    if (val->nkids > QVM_SPEC_MAX_NICS)
        return spec_err(c, &val->start, path, "%zu NICs: at most %d", val->nkids, QVM_SPEC_MAX_NICS);
    for (size_t i = 0; i < val->nkids; i++) {
        char sub[160];
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        if (i > 0)
            s->nextra_nets = i;
        c->nic = qvm_spec_nic_mut(s, i);
        int r = one_nic(c, val->kids[i], sub, s, i == 0);
        if (r < 0)
            return r;
        if (i > 0 && s->net.type == QVM_NET_NONE)
            return spec_err(c, &val->kids[0]->start, sub, "'none' is only for a VM's only NIC");
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
    { "autostart", h_autostart },   /* after the keys spec_vm checks by index */
    { "runtime", h_runtime },
    { "runtime-uri", h_runtime_uri },
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

/* runtime: virt-install takes the keys qvm does not model (passthrough.c),
 * wherever in the document it is written. */
static bool vi_mode(const struct spec_node *root)
{
    for (size_t i = 0; root->kind == SPEC_MAP && i + 1 < root->nkids; i += 2) {
        const struct spec_node *k = root->kids[i], *v = root->kids[i + 1];
        if (k->kind == SPEC_SCALAR && strcmp(k->value, "runtime") == 0 &&
            v->kind == SPEC_SCALAR && strcmp(v->value, "virt-install") == 0)
            return true;
    }
    return false;
}

static const struct spec_node *disk_node(const struct spec_node *root)
{
    for (size_t i = 0; i + 1 < root->nkids; i += 2)
        if (root->kids[i]->kind == SPEC_SCALAR && strcmp(root->kids[i]->value, "disk") == 0)
            return root->kids[i + 1];
    return root;
}

int spec_vm(struct spec_ctx *c, const struct spec_node *root, struct qvm_vm_spec *s)
{
    uint64_t seen;
    int r = no_aliases(c, root, "vm");
    if (r == 0)
        r = walk_map(c, root, "vm", vm_keys, vi_mode(root) ? spec_vi_option : NULL, s, &seen);
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
    if (s->ndata_disks && (r = check_ports(c, disk_node(root), s)) < 0)
        return r;
    for (size_t i = 0; i < qvm_spec_nic_count(s); i++)
        if (!qvm_spec_nic(s, i)->model)
            qvm_spec_nic_mut(s, i)->model = xstrdup("virtio");
    return 0;
}
