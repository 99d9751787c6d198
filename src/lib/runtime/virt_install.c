/* virt_install.c - virt-install's argv for qvm's compatibility mode (see
 * virt_install.h). The devices are domain_xml.c's, spelled as virt-install
 * options, so the two libvirt paths give the guest the same hardware. */
#include "virt_install.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/qemu.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

struct list {
    char **v;
    size_t n, alloc;
};

static void push_owned(struct list *l, char *s)
{
    if (l->n + 2 > l->alloc) {
        l->alloc = l->alloc ? l->alloc * 2 : 64;
        l->v = xrealloc(l->v, l->alloc * sizeof *l->v);
    }
    l->v[l->n++] = s;
    l->v[l->n] = NULL;
}

static void push(struct list *l, const char *s)
{
    push_owned(l, xstrdup(s));
}

__attribute__((format(printf, 2, 3)))
static void pushf(struct list *l, const char *fmt, ...)
{
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vaddf(&sb, fmt, ap);
    va_end(ap);
    push_owned(l, strbuf_detach(&sb, NULL));
}

static bool streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* virt-install splits sub-options on ',' and reads quotes; qvm does not
 * quote, so a path holding either is refused rather than mangled. */
static bool option_safe(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == ',' || *p == '"' || *p == '\'')
            return false;
    return true;
}

static const char *cpu_option(const char *model, bool kvm, char *buf, size_t size)
{
    if (!model || streq(model, "host-passthrough") || streq(model, "host") ||
        streq(model, "host-model") || streq(model, "max")) {
        const char *mode = !kvm || streq(model, "max") ? "maximum"
                         : streq(model, "host-model") ? "host-model" : "host-passthrough";
        snprintf(buf, size, "mode=%s", mode);
    } else {
        snprintf(buf, size, "%s,match=exact", model);
    }
    return buf;
}

static const char *disk_bus(const char *bus, bool q35)
{
    if (streq(bus, "scsi") || streq(bus, "sata"))
        return bus;
    if (streq(bus, "ide"))
        return q35 ? "sata" : "ide";     /* q35 has no IDE controller (domain_xml.c) */
    return "virtio";
}

static void network(struct list *l, const struct qvm_domain_config *cfg)
{
    const struct qvm_net_spec *n = &cfg->spec->net;
    const char *mac = cfg->mac ? cfg->mac : n->mac;
    const char *model = n->model ? n->model : "virtio";
    push(l, "--network");
    if (n->type == QVM_NET_NONE) {
        push(l, "none");
        return;
    }
    /* No forwarded SSH port here: domain_xml.c's hostfwd NIC needs a JSON
     * -device, and virt-install 4.1 escapes the quotes of a
     * --qemu-commandline value twice (QEMU then reads "&quot;").
     * qvm_runtime_choose sets ssh-port none for this runtime. */
    struct strbuf sb = STRBUF_INIT;
    if (n->type == QVM_NET_NETWORK)
        strbuf_addf(&sb, "network=%s", n->source);
    else if (n->type == QVM_NET_BRIDGE)
        strbuf_addf(&sb, "bridge=%s", n->source);
    else
        strbuf_addstr(&sb, "user");
    strbuf_addf(&sb, ",model=%s", model);
    if (mac)
        strbuf_addf(&sb, ",mac=%s", mac);
    push_owned(l, strbuf_detach(&sb, NULL));
}

int qvm_virt_install_argv(const struct qvm_domain_config *cfg, const char *uri,
                          const char *osinfo, enum qvm_vi_mode mode, char ***ret,
                          struct qvm_error *err)
{
    *ret = NULL;
    if (!cfg || !cfg->spec || !cfg->spec->name || !cfg->disk_path || !cfg->uuid)
        return qvm_err(err, EINVAL, "incomplete domain configuration");
    const char *paths[] = { cfg->disk_path, cfg->seed_path, cfg->console_log };
    for (size_t i = 0; i < 3; i++)
        if (paths[i] && !option_safe(paths[i]))
            return qvm_err(err, EINVAL, "%s cannot be given to virt-install: its option syntax "
                           "has no room for commas, quotes or control characters in a path "
                           "(use runtime libvirt, or a pool path without them)", paths[i]);
    const struct qvm_vm_spec *s = cfg->spec;
    bool kvm = streq(cfg->accel, "kvm");
    bool q35 = !streq(s->machine, "pc");
    const struct qvm_disk_spec *d = &s->disk;
    const char *cache = d->cache ? d->cache : "writeback";
    struct list l = { 0 };
    char buf[128];

