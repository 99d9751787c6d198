#include "stream.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/frames.h"
#include "core/image.h"
#include "core/journal.h"
#include "core/pools.h"
#include "util/lock.h"
#include "util/names.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

static const char stream_magic[] = "QVMSTREAM 1\n";


/* Runs FN in a child process that gets one end of a pipe; the child's
 * error message comes back through a second pipe. */
struct child {
    pid_t pid;
    int data_fd;          /* our end of the payload pipe */
    int err_fd;           /* the child's error message */
};

typedef int (*child_fn)(void *arg, int fd, struct qvm_error *err);

static int child_start(child_fn fn, void *arg, bool child_writes, struct child *c,
                       struct qvm_error *err)
{
    int data[2], emsg[2];
    if (pipe2(data, O_CLOEXEC) < 0)
        return qvm_err_errno(err, errno, "cannot create a pipe");
    if (pipe2(emsg, O_CLOEXEC) < 0) {
        close(data[0]);
        close(data[1]);
        return qvm_err_errno(err, errno, "cannot create a pipe");
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(data[0]); close(data[1]); close(emsg[0]); close(emsg[1]);
        return qvm_err_errno(err, e, "cannot fork");
    }
    if (pid == 0) {
        close(emsg[0]);
        int mine = child_writes ? data[1] : data[0];
        close(child_writes ? data[0] : data[1]);
        struct qvm_error e = { 0 };
        int r = fn(arg, mine, &e);
        close(mine);
        if (r < 0 && write(emsg[1], e.msg, strlen(e.msg)) < 0)
            _exit(2);
        _exit(r < 0 ? 1 : 0);
    }
    close(emsg[1]);
    close(child_writes ? data[1] : data[0]);
    c->pid = pid;
    c->data_fd = child_writes ? data[0] : data[1];
    c->err_fd = emsg[0];
    return 0;
}

/* Closes our end of the payload pipe and waits for the child; on failure
 * its message goes into ERR. */
static int child_finish(struct child *c, bool kill_it, struct qvm_error *err)
{
    if (c->data_fd >= 0)
        close(c->data_fd);
    c->data_fd = -1;
    if (kill_it)
        kill(c->pid, SIGKILL);
    int st = 0;
    while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
        ;
    char msg[1024];
    ssize_t n = read(c->err_fd, msg, sizeof msg - 1);
    close(c->err_fd);
    if (kill_it)
        return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    msg[n > 0 ? n : 0] = '\0';
    return qvm_err(err, EIO, "%s", n > 0 ? msg : "the storage driver failed");
}

struct send_arg {
    const struct qvm_pool *pool;
    const char *image, *version, *from;
};

static int run_send(void *arg, int fd, struct qvm_error *err)
{
    struct send_arg *a = arg;
    return a->pool->driver->version_send(a->pool, a->image, a->version, a->from, fd, err);
}

