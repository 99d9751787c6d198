#include "pools.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "core/memory.h"
#include "util/fsutil.h"
#include "util/names.h"
#include "util/strbuf.h"

static void pool_config_release(struct qvm_pool_config *pc)
{
    free(pc->name);
    free(pc->driver);
    free(pc->path);
    free(pc->dataset);
    free(pc->mode);
    free(pc->runtime);
    free(pc->runtime_uri);
    memset(pc, 0, sizeof *pc);
}

void qvm_config_release(struct qvm_config *cfg)
{
    free(cfg->default_pool);
    free(cfg->host_reserve);
    free(cfg->host_arc_share);
    free(cfg->host_vm_overhead);
    free(cfg->host_tcg_overhead);
    for (size_t i = 0; i < cfg->npools; i++)
        pool_config_release(&cfg->pools[i]);
    memset(cfg, 0, sizeof *cfg);
}

static bool safe_value(const char *v)
{
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\')
            return false;
    return *v != '\0' && strlen(v) < 1024;
}

/* A parse of the file with libyaml's event API: a mapping with
 * default-pool (scalar) and pools (a mapping of name -> mapping of scalars). */
struct cfg_parser {
    yaml_parser_t p;
    const char *file;
    struct qvm_error *err;
};

__attribute__((format(printf, 3, 4)))
static int cfg_fail(struct cfg_parser *cp, const yaml_mark_t *m, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qvm_err(cp->err, EINVAL, "%s:%zu:%zu: %s", cp->file, m->line + 1, m->column + 1, msg);
}

static int next(struct cfg_parser *cp, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&cp->p, ev))
        return qvm_err(cp->err, EINVAL, "%s:%zu:%zu: YAML syntax error: %s", cp->file,
                       cp->p.problem_mark.line + 1, cp->p.problem_mark.column + 1,
                       cp->p.problem ? cp->p.problem : "unknown");
    if (ev->type == YAML_ALIAS_EVENT) {
        yaml_mark_t m = ev->start_mark;
        yaml_event_delete(ev);
        return cfg_fail(cp, &m, "aliases are not allowed in qvm.conf");
    }
    return 0;
}

static int expect_scalar(struct cfg_parser *cp, const char *key, char **ret)
{
    yaml_event_t ev;
    int r = next(cp, &ev);
    if (r < 0)
        return r;
    if (ev.type != YAML_SCALAR_EVENT) {
        r = cfg_fail(cp, &ev.start_mark, "key '%s': expected a single value", key);
    } else if (!safe_value((const char *)ev.data.scalar.value)) {
        r = cfg_fail(cp, &ev.start_mark, "key '%s': empty value or control characters", key);
    } else {
        free(*ret);
        *ret = xstrdup((const char *)ev.data.scalar.value);
    }
    yaml_event_delete(&ev);
    return r;
}

static int parse_pool(struct cfg_parser *cp, struct qvm_pool_config *pc)
{
    yaml_event_t ev;
    int r = next(cp, &ev);
    if (r < 0)
        return r;
    if (ev.type != YAML_MAPPING_START_EVENT) {
        r = cfg_fail(cp, &ev.start_mark, "pool '%s': expected a mapping (driver, path, ...)",
                     pc->name);
        yaml_event_delete(&ev);
        return r;
    }
    yaml_event_delete(&ev);
    for (;;) {
        if ((r = next(cp, &ev)) < 0)
            return r;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            r = cfg_fail(cp, &ev.start_mark, "pool '%s': expected a key", pc->name);
            yaml_event_delete(&ev);
            return r;
        }
        char key[32];
        snprintf(key, sizeof key, "%s", (const char *)ev.data.scalar.value);
        yaml_mark_t m = ev.start_mark;
        yaml_event_delete(&ev);
        char **slot = !strcmp(key, "driver") ? &pc->driver : !strcmp(key, "path") ? &pc->path
                    : !strcmp(key, "dataset") ? &pc->dataset : !strcmp(key, "mode") ? &pc->mode
                    : !strcmp(key, "runtime") ? &pc->runtime
                    : !strcmp(key, "runtime-uri") ? &pc->runtime_uri : NULL;
        if (!slot)
            return cfg_fail(cp, &m, "unknown pool key '%s' (known: driver, path, dataset, mode, "
                            "runtime, runtime-uri)", key);
        if ((r = expect_scalar(cp, key, slot)) < 0)
            return r;
        if (slot == &pc->runtime && strcmp(pc->runtime, "qemu") && strcmp(pc->runtime, "libvirt") &&
            strcmp(pc->runtime, "virt-install"))
            return cfg_fail(cp, &m, "pool '%s': runtime '%s' is not supported (expected qemu, "
                            "libvirt or virt-install)", pc->name, pc->runtime);
    }
    if (!pc->driver)
        return qvm_err(cp->err, EINVAL, "%s: pool '%s' has no driver", cp->file, pc->name);
    return 0;
}

