/* ssh.c - who to log in as and with which key, read from the cloud-config
 * the VM was provisioned with (its bundle's vm.yaml), the way cloud-init
 * reads it: `users` (with "default" for the distribution's default user),
 * each user's ssh_authorized_keys, the top-level ssh_authorized_keys and
 * meta-data public-keys for the default user. */
#include "ssh.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#include "core/net.h"
#include "core/monitor.h"
#include "core/vm.h"
#include "spec/spec.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#define MAX_USERS 64
#define MAX_KEYS 256
#define PUBKEY_MAX (64u * 1024)

const char *qvm_ssh_distro_user(const char *name)
{
    /* The default_user of each distribution's own cloud images. */
    static const struct { const char *prefix, *user; } table[] = {
        { "debian", "debian" },      { "ubuntu", "ubuntu" },     { "fedora", "fedora" },
        { "centos-stream", "cloud-user" }, { "centos", "centos" }, { "rhel", "cloud-user" },
        { "rocky", "rocky" },        { "alma", "almalinux" },    { "arch", "arch" },
        { "alpine", "alpine" },      { "freebsd", "freebsd" },
    };
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strncasecmp(name, table[i].prefix, strlen(table[i].prefix)) == 0)
            return table[i].user;
    return NULL;
}

/* ---- the cloud-config, as a libyaml document ------------------------------- */

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool load_yaml(const char *text, yaml_document_t *doc)
{
    if (!text)
        return false;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return false;
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    bool ok = yaml_parser_load(&p, doc);
    yaml_parser_delete(&p);
    if (ok && !yaml_document_get_root_node(doc)) {
        yaml_document_delete(doc);
        ok = false;
    }
    return ok;
}

struct user {
    char *name;             /* NULL: the default user, name unknown */
    char **keys;
    size_t nkeys;
};

struct users {
    struct user v[MAX_USERS];
    size_t n;
};

static void add_key(struct user *u, const char *key)
{
    if (key && *key && u->nkeys < MAX_KEYS) {
        u->keys = xrealloc(u->keys, (u->nkeys + 1) * sizeof *u->keys);
        u->keys[u->nkeys++] = xstrdup(key);
    }
}

/* A key list: a sequence of keys, one key, or (meta-data) a mapping of them. */
static void add_keys(yaml_document_t *d, yaml_node_t *n, struct user *u)
{
    if (!n)
        return;
    if (n->type == YAML_SCALAR_NODE) {
        add_key(u, scalar(n));
    } else if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++)
            add_key(u, scalar(yaml_document_get_node(d, *i)));
    } else if (n->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
            add_key(u, scalar(yaml_document_get_node(d, p->value)));
    }
}

static struct user *add_user(struct users *us, const char *name)
{
    if (us->n == MAX_USERS)
        return NULL;
    struct user *u = &us->v[us->n++];
    *u = (struct user){ .name = name ? xstrdup(name) : NULL };
    return u;
}

static void trim_copy(const char *s, size_t len, char *buf, size_t size)
{
    while (len && isspace((unsigned char)*s))
        s++, len--;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    snprintf(buf, size, "%.*s", (int)len, s);
}

/* The users the cloud-config creates, in its order, with their keys. */
static void read_users(const char *user_data, const char *meta_data, const char *fallback_default,
                       struct users *us)
{
    yaml_document_t ud, md;
    bool have_ud = load_yaml(user_data, &ud), have_md = load_yaml(meta_data, &md);
    yaml_node_t *root = have_ud ? yaml_document_get_root_node(&ud) : NULL;

    const char *def = scalar(map_get(&ud, map_get(&ud, map_get(&ud, root, "system_info"),
                                                  "default_user"), "name"));
    yaml_node_t *user = have_ud ? map_get(&ud, root, "user") : NULL;
    if (!def)
        def = scalar(user) ? scalar(user) : scalar(map_get(&ud, user, "name"));
    if (!def)
        def = fallback_default;

    struct user deflt = { .name = def ? xstrdup(def) : NULL };
    if (have_ud)
        add_keys(&ud, map_get(&ud, root, "ssh_authorized_keys"), &deflt);
    if (have_md)
        add_keys(&md, map_get(&md, yaml_document_get_root_node(&md), "public-keys"), &deflt);

