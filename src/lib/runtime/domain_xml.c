/* domain_xml.c - the libvirt domain XML for one VM (see domain_xml.h).
 *
 * The devices mirror qemu.c's argv one for one, so a VM behaves the same on
 * either runtime: the disk, the seed as a read-only virtio disk (Debian's
 * cloud kernel has no AHCI driver, see qemu.c), the NIC, the serial console
 * with its log, the guest-agent channel, a virtio RNG, and nothing else
 * (no USB, no balloon: QEMU's -nodefaults). The element order is fixed so
 * the golden files compare byte for byte.
 *
 * Written through libxml2's xmlTextWriter: it escapes every attribute and
 * text value. It does not refuse bytes XML cannot carry (control characters,
 * invalid UTF-8), so those are checked here before writing. */
#include "domain_xml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlwriter.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "util/strbuf.h"

#define QEMU_XMLNS "http://libvirt.org/schemas/domain/qemu/1.0"
#define XML_MAX (4u << 20)

struct writer {
    xmlTextWriterPtr w;
    struct qvm_error *err;
    int r;                 /* first failure, 0 while all is well */
};

static bool streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* XML 1.0 carries no control character but tab, LF and CR; libxml2's
 * writer would copy them (and invalid UTF-8) through as they are. */
static bool xml_safe(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return xmlCheckUTF8((const xmlChar *)s) != 0;
}

static bool check(struct writer *w, const char *what, const char *v)
{
    if (w->r)
        return false;
    if (v && !xml_safe(v)) {
        w->r = qvm_err(w->err, EINVAL, "%s cannot be written into a libvirt domain XML: "
                       "it is not UTF-8 or holds control characters", what);
        return false;
    }
    return true;
}

static void lib_failed(struct writer *w, int rc)
{
    if (rc < 0 && !w->r)
        w->r = qvm_err(w->err, ENOMEM, "libxml2 could not write the domain XML");
}

static void start(struct writer *w, const char *name)
{
    if (!w->r)
        lib_failed(w, xmlTextWriterStartElement(w->w, (const xmlChar *)name));
}

static void end(struct writer *w)
{
    if (!w->r)
        lib_failed(w, xmlTextWriterEndElement(w->w));
}

static void attr(struct writer *w, const char *name, const char *value)
{
    if (check(w, name, value))
        lib_failed(w, xmlTextWriterWriteAttribute(w->w, (const xmlChar *)name,
                                                  (const xmlChar *)value));
}

static void text_el(struct writer *w, const char *name, const char *text)
{
    if (check(w, name, text))
        lib_failed(w, xmlTextWriterWriteElement(w->w, (const xmlChar *)name,
                                                (const xmlChar *)text));
}

/* <NAME K1="V1" K2="V2"/>: pairs of attribute names and values, NULL-ended;
 * an attribute whose value is NULL is left out. */
static void empty_el(struct writer *w, const char *name, ...)
{
    va_list ap;
    start(w, name);
    va_start(ap, name);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (v)
            attr(w, k, v);
    }
    va_end(ap);
    end(w);
}

/* Position (1-based) of WHAT in the comma-separated boot list, 0 if absent
 * (qemu.c's rule: no list means the disk alone). */