static int parse_pools(struct cfg_parser *cp, struct qvm_config *cfg)
{
    yaml_event_t ev;
    int r = next(cp, &ev);
    if (r < 0)
        return r;
    if (ev.type != YAML_MAPPING_START_EVENT) {
        r = cfg_fail(cp, &ev.start_mark, "pools: expected a mapping of pool names");
        yaml_event_delete(&ev);
        return r;
    }
    yaml_event_delete(&ev);
    for (;;) {
        if ((r = next(cp, &ev)) < 0)
            return r;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        const char *name = (const char *)ev.data.scalar.value;
        if (ev.type != YAML_SCALAR_EVENT || !qvm_name_valid(name)) {
            r = cfg_fail(cp, &ev.start_mark, "invalid pool name '%s'",
                         ev.type == YAML_SCALAR_EVENT ? name : "?");
            yaml_event_delete(&ev);
            return r;
        }
        for (size_t i = 0; i < cfg->npools; i++)
            if (!strcmp(cfg->pools[i].name, name)) {
                r = cfg_fail(cp, &ev.start_mark, "pool '%s' is declared twice", name);
                yaml_event_delete(&ev);
                return r;
            }
        if (cfg->npools == QVM_MAX_POOLS) {
            r = cfg_fail(cp, &ev.start_mark, "more than %d pools", QVM_MAX_POOLS);
            yaml_event_delete(&ev);
            return r;
        }
        struct qvm_pool_config *pc = &cfg->pools[cfg->npools++];
        pc->name = xstrdup(name);
        yaml_event_delete(&ev);
        if ((r = parse_pool(cp, pc)) < 0)
            return r;
    }
}

/* host: a mapping of reserve, arc-share, vm-overhead and tcg-overhead, each checked
 * here so a bad value is reported with its line and column. */
static int parse_host(struct cfg_parser *cp, struct qvm_config *cfg)
{
    yaml_event_t ev;
    int r = next(cp, &ev);
    if (r < 0)
        return r;
    if (ev.type != YAML_MAPPING_START_EVENT) {
        r = cfg_fail(cp, &ev.start_mark, "host: expected a mapping (reserve, arc-share, "
                     "vm-overhead, tcg-overhead)");
        yaml_event_delete(&ev);
        return r;
    }
    yaml_event_delete(&ev);
    for (;;) {
        if ((r = next(cp, &ev)) < 0)
            return r;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        char key[32] = "";
        if (ev.type == YAML_SCALAR_EVENT)
            snprintf(key, sizeof key, "%s", (const char *)ev.data.scalar.value);
        yaml_mark_t m = ev.start_mark;
        yaml_event_delete(&ev);
        char **slot = !strcmp(key, "reserve") ? &cfg->host_reserve
                    : !strcmp(key, "arc-share") ? &cfg->host_arc_share
                    : !strcmp(key, "vm-overhead") ? &cfg->host_vm_overhead
                    : !strcmp(key, "tcg-overhead") ? &cfg->host_tcg_overhead : NULL;
        if (!slot)
            return cfg_fail(cp, &m, "unknown host key '%s' (known: reserve, arc-share, "
                            "vm-overhead, tcg-overhead)", key);
        if ((r = expect_scalar(cp, key, slot)) < 0)
            return r;
        struct qvm_error e = { 0 };
        uint64_t size;
        unsigned pct;
        if ((slot == &cfg->host_arc_share ? qvm_memory_parse_share(*slot, &pct, &e)
                                          : qvm_memory_parse_size(*slot, &size, &e)) < 0)
            return cfg_fail(cp, &m, "host.%s: %s", key, e.msg);
    }
}