    yaml_node_t *list = have_ud ? map_get(&ud, root, "users") : NULL;
    bool default_used = false;
    if (!list) {
        us->v[us->n++] = deflt;
        default_used = true;
    } else if (list->type == YAML_SCALAR_NODE) {
        /* users: "default, alice" */
        const char *s = scalar(list);
        while (*s) {
            size_t len = strcspn(s, ",");
            char name[256];
            trim_copy(s, len, name, sizeof name);
            if (strcmp(name, "default") == 0 && !default_used && us->n < MAX_USERS) {
                us->v[us->n++] = deflt;
                default_used = true;
            } else if (name[0]) {
                add_user(us, name);
            }
            s += len + (s[len] == ',');
        }
    } else if (list->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *i = list->data.sequence.items.start;
             i < list->data.sequence.items.top; i++) {
            yaml_node_t *item = yaml_document_get_node(&ud, *i);
            const char *name = scalar(item) ? scalar(item) : scalar(map_get(&ud, item, "name"));
            if (name && strcmp(name, "default") == 0) {
                if (!default_used && us->n < MAX_USERS) {
                    us->v[us->n++] = deflt;
                    default_used = true;
                }
                continue;
            }
            struct user *u = name ? add_user(us, name) : NULL;
            if (u && item->type == YAML_MAPPING_NODE) {
                add_keys(&ud, map_get(&ud, item, "ssh_authorized_keys"), u);
                add_keys(&ud, map_get(&ud, item, "ssh-authorized-keys"), u);
            }
        }
    }
    if (!default_used) {
        free(deflt.name);
        for (size_t k = 0; k < deflt.nkeys; k++)
            free(deflt.keys[k]);
        free(deflt.keys);
    }
    if (have_ud)
        yaml_document_delete(&ud);
    if (have_md)
        yaml_document_delete(&md);
}

static void users_release(struct users *us)
{
    for (size_t i = 0; i < us->n; i++) {
        free(us->v[i].name);
        for (size_t k = 0; k < us->v[i].nkeys; k++)
            free(us->v[i].keys[k]);
        free(us->v[i].keys);
    }
    us->n = 0;
}

/* ---- the local keys ----------------------------------------------------------- */

struct local_key {
    char *priv;             /* HOME/.ssh/id_xxx */
    char *type, *blob;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* HOME/.ssh/id_*.pub whose private half exists, in name order. */
static size_t local_keys(const char *home, struct local_key **ret)
{
    *ret = NULL;
    char *dir = xasprintf("%s/.ssh", home);
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t nn = 0, n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "id_", 3) == 0 && len > 4 &&
            strcmp(de->d_name + len - 4, ".pub") == 0 && nn < MAX_KEYS) {
            names = xrealloc(names, (nn + 1) * sizeof *names);
            names[nn++] = xstrdup(de->d_name);
        }
    }
    if (d)
        closedir(d);
    if (nn)
        qsort(names, nn, sizeof *names, cmp_str);
    for (size_t i = 0; i < nn; i++) {
        char *pub = xasprintf("%s/%s", dir, names[i]);
        char *priv = xasprintf("%.*s", (int)(strlen(pub) - 4), pub);
        char *text = NULL;
        size_t len;
        char type[64], blob[16384];
        if (access(priv, R_OK) == 0 && qvm_read_file(pub, PUBKEY_MAX, &text, &len, NULL) == 0 &&
            sscanf(text, "%63s %16383s", type, blob) == 2) {
            *ret = xrealloc(*ret, (n + 1) * sizeof **ret);
            (*ret)[n++] = (struct local_key){ .priv = priv, .type = xstrdup(type),
                                             .blob = xstrdup(blob) };
            priv = NULL;
        }
        free(text);
        free(priv);
        free(pub);
        free(names[i]);
    }
    free(names);
    free(dir);
    return n;
}

/* An authorized_keys line ("[options] TYPE BLOB [comment]") holds KEY if
 * some word is its type and the next its blob. */
static bool key_matches(const char *line, const struct local_key *k)
{
    char *copy = xstrdup(line), *save = NULL, *prev = NULL;
    bool match = false;
    for (char *w = strtok_r(copy, " \t\r\n", &save); w && !match; w = strtok_r(NULL, " \t\r\n", &save)) {
        match = prev && strcmp(prev, k->type) == 0 && strcmp(w, k->blob) == 0;
        prev = w;
    }
    free(copy);
    return match;
}

/* ---- the command ---------------------------------------------------------------- */

static void push(char ***argv, size_t *n, const char *s)
{
    *argv = xrealloc(*argv, (*n + 2) * sizeof **argv);
    (*argv)[(*n)++] = xstrdup(s);
    (*argv)[*n] = NULL;
}