static int boot_index(const char *boot, const char *what)
{
    if (!boot || !*boot)
        return streq(what, "hd") ? 1 : 0;
    int idx = 0;
    size_t wl = strlen(what);
    for (const char *p = boot; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        idx++;
        if (len == wl && strncmp(p, what, wl) == 0)
            return idx;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

static void boot_order(struct writer *w, int idx)
{
    if (idx > 0) {
        char n[16];
        snprintf(n, sizeof n, "%d", idx);
        empty_el(w, "boot", "order", n, NULL);
    }
}

static void metadata(struct writer *w, const struct qvm_domain_config *cfg)
{
    start(w, "metadata");
    if (!w->r)
        lib_failed(w, xmlTextWriterStartElementNS(w->w, (const xmlChar *)"qvm",
                                                  (const xmlChar *)"vm",
                                                  (const xmlChar *)QVM_DOMAIN_XMLNS));
    const char *fields[][2] = {
        { "uuid", cfg->uuid }, { "pool", cfg->pool }, { "image", cfg->image },
        { "version", cfg->version },
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (!fields[i][1] || !check(w, fields[i][0], fields[i][1]))
            continue;
        lib_failed(w, xmlTextWriterWriteElementNS(w->w, (const xmlChar *)"qvm",
                                                  (const xmlChar *)fields[i][0], NULL,
                                                  (const xmlChar *)fields[i][1]));
    }
    end(w);
    end(w);
}

/* TCG has no host CPU to pass through: "maximum" (-cpu max) is what it
 * emulates best, as in qemu.c. Under KVM host-model is libvirt's own (a
 * named model close to the host), host and host-passthrough pass it. */
static void cpu(struct writer *w, const char *model, bool kvm)
{
    if (!model || streq(model, "host-passthrough") || streq(model, "host") ||
        streq(model, "host-model") || streq(model, "max")) {
        const char *mode = !kvm || streq(model, "max") ? "maximum"
                         : streq(model, "host-model") ? "host-model" : "host-passthrough";
        empty_el(w, "cpu", "mode", mode, NULL);
        return;
    }
    start(w, "cpu");
    attr(w, "mode", "custom");
    attr(w, "match", "exact");
    start(w, "model");
    attr(w, "fallback", "forbid");
    if (check(w, "cpu", model))
        lib_failed(w, xmlTextWriterWriteString(w->w, (const xmlChar *)model));
    end(w);
    end(w);
}

/* Target device name and bus for the disk. q35 has no IDE controller: its
 * AHCI serves "ide" as qemu.c does. */
static void disk_target(const char *bus, bool q35, int index, char *dev, size_t size,
                        const char **ret_bus)
{
    const char *prefix = "vd";
    *ret_bus = "virtio";
    if (streq(bus, "scsi")) {
        prefix = "sd";
        *ret_bus = "scsi";
    } else if (streq(bus, "sata") || (streq(bus, "ide") && q35)) {
        prefix = "sd";
        *ret_bus = "sata";
    } else if (streq(bus, "ide")) {
        prefix = "hd";
        *ret_bus = "ide";
    }
    snprintf(dev, size, "%s%c", prefix, 'a' + index);
}

/* Target names handed out so far per prefix: vd, sd (scsi and sata), hd. */
struct targets {
    int vd, sd, hd;
};

static void disk(struct writer *w, const struct qvm_disk_spec *d, const struct qvm_qemu_disk *host,
                 int bootidx, bool q35, struct targets *t)
{
    const char *cache = d->cache ? d->cache : "writeback";
    char dev[8];
    const char *bus;
    disk_target(d->bus, q35, 0, dev, sizeof dev, &bus);
    int *next = dev[0] == 'v' ? &t->vd : dev[0] == 's' ? &t->sd : &t->hd;
    disk_target(d->bus, q35, (*next)++, dev, sizeof dev, &bus);
    start(w, "disk");
    attr(w, "type", host->is_block ? "block" : "file");
    attr(w, "device", "disk");
    /* Native AIO is the fast path for a zvol opened with O_DIRECT (qemu.c). */
    bool native = host->is_block && (streq(cache, "none") || streq(cache, "directsync"));
    empty_el(w, "driver", "name", "qemu", "type", host->format ? host->format : "raw",
             "cache", cache, "io", native ? "native" : NULL, "discard", "unmap", NULL);
    empty_el(w, "source", host->is_block ? "dev" : "file", host->path, NULL);
    empty_el(w, "target", "dev", dev, "bus", bus, NULL);
    boot_order(w, bootidx);
    end(w);
}

/* Every disk in the order of the qvm file's list; the boot disk gets hd's
 * boot order. */
static void disks(struct writer *w, const struct qvm_domain_config *cfg, bool q35,
                  struct targets *t)
{
    const struct qvm_vm_spec *s = cfg->spec;
    int bootidx = boot_index(s->boot, "hd");
    size_t k = 0;
    for (size_t pos = 0; pos <= s->ndata_disks; pos++) {
        if (pos == s->image_disk_pos || !cfg->data_disks) {
            struct qvm_qemu_disk host = { cfg->disk_path, cfg->disk_format, cfg->disk_is_block };
            disk(w, &s->disk, &host, qvm_spec_image_disk_boots(s) ? bootidx : 0, q35, t);
            if (!cfg->data_disks)
                return;
            continue;
        }
        const struct qvm_disk_spec *d = &s->data_disks[k];
        disk(w, d, &cfg->data_disks[k], d->boot ? bootidx : 0, q35, t);
        k++;
    }
}

static bool any_scsi(const struct qvm_domain_config *cfg)
{
    const struct qvm_vm_spec *s = cfg->spec;
    bool scsi = streq(s->disk.bus, "scsi");
    for (size_t i = 0; cfg->data_disks && i < s->ndata_disks; i++)
        scsi = scsi || streq(s->data_disks[i].bus, "scsi");
    return scsi;
}

/* The NoCloud seed: a read-only virtio disk after the VM's own, never a
 * boot device. */
static void seed(struct writer *w, const struct qvm_domain_config *cfg, struct targets *t)
{
    char dev[8];
    snprintf(dev, sizeof dev, "vd%c", 'a' + t->vd++);
    start(w, "disk");
    attr(w, "type", "file");
    attr(w, "device", "disk");
    empty_el(w, "driver", "name", "qemu", "type", "raw", NULL);
    empty_el(w, "source", "file", cfg->seed_path, NULL);
    empty_el(w, "target", "dev", dev, "bus", "virtio", NULL);
    empty_el(w, "readonly", NULL);
    end(w);
}

static const char *nic_device(const char *model)
{
    if (!model || streq(model, "virtio"))
        return "virtio-net-pci";
    return model;    /* e1000, rtl8139: QEMU's names equal libvirt's */
}

/* libvirt 9.0 forwards ports on a user (slirp) interface only with the
 * passt backend, which Debian 12 does not install with libvirt. The
 * forwarded SSH port is therefore QEMU's own hostfwd, on a NIC given on
 * QEMU's command line (<qemu:commandline>): the same netdev qemu.c uses.
 * libvirt marks such a domain "tainted: custom-argv"; it runs normally.
 * The -device is JSON on purpose: QEMU creates every QemuOpts-style
 * -device before the JSON ones libvirt writes, so a plain "virtio-net-pci,"
 * would take PCIe slot 1 and the first pcie-root-port libvirt placed there
 * would fail to start ("slot 1 function 0 not available"). As JSON it is
 * created last and takes a free slot. */
static bool nic_on_commandline(const struct qvm_domain_config *cfg)
{
    return cfg->spec->net.type == QVM_NET_USER && cfg->ssh_port > 0;
}

static void interface(struct writer *w, const struct qvm_domain_config *cfg)
{
    const struct qvm_net_spec *n = &cfg->spec->net;
    if (n->type == QVM_NET_NONE || nic_on_commandline(cfg))
        return;
    bool qvm_net = n->type == QVM_NET_NETWORK && cfg->net_bridge[0];
    const char *type = qvm_net ? "bridge" : n->type == QVM_NET_NETWORK ? "network"
                     : n->type == QVM_NET_BRIDGE ? "bridge" : "user";
    start(w, "interface");
    attr(w, "type", type);
    if (n->type == QVM_NET_NETWORK || n->type == QVM_NET_BRIDGE)
        empty_el(w, "source", type, qvm_net ? cfg->net_bridge : n->source, NULL);
    const char *mac = cfg->mac ? cfg->mac : n->mac;
    if (mac)
        empty_el(w, "mac", "address", mac, NULL);
    empty_el(w, "model", "type", n->model ? n->model : "virtio", NULL);
    boot_order(w, boot_index(cfg->spec->boot, "network"));
    end(w);
}

static void qemu_arg(struct writer *w, const char *value)
{
    if (!w->r)
        lib_failed(w, xmlTextWriterStartElementNS(w->w, (const xmlChar *)"qemu",
                                                  (const xmlChar *)"arg", NULL));
    attr(w, "value", value);
    end(w);
}

static void commandline(struct writer *w, const struct qvm_domain_config *cfg)
{
    if (!nic_on_commandline(cfg))
        return;
    const struct qvm_net_spec *n = &cfg->spec->net;
    if (!w->r)
        lib_failed(w, xmlTextWriterStartElementNS(w->w, (const xmlChar *)"qemu",
                                                  (const xmlChar *)"commandline", NULL));
    char *netdev = xasprintf("user,id=qvmnet0,hostfwd=tcp:127.0.0.1:%d-:22", cfg->ssh_port);
    /* The model and the MAC were validated by the spec parser (a fixed list,
     * hex digits and colons): nothing here needs JSON escaping. */
    struct strbuf dev = STRBUF_INIT;
    strbuf_addf(&dev, "{\"driver\":\"%s\",\"netdev\":\"qvmnet0\"", nic_device(n->model));
    const char *mac = cfg->mac ? cfg->mac : n->mac;
    if (mac)
        strbuf_addf(&dev, ",\"mac\":\"%s\"", mac);
    int idx = boot_index(cfg->spec->boot, "network");
    if (idx > 0)
        strbuf_addf(&dev, ",\"bootindex\":%d", idx);
    strbuf_addch(&dev, '}');
    qemu_arg(w, "-netdev");
    qemu_arg(w, netdev);
    qemu_arg(w, "-device");
    qemu_arg(w, dev.buf);
    free(netdev);
    strbuf_release(&dev);
    end(w);
}

static void devices(struct writer *w, const struct qvm_domain_config *cfg, bool q35)
{
    const struct qvm_vm_spec *s = cfg->spec;
    start(w, "devices");
    struct targets t = { 0 };
    disks(w, cfg, q35, &t);
    if (cfg->seed_path)
        seed(w, cfg, &t);
    if (any_scsi(cfg))
        empty_el(w, "controller", "type", "scsi", "index", "0", "model", "virtio-scsi", NULL);
    empty_el(w, "controller", "type", "usb", "model", "none", NULL);
    interface(w, cfg);
    start(w, "serial");
    attr(w, "type", "pty");
    if (cfg->console_log)
        empty_el(w, "log", "file", cfg->console_log, "append", "on", NULL);
    empty_el(w, "target", "port", "0", NULL);
    end(w);
    start(w, "console");
    attr(w, "type", "pty");
    empty_el(w, "target", "type", "serial", "port", "0", NULL);
    end(w);
    /* The agent socket's path is libvirt's choice: libvirt talks to the
     * agent itself (virDomainQemuAgentCommand), qvm never connects to it. */
    start(w, "channel");
    attr(w, "type", "unix");
    empty_el(w, "source", "mode", "bind", NULL);
    empty_el(w, "target", "type", "virtio", "name", "org.qemu.guest_agent.0", NULL);
    end(w);
    if (s->graphics == QVM_GRAPHICS_VNC) {
        start(w, "graphics");
        attr(w, "type", "vnc");
        attr(w, "autoport", "yes");
        empty_el(w, "listen", "type", "address", "address", "127.0.0.1", NULL);
        end(w);
    }
    start(w, "video");
    empty_el(w, "model", "type", s->graphics == QVM_GRAPHICS_VNC ? "vga" : "none", NULL);
    end(w);
    /* A fresh guest makes its SSH host keys on first boot (qemu.c). */
    start(w, "rng");
    attr(w, "model", "virtio");
    start(w, "backend");
    attr(w, "model", "random");
    if (!w->r)
        lib_failed(w, xmlTextWriterWriteString(w->w, (const xmlChar *)"/dev/urandom"));
    end(w);
    end(w);
    empty_el(w, "memballoon", "model", "none", NULL);
    end(w);
}

int qvm_domain_xml(const struct qvm_domain_config *cfg, char **ret, struct qvm_error *err)
{
    *ret = NULL;
    if (!cfg || !cfg->spec || !cfg->spec->name || !cfg->disk_path || !cfg->uuid)
        return qvm_err(err, EINVAL, "incomplete domain configuration");
    const struct qvm_vm_spec *s = cfg->spec;
    bool kvm = streq(cfg->accel, "kvm");
    bool q35 = !streq(s->machine, "pc");
    xmlBufferPtr buf = xmlBufferCreate();
    struct writer w = { .w = buf ? xmlNewTextWriterMemory(buf, 0) : NULL, .err = err };
    if (!w.w) {
        if (buf)
            xmlBufferFree(buf);
        return qvm_err(err, ENOMEM, "libxml2 could not create an XML writer");
    }
    xmlTextWriterSetIndent(w.w, 1);
    xmlTextWriterSetIndentString(w.w, (const xmlChar *)"  ");

    start(&w, "domain");
    attr(&w, "type", kvm ? "kvm" : "qemu");
    if (nic_on_commandline(cfg))
        attr(&w, "xmlns:qemu", QEMU_XMLNS);
    text_el(&w, "name", s->name);
    text_el(&w, "uuid", cfg->uuid);
    char *desc = xasprintf("qvm VM '%s' (pool '%s'): change and remove it with qvm", s->name,
                           cfg->pool ? cfg->pool : "?");
    text_el(&w, "description", desc);
    free(desc);
    metadata(&w, cfg);
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)(s->memory_mib ? s->memory_mib : 1024));
    start(&w, "memory");
    attr(&w, "unit", "MiB");
    if (!w.r)
        lib_failed(&w, xmlTextWriterWriteString(w.w, (const xmlChar *)num));
    end(&w);
    snprintf(num, sizeof num, "%u", s->vcpus ? s->vcpus : 1);
    text_el(&w, "vcpu", num);
    start(&w, "os");
    start(&w, "type");
    attr(&w, "arch", "x86_64");
    attr(&w, "machine", q35 ? "q35" : "pc");
    if (!w.r)
        lib_failed(&w, xmlTextWriterWriteString(w.w, (const xmlChar *)"hvm"));
    end(&w);
    end(&w);
    start(&w, "features");
    empty_el(&w, "acpi", NULL);      /* the power button qvm stop presses */
    empty_el(&w, "apic", NULL);
    end(&w);
    cpu(&w, s->cpu, kvm);
    empty_el(&w, "clock", "offset", "utc", NULL);
    text_el(&w, "on_poweroff", "destroy");
    text_el(&w, "on_reboot", "restart");
    text_el(&w, "on_crash", "destroy");
    devices(&w, cfg, q35);
    commandline(&w, cfg);
    end(&w);
    if (!w.r)
        lib_failed(&w, xmlTextWriterEndDocument(w.w));
    xmlFreeTextWriter(w.w);     /* flushes into buf */
    if (w.r == 0)
        *ret = xstrdup((const char *)xmlBufferContent(buf));
    xmlBufferFree(buf);
    return w.r;
}