static int parse_config(struct cfg_parser *cp, struct qvm_config *cfg)
{
    yaml_event_t ev;
    int r, depth = 0;
    /* stream start, document start (or stream end for an empty file) */
    for (;;) {
        if ((r = next(cp, &ev)) < 0)
            return r;
        yaml_event_type_t t = ev.type;
        yaml_mark_t m = ev.start_mark;
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT)
            return 0;
        if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_START_EVENT)
            continue;
        if (t == YAML_SCALAR_EVENT && depth == 0)
            return 0;      /* an empty document */
        if (t != YAML_MAPPING_START_EVENT)
            return cfg_fail(cp, &m, "expected a mapping with default-pool and pools");
        break;
    }
    for (;;) {
        if ((r = next(cp, &ev)) < 0)
            return r;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        char key[32] = "";
        if (ev.type == YAML_SCALAR_EVENT)
            snprintf(key, sizeof key, "%s", (const char *)ev.data.scalar.value);
        yaml_mark_t m = ev.start_mark;
        yaml_event_delete(&ev);
        if (!strcmp(key, "default-pool")) {
            if ((r = expect_scalar(cp, key, &cfg->default_pool)) < 0)
                return r;
        } else if (!strcmp(key, "pools")) {
            if ((r = parse_pools(cp, cfg)) < 0)
                return r;
        } else if (!strcmp(key, "host")) {
            if ((r = parse_host(cp, cfg)) < 0)
                return r;
        } else {
            return cfg_fail(cp, &m, "unknown key '%s' (known: default-pool, pools, host)", key);
        }
    }
}

int qvm_config_load(const struct qvm_paths *paths, struct qvm_config *ret, struct qvm_error *err)
{
    memset(ret, 0, sizeof *ret);
    char *text = NULL;
    size_t len = 0;
    int r = qvm_read_file(paths->conf_file, QVM_CONFIG_MAX, &text, &len, err);
    if (r == -ENOENT) {
        r = 0;
    } else if (r < 0) {
        return r;
    } else {
        struct cfg_parser cp = { .file = paths->conf_file, .err = err };
        yaml_parser_initialize(&cp.p);
        yaml_parser_set_input_string(&cp.p, (const unsigned char *)text, len);
        r = parse_config(&cp, ret);
        yaml_parser_delete(&cp.p);
    }
    free(text);
    if (r < 0) {
        qvm_config_release(ret);
        return r;
    }
    bool has_default = false;
    for (size_t i = 0; i < ret->npools; i++)
        has_default |= !strcmp(ret->pools[i].name, "default");
    if (!has_default && ret->npools < QVM_MAX_POOLS) {
        struct qvm_pool_config *pc = &ret->pools[ret->npools++];
        pc->name = xstrdup("default");
        pc->driver = xstrdup("dir");
        pc->path = xasprintf("%s/default", paths->pools_dir);
    }
    if (!ret->default_pool)
        ret->default_pool = xstrdup("default");
    return 0;
}

static const struct qvm_pool_config *find(const struct qvm_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->npools; i++)
        if (!strcmp(cfg->pools[i].name, name))
            return &cfg->pools[i];
    return NULL;
}