int qvm_image_send(struct qvm_ctx *ctx, const char *pool_name, const char *ref, const char *from,
                   int out_fd, struct qvm_error *err)
{
    char name[QVM_NAME_MAX + 1], version[QVM_NAME_MAX + 1];
    int r = qvm_image_ref_parse(ref, name, version, err);
    if (r < 0)
        return r;
    if (!version[0])
        return qvm_err(err, EINVAL, "name the version to send: %s@vN", name);
    struct qvm_image img;
    struct qvm_pool pool = { 0 };
    r = qvm_image_load(ctx, pool_name, name, &img, err);
    if (r < 0)
        return r;
    const struct qvm_image_version *v = NULL, *f = NULL;
    for (size_t i = 0; i < img.nversions; i++) {
        if (img.versions[i].removed)
            continue;
        if (!strcmp(img.versions[i].name, version))
            v = &img.versions[i];
        if (from && !strcmp(img.versions[i].name, from))
            f = &img.versions[i];
    }
    if (!v)
        r = qvm_err(err, ENOENT, "image '%s' has no version %s", name, version);
    else if (from && !f)
        r = qvm_err(err, ENOENT, "image '%s' has no version %s to send changes from", name, from);
    if (r == 0)
        r = qvm_pool_get(ctx, img.pool, &pool, err);
    if (r == 0 && !pool.driver->version_send)
        r = qvm_err(err, ENOTSUP, "pool '%s' (%s) cannot send streams", pool.name,
                    pool.driver->name);
    if (r < 0)
        goto out;

    json_object *h = json_object_new_object();
    json_object_object_add(h, "image", json_object_new_string(name));
    json_object_object_add(h, "version", json_object_new_string(version));
    json_object_object_add(h, "from", from ? json_object_new_string(from) : NULL);
    json_object_object_add(h, "driver", json_object_new_string(pool.driver->name));
    json_object_object_add(h, "format", json_object_new_string(pool.driver->stream_format));
    json_object_object_add(h, "uuid", json_object_new_string(v->uuid));
    json_object_object_add(h, "parent", v->parent ? json_object_new_string(v->parent) : NULL);
    json_object_object_add(h, "created", json_object_new_int64(v->created));
    json_object_object_add(h, "size", json_object_new_int64((int64_t)v->size));
    json_object_object_add(h, "state", json_object_new_string(v->state));
    r = qvm_frames_write_header(out_fd, stream_magic, h, err);
    json_object_put(h);
    if (r < 0)
        goto out;

    struct send_arg a = { &pool, name, version, from };
    struct child c;
    r = child_start(run_send, &a, true, &c, err);
    if (r < 0)
        goto out;
    struct qvm_frames_out fo;
    qvm_frames_out_init(&fo, out_fd);
    char *buf = xmalloc(QVM_STREAM_FRAME_MAX);
    for (;;) {
        ssize_t n = read(c.data_fd, buf, QVM_STREAM_FRAME_MAX);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = qvm_err_errno(err, errno, "cannot read from the storage driver");
            break;
        }
        if (n == 0)
            break;
        if ((r = qvm_frames_out_put(&fo, buf, (size_t)n, err)) < 0)
            break;
    }
    free(buf);
    /* The driver's verdict comes before the end and the checksum: a stream
     * whose sender failed ends without them and is refused by every
     * receiver. */
    struct qvm_error ce = { 0 };
    if (child_finish(&c, false, &ce) < 0 && r == 0)
        r = qvm_err(err, EIO, "sending %s@%s failed: %s", name, version, ce.msg);
    if (r == 0)
        r = qvm_frames_out_end(&fo, err);
    qvm_frames_out_release(&fo);
out:
    qvm_pool_release(&pool);
    qvm_image_release(&img);
    return r;
}

struct recv_arg {
    const struct qvm_pool *pool;
    const char *image, *version, *from;
};

static int run_recv(void *arg, int fd, struct qvm_error *err)
{
    struct recv_arg *a = arg;
    return a->pool->driver->version_receive(a->pool, a->image, a->version, a->from, fd, err);
}