/* ---- reading ------------------------------------------------------------------ */

static char *prop(xmlNodePtr n, const char *name)
{
    xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
    char *r = v ? xstrdup((const char *)v) : NULL;
    xmlFree(v);
    return r;
}

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrcmp(c->name, (const xmlChar *)name) == 0)
            return c;
    return NULL;
}

static char *content(xmlNodePtr n)
{
    xmlChar *v = n ? xmlNodeGetContent(n) : NULL;
    char *r = v ? xstrdup((const char *)v) : NULL;
    xmlFree(v);
    return r;
}

/* The nodes XPATH selects in DOC (an object to free with
 * xmlXPathFreeObject), or NULL. */
static xmlXPathObjectPtr select_nodes(xmlDocPtr doc, const char *xpath)
{
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    if (!ctx)
        return NULL;
    xmlXPathRegisterNs(ctx, (const xmlChar *)"qvm", (const xmlChar *)QVM_DOMAIN_XMLNS);
    xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)xpath, ctx);
    xmlXPathFreeContext(ctx);
    return o;
}

static char *xpath_text(xmlDocPtr doc, const char *xpath)
{
    xmlXPathObjectPtr o = select_nodes(doc, xpath);
    char *r = NULL;
    if (o && o->nodesetval && o->nodesetval->nodeNr > 0)
        r = content(o->nodesetval->nodeTab[0]);
    xmlXPathFreeObject(o);
    return r;
}