int qvm_pool_get(struct qvm_ctx *ctx, const char *name, struct qvm_pool *ret,
                 struct qvm_error *err)
{
    struct qvm_config cfg;
    int r = qvm_config_load(&ctx->paths, &cfg, err);
    if (r < 0)
        return r;
    if (!name)
        name = cfg.default_pool;
    const struct qvm_pool_config *pc = find(&cfg, name);
    if (!pc)
        r = qvm_name_check("pool", name, err) < 0 ? -EINVAL
          : qvm_err(err, ENOENT, "no pool named '%s' (see qvm pool ls)", name);
    else
        r = qvm_pool_open(pc->name, pc->driver, pc->path, pc->dataset, pc->mode, ret, err);
    qvm_config_release(&cfg);
    return r;
}

int qvm_pools_all(struct qvm_ctx *ctx, struct qvm_pool **ret, size_t *ret_n,
                  struct qvm_error *err)
{
    struct qvm_config cfg;
    *ret = NULL;
    *ret_n = 0;
    int r = qvm_config_load(&ctx->paths, &cfg, err);
    if (r < 0)
        return r;
    struct qvm_pool *v = xcalloc(cfg.npools ? cfg.npools : 1, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < cfg.npools; i++) {
        const struct qvm_pool_config *pc = &cfg.pools[i];
        struct qvm_error e = { 0 };
        if (qvm_pool_open(pc->name, pc->driver, pc->path, pc->dataset, pc->mode, &v[n], &e) < 0)
            qvm_warn(ctx->ui, "%s (skipped)", e.msg);
        else
            n++;
    }
    qvm_config_release(&cfg);
    *ret = v;
    *ret_n = n;
    return 0;
}

void qvm_pools_free(struct qvm_pool *pools, size_t n)
{
    for (size_t i = 0; i < n; i++)
        qvm_pool_release(&pools[i]);
    free(pools);
}

static int config_save(const struct qvm_paths *paths, const struct qvm_config *cfg,
                       struct qvm_error *err)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, "# qvm pools: written by qvm pool add/rm; see qvm pool --help\n");
    strbuf_addf(&sb, "default-pool: %s\npools:\n", cfg->default_pool);
    for (size_t i = 0; i < cfg->npools; i++) {
        const struct qvm_pool_config *pc = &cfg->pools[i];
        strbuf_addf(&sb, "  %s:\n    driver: %s\n", pc->name, pc->driver);
        /* Values were checked by safe_value: double quotes need no escapes. */
        if (pc->path)
            strbuf_addf(&sb, "    path: \"%s\"\n", pc->path);
        if (pc->dataset)
            strbuf_addf(&sb, "    dataset: \"%s\"\n", pc->dataset);
        if (pc->mode)
            strbuf_addf(&sb, "    mode: %s\n", pc->mode);
        if (pc->runtime)
            strbuf_addf(&sb, "    runtime: %s\n", pc->runtime);
        if (pc->runtime_uri)
            strbuf_addf(&sb, "    runtime-uri: \"%s\"\n", pc->runtime_uri);
    }
    /* Checked sizes and percentages: no quoting needed. */
    if (cfg->host_reserve || cfg->host_arc_share || cfg->host_vm_overhead ||
        cfg->host_tcg_overhead)
        strbuf_addstr(&sb, "host:\n");
    if (cfg->host_reserve)
        strbuf_addf(&sb, "  reserve: %s\n", cfg->host_reserve);
    if (cfg->host_arc_share)
        strbuf_addf(&sb, "  arc-share: %s\n", cfg->host_arc_share);
    if (cfg->host_vm_overhead)
        strbuf_addf(&sb, "  vm-overhead: %s\n", cfg->host_vm_overhead);
    if (cfg->host_tcg_overhead)
        strbuf_addf(&sb, "  tcg-overhead: %s\n", cfg->host_tcg_overhead);
    char *dir = xstrdup(paths->conf_file);
    *strrchr(dir, '/') = '\0';
    int r = qvm_mkdir_p(dir, 0755, err);
    free(dir);
    if (r == 0)
        r = qvm_write_file_atomic(paths->conf_file, sb.buf, sb.len, 0644, err);
    strbuf_release(&sb);
    return r;
}