int qvm_ssh_target(struct qvm_ctx *ctx, const char *name, const char *user, const char *home,
                   const char *const *extra, struct qvm_ssh_target *ret, struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    struct qvm_vm vm;
    int r = qvm_vm_load(ctx, name, &vm, err);
    if (r < 0)
        return r;
    r = qvm_vm_running_pid(&vm, NULL, err);
    /* Without a forwarded port: the address a qvm network leased to it. */
    char host[16] = "127.0.0.1";
    bool leased = false;
    for (size_t i = 0; r == 0 && vm.ssh_port <= 0 && !leased && i < qvm_spec_nic_count(&vm.spec); i++) {
        const struct qvm_net_spec *nic = qvm_spec_nic(&vm.spec, i);
        struct qvm_network n;
        if (nic->type == QVM_NET_NETWORK && qvm_net_load(ctx, nic->source, &n, NULL) == 0) {
            leased = qvm_net_lease_of(&n, name, host);
            qvm_net_release(&n);
        }
    }
    if (r == 0 && vm.ssh_port <= 0 && !leased)
        r = qvm_err(err, ENOENT, "VM '%s' has no forwarded SSH port and no address on a qvm "
                    "network (its network is 'none' or a bridge, or its ssh-port 'none')", name);
    if (r < 0) {
        qvm_vm_release(&vm);
        return r;
    }

    /* The qvm file as it was provisioned; a bundle without one (brought in
     * by hand) still gets the image's default user. */
    struct qvm_vm_spec spec = { 0 };
    char *yaml = xasprintf("%s/vm.yaml", vm.bundle_dir);
    bool have_spec = qvm_spec_load(yaml, &spec, NULL) == 0;
    free(yaml);
    const char *distro = qvm_ssh_distro_user(vm.spec.os_variant);
    if (!distro)
        distro = qvm_ssh_distro_user(vm.image);
    struct users us = { 0 };
    read_users(have_spec ? spec.user_data : NULL, have_spec ? spec.meta_data : NULL, distro, &us);
    if (have_spec)
        qvm_spec_release(&spec);

    struct local_key *lk;
    size_t nlk = local_keys(home, &lk);
    const struct user *pick = NULL;
    const struct local_key *key = NULL;
    for (size_t i = 0; i < us.n && !key; i++) {
        const struct user *u = &us.v[i];
        if (!u->name || (user && strcmp(u->name, user) != 0))
            continue;
        for (size_t k = 0; k < u->nkeys && !key; k++)
            for (size_t l = 0; l < nlk && !key; l++)
                if (key_matches(u->keys[k], &lk[l])) {
                    pick = u;
                    key = &lk[l];
                }
    }
    for (size_t i = 0; i < us.n && !pick; i++)
        if (us.v[i].name && us.v[i].nkeys && (!user || strcmp(us.v[i].name, user) == 0))
            pick = &us.v[i];
    for (size_t i = 0; i < us.n && !pick && !user; i++)
        if (us.v[i].name)
            pick = &us.v[i];

    if (!user && !pick) {
        r = qvm_err(err, ENOENT, "cannot tell which user to log into VM '%s' as: its qvm file "
                    "names none and the default user of image '%s' is not known; "
                    "give one with --user", name, vm.image ? vm.image : "?");
    } else {
        ret->user = xstrdup(user ? user : pick->name);
        ret->port = vm.ssh_port > 0 ? vm.ssh_port : 22;
        ret->known_hosts = xasprintf("%s/known_hosts", vm.run_dir);
        if (key)
            ret->key = xstrdup(key->priv);
        else if (pick && pick->nkeys)
            ret->note = xasprintf("none of the keys the qvm file installs for '%s' matches "
                                  "%s/.ssh/id_*.pub; ssh uses its own defaults", ret->user, home);
        else
            ret->note = xasprintf("the qvm file installs no SSH key for '%s'", ret->user);
        char **argv = NULL;
        size_t n = 0;
        char port[16];
        snprintf(port, sizeof port, "%d", ret->port);
        push(&argv, &n, "ssh");
        push(&argv, &n, "-p");
        push(&argv, &n, port);
        push(&argv, &n, "-l");
        push(&argv, &n, ret->user);
        if (ret->key) {
            push(&argv, &n, "-i");
            push(&argv, &n, ret->key);
            push(&argv, &n, "-o");
            push(&argv, &n, "IdentitiesOnly=yes");
        }
        /* A throwaway VM's host key belongs with the VM, not in the
         * user's known_hosts, where a re-provisioned VM on the same port
         * would trip the "host key changed" alarm. */
        char *kh = xasprintf("UserKnownHostsFile=%s", ret->known_hosts);
        push(&argv, &n, "-o");
        push(&argv, &n, kh);
        free(kh);
        push(&argv, &n, "-o");
        push(&argv, &n, "StrictHostKeyChecking=accept-new");
        push(&argv, &n, host);
        for (size_t i = 0; extra && extra[i]; i++)
            push(&argv, &n, extra[i]);
        ret->argv = argv;
    }
    for (size_t l = 0; l < nlk; l++) {
        free(lk[l].priv);
        free(lk[l].type);
        free(lk[l].blob);
    }
    free(lk);
    users_release(&us);
    qvm_vm_release(&vm);
    return r;
}

void qvm_ssh_target_release(struct qvm_ssh_target *t)
{
    if (!t)
        return;
    free(t->user);
    free(t->key);
    free(t->known_hosts);
    free(t->note);
    for (size_t i = 0; t->argv && t->argv[i]; i++)
        free(t->argv[i]);
    free(t->argv);
    memset(t, 0, sizeof *t);
}