static xmlDocPtr parse_doc(const char *xml, struct qvm_error *err)
{
    size_t len = strlen(xml);
    if (len > XML_MAX) {
        qvm_err(err, E2BIG, "domain XML larger than %u bytes", XML_MAX);
        return NULL;
    }
    /* No network, no entity expansion, no DTD loading: a domain XML comes
     * from libvirt, but it is still input. */
    xmlDocPtr doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        qvm_err(err, EINVAL, "the domain XML does not parse");
    return doc;
}

int qvm_domain_xml_parse(const char *xml, struct qvm_domain_info *ret, struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    xmlDocPtr doc = parse_doc(xml, err);
    if (!doc)
        return -EINVAL;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (!root || xmlStrcmp(root->name, (const xmlChar *)"domain") != 0) {
        xmlFreeDoc(doc);
        return qvm_err(err, EINVAL, "the XML is not a libvirt <domain>");
    }
    ret->type = prop(root, "type");
    ret->name = content(child(root, "name"));
    ret->uuid = content(child(root, "uuid"));
    char *mem = content(child(root, "memory"));
    char *unit = prop(child(root, "memory"), "unit");
    unsigned long long m = mem ? strtoull(mem, NULL, 10) : 0;
    /* libvirt writes KiB unless told otherwise. */
    if (streq(unit, "MiB") || streq(unit, "M"))
        m *= 1024;
    else if (streq(unit, "GiB") || streq(unit, "G"))
        m *= 1024 * 1024;
    else if (streq(unit, "b") || streq(unit, "bytes"))
        m /= 1024;
    ret->memory_kib = m;
    free(mem);
    free(unit);
    char *vcpu = content(child(root, "vcpu"));
    ret->vcpus = vcpu ? (unsigned)strtoul(vcpu, NULL, 10) : 1;
    free(vcpu);
    ret->machine = prop(child(child(root, "os"), "type"), "machine");
    ret->cpu_mode = prop(child(root, "cpu"), "mode");
    xmlNodePtr devs = child(root, "devices");
    for (xmlNodePtr d = devs ? devs->children : NULL; d; d = d->next) {
        if (d->type != XML_ELEMENT_NODE)
            continue;
        if (xmlStrcmp(d->name, (const xmlChar *)"disk") == 0) {
            if (ret->ndisks == QVM_DOMAIN_MAX_DISKS) {
                qvm_domain_info_release(ret);
                xmlFreeDoc(doc);
                return qvm_err(err, E2BIG, "the domain has more than %d disks",
                               QVM_DOMAIN_MAX_DISKS);
            }
            struct qvm_domain_disk *k = &ret->disks[ret->ndisks++];
            k->type = prop(d, "type");
            k->device = prop(d, "device");
            xmlNodePtr src = child(d, "source");
            k->path = prop(src, "file");
            if (!k->path)
                k->path = prop(src, "dev");
            k->format = prop(child(d, "driver"), "type");
            k->bus = prop(child(d, "target"), "bus");
            k->readonly = child(d, "readonly") != NULL;
        } else if (xmlStrcmp(d->name, (const xmlChar *)"interface") == 0 && !ret->net_type) {
            ret->net_type = prop(d, "type");
            xmlNodePtr src = child(d, "source");
            ret->net_source = prop(src, "network");
            if (!ret->net_source)
                ret->net_source = prop(src, "bridge");
            ret->net_mac = prop(child(d, "mac"), "address");
            ret->net_model = prop(child(d, "model"), "type");
        } else if (xmlStrcmp(d->name, (const xmlChar *)"graphics") == 0) {
            char *t = prop(d, "type");
            ret->graphics_vnc |= streq(t, "vnc");
            free(t);
        }
    }
    ret->qvm_uuid = xpath_text(doc, "/domain/metadata/qvm:vm/qvm:uuid");
    ret->qvm_pool = xpath_text(doc, "/domain/metadata/qvm:vm/qvm:pool");
    xmlFreeDoc(doc);
    if (!ret->name || !ret->uuid) {
        qvm_domain_info_release(ret);
        return qvm_err(err, EINVAL, "the domain XML has no name or UUID");
    }
    return 0;
}