    push(&l, "virt-install");
    push(&l, "--connect");
    push(&l, uri ? uri : "qemu:///system");
    push(&l, "--name");
    push(&l, s->name);
    push(&l, "--uuid");
    push(&l, cfg->uuid);
    push(&l, "--memory");
    pushf(&l, "%llu", (unsigned long long)(s->memory_mib ? s->memory_mib : 1024));
    push(&l, "--vcpus");
    pushf(&l, "%u", s->vcpus ? s->vcpus : 1);
    push(&l, "--cpu");
    push(&l, cpu_option(s->cpu, kvm, buf, sizeof buf));
    push(&l, "--virt-type");
    push(&l, kvm ? "kvm" : "qemu");
    push(&l, "--machine");
    push(&l, q35 ? "q35" : "pc");
    push(&l, "--osinfo");
    push(&l, osinfo ? osinfo : "detect=on,require=off");
    push(&l, "--import");
    push(&l, "--noautoconsole");
    push(&l, "--boot");
    push(&l, s->boot ? s->boot : "hd");
    push(&l, "--graphics");
    push(&l, s->graphics == QVM_GRAPHICS_VNC ? "vnc,listen=127.0.0.1" : "none");
    push(&l, "--disk");
    pushf(&l, "path=%s,format=%s,bus=%s,cache=%s,discard=unmap%s", cfg->disk_path,
          cfg->disk_format ? cfg->disk_format : "raw", disk_bus(d->bus, q35), cache,
          cfg->disk_is_block && (streq(cache, "none") || streq(cache, "directsync"))
              ? ",io=native" : "");
    if (cfg->seed_path) {
        push(&l, "--disk");
        pushf(&l, "path=%s,device=disk,format=raw,bus=virtio,readonly=on", cfg->seed_path);
    }
    if (streq(d->bus, "scsi")) {
        push(&l, "--controller");
        push(&l, "type=scsi,model=virtio-scsi");
    }
    push(&l, "--controller");
    push(&l, "type=usb,model=none");
    network(&l, cfg);
    push(&l, "--serial");
    if (cfg->console_log)
        pushf(&l, "pty,log.file=%s,log.append=on", cfg->console_log);
    else
        push(&l, "pty");
    push(&l, "--channel");
    push(&l, "unix,target.type=virtio,target.name=org.qemu.guest_agent.0");
    push(&l, "--rng");
    push(&l, "/dev/urandom");
    push(&l, "--memballoon");
    push(&l, "none");
    /* The options qvm does not model, as the file wrote them. */
    for (size_t i = 0; i < s->nvi_opts; i++) {
        if (s->vi_opts[i].value)
            pushf(&l, "--%s=%s", s->vi_opts[i].key, s->vi_opts[i].value);
        else
            pushf(&l, "--%s", s->vi_opts[i].key);
    }
    if (mode == QVM_VI_DRY_RUN)
        push(&l, "--dry-run");
    else if (mode == QVM_VI_PRINT_XML)
        push(&l, "--print-xml");
    *ret = l.v;
    return 0;
}

/* libosinfo's system locations (osinfo-db's install paths on Debian and
 * elsewhere, and the administrator's). */
static const char *const default_dirs[] = {
    "/usr/share/osinfo", "/etc/osinfo", "/usr/share/libosinfo/db", NULL,
};

/* True if a file under DIR/os/VENDOR/ declares <short-id>ID</short-id>.
 * A substring search suffices: ID holds only [A-Za-z0-9._+-] (the spec
 * parser checked), which XML writes as it is. */
static bool dir_knows(const char *dir, const char *needle)
{
    char *os = xasprintf("%s/os", dir);
    DIR *vd = opendir(os);
    bool found = false;
    struct dirent *ve;
    while (vd && !found && (ve = readdir(vd))) {
        if (ve->d_name[0] == '.')
            continue;
        char *vendor = xasprintf("%s/%s", os, ve->d_name);
        DIR *fd = opendir(vendor);
        struct dirent *fe;
        while (fd && !found && (fe = readdir(fd))) {
            size_t n = strlen(fe->d_name);
            if (n < 5 || strcmp(fe->d_name + n - 4, ".xml") != 0)
                continue;
            char *path = xasprintf("%s/%s", vendor, fe->d_name);
            char *text = NULL;
            size_t len;
            if (qvm_read_file(path, 1u << 20, &text, &len, NULL) == 0)
                found = strstr(text, needle) != NULL;
            free(text);
            free(path);
        }
        if (fd)
            closedir(fd);
        free(vendor);
    }
    if (vd)
        closedir(vd);
    free(os);
    return found;
}

bool qvm_osinfo_known(const char *id, const char *const *dirs)
{
    if (!id || !*id || strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789._+-") != strlen(id))
        return false;
    const char *env = getenv("OSINFO_SYSTEM_DIR");
    char *needle = xasprintf("<short-id>%s</short-id>", id);
    bool found = false;
    if (!dirs && env && *env)
        found = dir_knows(env, needle);
    for (size_t i = 0; !found && (dirs ? dirs : default_dirs)[i]; i++)
        found = dir_knows((dirs ? dirs : default_dirs)[i], needle);
    free(needle);
    return found;
}