static const char *hstr(json_object *h, const char *k)
{
    json_object *v;
    if (json_object_object_get_ex(h, k, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

int qvm_image_receive(struct qvm_ctx *ctx, const char *pool_name, int in_fd,
                      struct qvm_error *err)
{
    json_object *h = NULL;
    struct qvm_pool pool = { 0 };
    struct qvm_image img = { 0 };
    struct qvm_journal *j = NULL;
    int lock = -1;
    int r = qvm_frames_read_header(in_fd, stream_magic, "qvm image stream", &h, err);
    if (r < 0)
        return r;
    const char *image = hstr(h, "image"), *version = hstr(h, "version"), *from = hstr(h, "from");
    const char *driver = hstr(h, "driver"), *format = hstr(h, "format"), *uuid = hstr(h, "uuid");
    const char *parent = hstr(h, "parent"), *state = hstr(h, "state");
    char vbuf[QVM_NAME_MAX + 1], ibuf[QVM_NAME_MAX + 1];
    char *ref = image && version ? xasprintf("%s@%s", image, version) : NULL;
    if (!image || !version || !driver || !format || !uuid || !state ||
        qvm_image_ref_parse(ref, ibuf, vbuf, NULL) < 0 || !vbuf[0] ||
        (from && !qvm_name_valid(from)) || (parent && !qvm_name_valid(parent)) ||
        strlen(uuid) != 36) {
        r = qvm_err(err, EINVAL, "the stream header is incomplete or has invalid names");
        goto out;
    }
    r = qvm_pool_get(ctx, pool_name, &pool, err);
    if (r < 0)
        goto out;
    if (strcmp(driver, pool.driver->name) || !pool.driver->stream_format ||
        strcmp(format, pool.driver->stream_format)) {
        r = qvm_err(err, EINVAL, "the stream is from a %s pool (%s); pool '%s' is %s: receive it "
                    "into a %s pool", driver, format, pool.name, pool.driver->name, driver);
        goto out;
    }
    lock = qvm_lock_object(ctx->paths.lock_dir, "image", image, false, err);
    if (lock < 0) {
        r = lock;
        goto out;
    }
    bool exists = qvm_image_load_from(&pool, image, &img, NULL) == 0;
    if (!exists && from) {
        r = qvm_err(err, ENOENT, "the stream holds the changes of %s since %s, but pool '%s' has "
                    "no image '%s': receive the full stream of %s first", ref, from, pool.name,
                    image, from);
        goto out;
    }
    for (size_t i = 0; exists && i < img.nversions; i++) {
        if (!strcmp(img.versions[i].name, version) && !img.versions[i].removed) {
            r = qvm_err(err, EEXIST, "pool '%s' already has %s", pool.name, ref);
            goto out;
        }
    }
    if (from)
        qvm_say(ctx->ui, "Receiving %s (the changes since %s) into pool '%s'", ref, from,
                pool.name);
    else
        qvm_say(ctx->ui, "Receiving %s into pool '%s'", ref, pool.name);
    r = qvm_journal_begin(ctx, "image receive", "image", image, &j, err);
    if (r == 0 && !exists) {
        r = qvm_journal_undo_image_destroy(j, pool.name, image, err);
        if (r == 0)
            r = pool.driver->image_create(&pool, image, err);
    }
    if (r == 0)
        r = qvm_journal_undo_version_destroy(j, pool.name, image, version, err);
    if (r < 0)
        goto out;

    struct recv_arg a = { &pool, image, version, from };
    struct child c;
    r = child_start(run_recv, &a, false, &c, err);
    if (r < 0)
        goto out;
    struct qvm_frames_in fi;
    qvm_frames_in_init(&fi, in_fd);
    char *buf = xmalloc(QVM_STREAM_FRAME_MAX);
    for (;;) {
        uint32_t len;
        /* The end marker comes with the checksum, checked here. */
        if ((r = qvm_frames_in_next(&fi, buf, &len, err)) < 0 || len == 0)
            break;
        if ((r = qvm_write_all(c.data_fd, buf, len, "the storage driver's input", err)) < 0) {
            struct qvm_error ce = { 0 };
            child_finish(&c, false, &ce);
            r = qvm_err(err, EIO, "the storage driver stopped reading: %s", ce.msg);
            c.pid = 0;
            break;
        }
    }
    free(buf);
    qvm_frames_in_release(&fi);
    if (c.pid > 0) {
        /* Closing the pipe ends the driver's input: on our failure it sees a
         * cut-short payload and removes what it wrote itself. */
        struct qvm_error ce = { 0 };
        if (child_finish(&c, false, &ce) < 0 && r == 0)
            r = qvm_err(err, EIO, "receiving %s failed: %s", ref, ce.msg);
    }
    if (r == 0)
        r = qvm_fault_point("version-received", err);
    if (r == 0) {
        if (!exists) {
            img.name = xstrdup(image);
            img.pool = xstrdup(pool.name);
        }
        /* A version removed earlier keeps its history entry: reuse it. */
        struct qvm_image_version *v = NULL;
        for (size_t i = 0; i < img.nversions; i++)
            if (!strcmp(img.versions[i].name, version))
                v = &img.versions[i];
        if (v) {
            free(v->name);
            free(v->uuid);
            free(v->parent);
            free(v->state);
        } else {
            img.versions = xrealloc(img.versions, (img.nversions + 1) * sizeof *img.versions);
            v = &img.versions[img.nversions++];
        }
        memset(v, 0, sizeof *v);
        json_object *x;
        v->name = xstrdup(version);
        v->uuid = xstrdup(uuid);
        v->parent = parent ? xstrdup(parent) : NULL;
        v->created = json_object_object_get_ex(h, "created", &x) ? json_object_get_int64(x) : 0;
        v->size = json_object_object_get_ex(h, "size", &x) ? (uint64_t)json_object_get_int64(x) : 0;
        v->state = xstrdup(state);
        r = qvm_image_save(&pool, &img, err);
    }
    if (r == 0) {
        r = qvm_journal_commit(j, err);
        j = NULL;
    }
    if (r == 0)
        qvm_say(ctx->ui, "Received %s (%s)", ref, state);
out:
    if (j) {
        struct qvm_error rb = { 0 };
        if (qvm_journal_rollback(j, &rb) < 0)
            qvm_err_wrap(err, "%s; also", rb.msg);
    }
    qvm_unlock(lock);
    free(ref);
    qvm_image_release(&img);
    qvm_pool_release(&pool);
    json_object_put(h);
    return r;
}