void qvm_domain_info_release(struct qvm_domain_info *info)
{
    if (!info)
        return;
    for (size_t i = 0; i < info->ndisks; i++) {
        struct qvm_domain_disk *d = &info->disks[i];
        free(d->type);
        free(d->device);
        free(d->path);
        free(d->format);
        free(d->bus);
    }
    char *strs[] = { info->type, info->name, info->uuid, info->machine, info->cpu_mode,
                     info->net_type, info->net_source, info->net_mac, info->net_model,
                     info->qvm_uuid, info->qvm_pool };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(strs[i]);
    memset(info, 0, sizeof *info);
}

int qvm_domain_xml_move_disk(const char *xml, const char *from, const char *to, char **ret,
                             struct qvm_error *err)
{
    *ret = NULL;
    if (!xml_safe(to))
        return qvm_err(err, EINVAL, "%s cannot be written into a domain XML", to);
    xmlDocPtr doc = parse_doc(xml, err);
    if (!doc)
        return -EINVAL;
    xmlXPathObjectPtr o = select_nodes(doc, "/domain/devices/disk/source");
    int moved = 0;
    for (int i = 0; o && o->nodesetval && i < o->nodesetval->nodeNr; i++) {
        xmlNodePtr src = o->nodesetval->nodeTab[i];
        const char *attrs[] = { "file", "dev" };
        for (size_t a = 0; a < 2; a++) {
            char *v = prop(src, attrs[a]);
            if (streq(v, from)) {
                xmlSetProp(src, (const xmlChar *)attrs[a], (const xmlChar *)to);
                moved++;
            }
            free(v);
        }
    }
    xmlXPathFreeObject(o);
    int r = 0;
    if (!moved) {
        r = qvm_err(err, ENOENT, "no disk of the domain has source %s", from);
    } else {
        xmlChar *out = NULL;
        int len = 0;
        xmlDocDumpFormatMemory(doc, &out, &len, 0);
        if (!out)
            r = qvm_err(err, ENOMEM, "libxml2 could not write the domain XML");
        else
            *ret = xstrdup((const char *)out);
        xmlFree(out);
    }
    xmlFreeDoc(doc);
    return r;
}