static void copy_pool_config(struct qvm_pool_config *dst, const struct qvm_pool_config *src)
{
    dst->name = xstrdup(src->name);
    dst->driver = xstrdup(src->driver);
    dst->path = src->path ? xstrdup(src->path) : NULL;
    dst->dataset = src->dataset ? xstrdup(src->dataset) : NULL;
    dst->mode = src->mode ? xstrdup(src->mode) : NULL;
    dst->runtime = src->runtime ? xstrdup(src->runtime) : NULL;
    dst->runtime_uri = src->runtime_uri ? xstrdup(src->runtime_uri) : NULL;
}

int qvm_pool_add(struct qvm_ctx *ctx, const struct qvm_pool_config *pc, bool make_default,
                 struct qvm_error *err)
{
    int r = qvm_name_check("pool", pc->name, err);
    if (r < 0)
        return r;
    const char *vals[] = { pc->path, pc->dataset, pc->mode, pc->runtime, pc->runtime_uri };
    for (size_t i = 0; i < 5; i++)
        if (vals[i] && !safe_value(vals[i]))
            return qvm_err(err, EINVAL, "pool '%s': '%s' is empty or has control characters, "
                           "quotes or backslashes", pc->name, vals[i]);
    struct qvm_config cfg;
    r = qvm_config_load(&ctx->paths, &cfg, err);
    if (r < 0)
        return r;
    struct qvm_pool pool = { 0 };
    if (find(&cfg, pc->name) && !(strcmp(pc->name, "default") == 0 && cfg.npools == 1)) {
        r = qvm_err(err, EEXIST, "pool '%s' already exists", pc->name);
        goto out;
    }
    r = qvm_pool_open(pc->name, pc->driver, pc->path, pc->dataset, pc->mode, &pool, err);
    if (r == 0)
        r = pool.driver->pool_init(&pool, err);
    if (r < 0)
        goto out;
    struct qvm_pool_config *slot = (struct qvm_pool_config *)find(&cfg, pc->name);
    if (slot)
        pool_config_release(slot);       /* replacing the implicit default */
    else if (cfg.npools == QVM_MAX_POOLS) {
        r = qvm_err(err, ENOSPC, "qvm supports at most %d pools", QVM_MAX_POOLS);
        goto out;
    } else
        slot = &cfg.pools[cfg.npools++];
    copy_pool_config(slot, pc);
    if (make_default) {
        free(cfg.default_pool);
        cfg.default_pool = xstrdup(pc->name);
    }
    r = config_save(&ctx->paths, &cfg, err);
out:
    qvm_pool_release(&pool);
    qvm_config_release(&cfg);
    return r;
}

static bool dir_has_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *de;
    bool any = false;
    while (!any && (de = readdir(d)))
        any = qvm_name_valid(de->d_name);
    closedir(d);
    return any;
}

int qvm_pool_remove(struct qvm_ctx *ctx, const char *name, struct qvm_error *err)
{
    struct qvm_pool pool;
    int r = qvm_pool_get(ctx, name, &pool, err);
    if (r < 0)
        return r;
    char *images = xasprintf("%s/images", pool.path);
    char *vms = xasprintf("%s/vms", pool.path);
    if (dir_has_entries(images) || dir_has_entries(vms))
        r = qvm_err(err, ENOTEMPTY, "pool '%s' still holds images or VMs; remove them first",
                    name);
    free(images);
    free(vms);
    qvm_pool_release(&pool);
    if (r < 0)
        return r;
    struct qvm_config cfg;
    r = qvm_config_load(&ctx->paths, &cfg, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < cfg.npools; i++) {
        if (strcmp(cfg.pools[i].name, name) != 0)
            continue;
        pool_config_release(&cfg.pools[i]);
        memmove(&cfg.pools[i], &cfg.pools[i + 1], (cfg.npools - i - 1) * sizeof cfg.pools[0]);
        cfg.npools--;
        break;
    }
    if (!strcmp(cfg.default_pool, name)) {
        free(cfg.default_pool);
        cfg.default_pool = xstrdup("default");
    }
    r = config_save(&ctx->paths, &cfg, err);
    qvm_config_release(&cfg);
    return r;
}
