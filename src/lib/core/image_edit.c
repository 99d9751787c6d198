#include "core/image_edit.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/image.h"
#include "core/lifecycle.h"
#include "util/fsutil.h"
#include "util/names.h"
#include "util/strbuf.h"
#include "util/uuid.h"

#define KEY_MAX 16384

/* One OpenSSH public key line from FILE, checked so that it can be put in
 * a single-quoted YAML scalar as is. */
static int read_key(const char *file, char **ret, struct qvm_error *err)
{
    char *data;
    size_t len;
    int r = qvm_read_file(file, KEY_MAX, &data, &len, err);
    if (r < 0)
        return r;
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
        data[--len] = '\0';
    bool ok = len > 0 && (strncmp(data, "ssh-", 4) == 0 || strncmp(data, "ecdsa-", 6) == 0 ||
                          strncmp(data, "sk-", 3) == 0);
    for (size_t i = 0; ok && i < len; i++)
        if ((unsigned char)data[i] < 0x20 || data[i] == '\'' || data[i] == 0x7f)
            ok = false;
    if (!ok) {
        free(data);
        return qvm_err(err, EINVAL, "%s is not one OpenSSH public key line", file);
    }
    *ret = data;
    return 0;
}

/* The invoking user's own public keys, so "qvm ssh" works at once. */
static void add_home_keys(struct strbuf *sb, size_t *n)
{
    const char *home = getenv("HOME");
    if (!home || home[0] != '/')
        return;
    char *dir = xasprintf("%s/.ssh", home);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, "id_", 3) != 0 || l < 8 || strcmp(de->d_name + l - 4, ".pub"))
            continue;
        char *path = xasprintf("%s/%s", dir, de->d_name), *key;
        if (read_key(path, &key, NULL) == 0) {
            strbuf_addf(sb, "  - '%s'\n", key);
            (*n)++;
            free(key);
        }
        free(path);
    }
    if (d)
        closedir(d);
    free(dir);
}

/* The newest version that can be edited, or the one asked for. */
static int pick_version(struct qvm_ctx *ctx, const char *image,
                        const struct qvm_image_edit_opts *opts, char **ret, struct qvm_error *err)
{
    struct qvm_image img;
    int r = qvm_image_load(ctx, opts->pool, image, &img, err);
    if (r < 0)
        return r;
    const struct qvm_image_version *found = NULL;
    for (size_t i = 0; i < img.nversions; i++) {
        const struct qvm_image_version *v = &img.versions[i];
        if (opts->version ? !strcmp(v->name, opts->version)
                          : !v->removed && strcmp(v->state, "retired"))
            found = v;
    }
    if (!found)
        r = opts->version ? qvm_err(err, ENOENT, "image '%s' has no version %s", image,
                                    opts->version)
                          : qvm_err(err, ENOENT, "image '%s' has no version that is not retired",
                                    image);
    else if (found->removed || !strcmp(found->state, "retired"))
        r = qvm_err(err, EPERM, "image '%s@%s' is retired; edit a newer version", image,
                    found->name);
    else
        *ret = xasprintf("%s@%s", image, found->name);
    qvm_image_release(&img);
    return r;
}

int qvm_image_edit(struct qvm_ctx *ctx, const char *image, const struct qvm_image_edit_opts *opts,
                   struct qvm_error *err)
{
    int r = qvm_name_check("image", image, err);
    if (r < 0)
        return r;
    char *vm = opts->vm ? xstrdup(opts->vm) : xasprintf("%s-edit", image);
    r = qvm_name_check("VM", vm, err);
    char *base = NULL;
    if (r == 0)
        r = pick_version(ctx, image, opts, &base, err);
    if (r < 0) {
        free(vm);
        return r;
    }
    struct strbuf keys = STRBUF_INIT;
    size_t nkeys = 0;
    for (size_t i = 0; r == 0 && opts->ssh_keys && opts->ssh_keys[i]; i++) {
        char *key;
        r = read_key(opts->ssh_keys[i], &key, err);
        if (r == 0) {
            strbuf_addf(&keys, "  - '%s'\n", key);
            nkeys++;
            free(key);
        }
    }
    if (r == 0 && !opts->no_ssh_keys)
        add_home_keys(&keys, &nkeys);

    char *uuid = qvm_uuid_new();
    struct strbuf sb = STRBUF_INIT;
    strbuf_addf(&sb, "# Written by 'qvm image edit %s': the working VM of the administration\n"
                "# step. Change it, stop it, then: qvm image commit %s --from %s\n"
                "qvm: vm\nname: %s\nmemory: %u\nvcpus: %u\ngraphics: none\nnetwork: user\n"
                "disk:\n  zvol:\n    base: %s\n---\nqvm: user-data\nhostname: %s\n",
                image, image, vm, vm, opts->memory_mib ? opts->memory_mib : 1024,
                opts->vcpus ? opts->vcpus : 1, base, vm);
    if (nkeys)
        strbuf_addf(&sb, "ssh_authorized_keys:\n%s", keys.buf);
    strbuf_addf(&sb, "---\nqvm: meta-data\ninstance-id: %s-%.8s\nlocal-hostname: %s\n", vm, uuid,
                vm);
    char *file = xasprintf("%s/image-edit-%s.yaml", ctx->paths.run_dir, vm);
    if (r == 0)
        r = qvm_mkdir_p(ctx->paths.run_dir, 0755, err);
    if (r == 0)
        r = qvm_write_file_atomic(file, sb.buf, sb.len, 0600, err);
    if (r == 0) {
        qvm_say(ctx->ui, "Editing image %s: working VM '%s'%s", base, vm,
                nkeys ? "" : " (no ssh key found: use qvm console, or pass --ssh-key)");
        struct qvm_up_opts up = { .pool = opts->pool, .no_start = opts->no_start,
                                  .any_state = true };
        r = qvm_up(ctx, file, &up, err);
        unlink(file);
    }
    if (r == 0) {
        qvm_say(ctx->ui, "When done, stop it and make the next version:");
        qvm_say(ctx->ui, "  qvm stop %s && qvm image commit %s --from %s", vm, image, vm);
        qvm_say(ctx->ui, "(first 'cloud-init clean --logs' in the guest, so VMs of the new "
                "version start from a clean cloud-init state)");
    }
    free(file);
    strbuf_release(&sb);
    strbuf_release(&keys);
    free(uuid);
    free(base);
    free(vm);
    return r;
}
