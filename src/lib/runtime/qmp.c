/* qmp.c - the QMP/QGA connection: sockets, the JSON byte stream, request ids,
 * the event queue, and the guest agent's stream synchronisation (see qmp.h).
 *
 * Messages are cut out of the byte stream by json_tokener alone; QEMU ends
 * each with a newline, but nothing here depends on it. Once the stream is
 * broken (peer gone, malformed or oversized message) the connection is dead:
 * every later call fails at once with the same error instead of guessing
 * where the next message starts. guest-exec lives in qga.c, on top of
 * qvm_qmp_execute. */
#include "qmp.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/strbuf.h"

#define DEFAULT_TIMEOUT_MS 30000
#define MAX_QUEUED_EVENTS 256    /* oldest dropped beyond this */
#define MAX_JSON_DEPTH 128       /* query-block nests one level per backing file */
#define READ_CHUNK 65536
#define QGA_SENTINEL 0xFF        /* precedes the reply to guest-sync-delimited */

struct qvm_qmp {
    int fd;
    bool qga;
    const char *peer;              /* "QEMU" or "the guest agent", for messages */
    struct json_tokener *tok;
    struct strbuf in;              /* bytes read, not yet fed to tok */
    size_t in_pos;
    size_t msg_bytes;              /* fed to tok since the last complete message */
    bool skip_to_sentinel;         /* QGA sync: discard input up to 0xFF */
    struct json_object *events[MAX_QUEUED_EVENTS];
    size_t nevents;
    uint64_t next_id;
    int dead;                      /* negative errno once the stream is unusable */
    char dead_msg[256];
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long deadline_after(int timeout_ms)
{
    return now_ms() + (timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS);
}

static int remaining(long long deadline)
{
    long long left = deadline - now_ms();
    return left <= 0 ? 0 : left > 1000000000 ? 1000000000 : (int)left;
}

static int mark_dead(struct qvm_qmp *q, int code, struct qvm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int mark_dead(struct qvm_qmp *q, int code, struct qvm_error *err, const char *fmt, ...)
{
    if (!q->dead) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(q->dead_msg, sizeof q->dead_msg, fmt, ap);
        va_end(ap);
        q->dead = -code;
    }
    return qvm_err(err, -q->dead, "%s", q->dead_msg);
}

static int peer_closed(struct qvm_qmp *q, struct qvm_error *err)
{
    if (q->qga)
        return mark_dead(q, ECONNRESET, err,
                         "the guest agent channel was closed (is the VM still running?)");
    return mark_dead(q, ECONNRESET, err,
                     "QEMU closed the monitor connection (is it still running?)");
}

/* Reads what is available, waiting until DEADLINE. 0, -ETIMEDOUT (no message
 * filled: the caller words it) or a dead-connection error. */
static int read_more(struct qvm_qmp *q, long long deadline, struct qvm_error *err)
{
    for (;;) {
        struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
        int pr = poll(&pfd, 1, remaining(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return qvm_err_errno(err, errno, "cannot poll the %s socket", q->qga ? "QGA" : "QMP");
        if (pr == 0)
            return -ETIMEDOUT;
        strbuf_grow(&q->in, READ_CHUNK);
        ssize_t n = recv(q->fd, q->in.buf + q->in.len, READ_CHUNK, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
            return peer_closed(q, err);
        if (n < 0)
            return mark_dead(q, errno, err, "cannot read from %s: %s", q->peer, strerror(errno));
        q->in.len += (size_t)n;
        q->in.buf[q->in.len] = '\0';
        return 0;
    }
}

/* The next complete JSON value from the stream (caller puts it). */
static int next_message(struct qvm_qmp *q, long long deadline, struct json_object **ret,
                        struct qvm_error *err)
{
    if (q->dead)
        return qvm_err(err, -q->dead, "%s", q->dead_msg);
    for (;;) {
        while (q->in_pos < q->in.len) {
            const char *p = q->in.buf + q->in_pos;
            size_t avail = q->in.len - q->in_pos;
            if (q->skip_to_sentinel) {
                const char *s = memchr(p, QGA_SENTINEL, avail);
                q->in_pos = s ? (size_t)(s - q->in.buf) + 1 : q->in.len;
                if (s) {
                    q->skip_to_sentinel = false;
                    json_tokener_reset(q->tok);
                    q->msg_bytes = 0;
                }
                continue;
            }
            /* Never hand json-c more than one byte past the cap, so an
             * endless message costs at most the cap in memory. */
            size_t room = QVM_QMP_MAX_MESSAGE + 1 - q->msg_bytes;
            size_t feed = avail < room ? avail : room;
            struct json_object *obj = json_tokener_parse_ex(q->tok, p, (int)feed);
            enum json_tokener_error jerr = json_tokener_get_error(q->tok);
            size_t used = json_tokener_get_parse_end(q->tok);
            q->in_pos += used;
            q->msg_bytes += used;
            if (obj) {
                json_tokener_reset(q->tok);
                q->msg_bytes = 0;
                if (!json_object_is_type(obj, json_type_object)) {
                    json_object_put(obj);
                    return mark_dead(q, EPROTO, err,
                                     "malformed message from %s: not a JSON object", q->peer);
                }
                *ret = obj;
                return 0;
            }
            if (jerr != json_tokener_continue)
                return mark_dead(q, EPROTO, err, "malformed message from %s: %s", q->peer,
                                 json_tokener_error_desc(jerr));
            if (q->msg_bytes > QVM_QMP_MAX_MESSAGE)
                return mark_dead(q, EMSGSIZE, err,
                                 "message from %s exceeds the limit of %u bytes", q->peer,
                                 QVM_QMP_MAX_MESSAGE);
            if (used == 0)
                return mark_dead(q, EPROTO, err, "malformed message from %s", q->peer);
        }
        strbuf_reset(&q->in);
        q->in_pos = 0;
        int r = read_more(q, deadline, err);
        if (r < 0)
            return r;
    }
}

static int send_all(struct qvm_qmp *q, const char *data, size_t len, long long deadline,
                    struct qvm_error *err)
{
    while (len) {
        ssize_t n = send(q->fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            return peer_closed(q, err);
        if (n < 0 && errno != EAGAIN)
            return mark_dead(q, errno, err, "cannot write to %s: %s", q->peer, strerror(errno));
        struct pollfd pfd = { .fd = q->fd, .events = POLLOUT };
        int pr = poll(&pfd, 1, remaining(deadline));
        if (pr < 0 && errno != EINTR)
            return qvm_err_errno(err, errno, "cannot poll the %s socket", q->qga ? "QGA" : "QMP");
        if (pr == 0)
            return qvm_err(err, ETIMEDOUT, "%s is not reading its socket", q->peer);
    }
    return 0;
}

static void queue_event(struct qvm_qmp *q, struct json_object *ev)
{
    if (q->nevents == MAX_QUEUED_EVENTS) {
        json_object_put(q->events[0]);
        memmove(q->events, q->events + 1, (MAX_QUEUED_EVENTS - 1) * sizeof *q->events);
        q->nevents--;
    }
    q->events[q->nevents++] = ev;
}

static const char *member_string(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int connect_socket(const char *path, int timeout_ms, const char *what,
                          qvm_qmp_alive_fn *alive, void *alive_arg, int *ret_fd,
                          struct qvm_error *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path)
        return qvm_err(err, ENAMETOOLONG, "%s socket path %s is too long (limit %zu bytes)",
                       what, path, sizeof sa.sun_path - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    long long deadline = deadline_after(timeout_ms);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return qvm_err_errno(err, errno, "cannot create a socket for %s", path);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            *ret_fd = fd;
            return 0;
        }
        int e = errno;
        close(fd);
        /* The socket appears, and starts listening, a moment after QEMU
         * starts; EAGAIN is a full listen backlog. */
        if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN && e != EINTR)
            return qvm_err_errno(err, e, "cannot connect to %s socket %s", what, path);
        /* A socket left by a dead QEMU refuses forever: do not wait for it. */
        if (alive && !alive(alive_arg))
            return qvm_err(err, ESRCH, "cannot connect to %s socket %s: the process serving it "
                           "has exited", what, path);
        int left = remaining(deadline);
        if (left == 0)
            return qvm_err_errno(err, e, "cannot connect to %s socket %s within %d ms", what,
                                 path, timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS);
        usleep((useconds_t)(left < 50 ? left : 50) * 1000);
    }
}

static struct qvm_qmp *qmp_new(int fd, bool qga)
{
    struct qvm_qmp *q = xcalloc(1, sizeof *q);
    q->fd = fd;
    q->qga = qga;
    q->peer = qga ? "the guest agent" : "QEMU";
    q->tok = json_tokener_new_ex(MAX_JSON_DEPTH);
    if (!q->tok)
        abort();   /* allocation failure, as in strbuf */
    strbuf_init(&q->in);
    return q;
}

void qvm_qmp_close(struct qvm_qmp *q)
{
    if (!q)
        return;
    if (q->fd >= 0)
        close(q->fd);
    json_tokener_free(q->tok);
    strbuf_release(&q->in);
    for (size_t i = 0; i < q->nevents; i++)
        json_object_put(q->events[i]);
    free(q);
}

int qvm_qmp_execute(struct qvm_qmp *q, const char *command, struct json_object *args,
                    int timeout_ms, struct json_object **ret_return, struct qvm_error *err)
{
    if (q->dead)
        return qvm_err(err, -q->dead, "%s", q->dead_msg);
    long long deadline = deadline_after(timeout_ms);
    /* The pid keeps ids of different clients apart, should a reply to an
     * earlier client still be in the stream. */
    char id[64];
    snprintf(id, sizeof id, "qvm-%ld-%" PRIu64, (long)getpid(), ++q->next_id);

    struct json_object *req = json_object_new_object();
    json_object_object_add(req, "execute", json_object_new_string(command));
    if (args)
        json_object_object_add(req, "arguments", json_object_get(args));
    json_object_object_add(req, "id", json_object_new_string(id));
    struct strbuf line = STRBUF_INIT;
    strbuf_addstr(&line, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
    strbuf_addch(&line, '\n');
    json_object_put(req);
    int r = send_all(q, line.buf, line.len, deadline, err);
    strbuf_release(&line);
    if (r < 0)
        return r;

    for (;;) {
        struct json_object *msg = NULL;
        r = next_message(q, deadline, &msg, err);
        if (r == -ETIMEDOUT)
            return qvm_err(err, ETIMEDOUT, "no reply from %s to '%s' within %d ms", q->peer,
                           command, timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS);
        if (r < 0)
            return r;
        if (member_string(msg, "event")) {
            queue_event(q, msg);
            continue;
        }
        struct json_object *ret_v = NULL, *err_v = NULL;
        bool has_ret = json_object_object_get_ex(msg, "return", &ret_v);
        bool has_err = json_object_object_get_ex(msg, "error", &err_v);
        struct json_object *id_v = NULL;
        bool has_id = json_object_object_get_ex(msg, "id", &id_v);
        /* A reply whose id is not ours answers a request that timed out
         * earlier: skip it. An agent that does not echo ids is taken at its
         * word, since it answers strictly in order after the sync. */
        bool ours = (has_ret || has_err) &&
                    (has_id ? json_object_is_type(id_v, json_type_string) &&
                                  strcmp(json_object_get_string(id_v), id) == 0
                            : q->qga);
        if (!ours) {
            json_object_put(msg);
            continue;
        }
        if (has_err) {
            const char *desc = member_string(err_v, "desc");
            const char *cls = member_string(err_v, "class");
            r = qvm_err(err, EIO, "%s command '%s' failed: %s (%s)",
                        q->qga ? "guest agent" : "QMP", command,
                        desc ? desc : "no description", cls ? cls : "no class");
        } else if (ret_return) {
            *ret_return = json_object_get(ret_v);
        }
        json_object_put(msg);
        return r;
    }
}

int qvm_qmp_connect(const char *socket_path, int timeout_ms, struct qvm_qmp **ret,
                    struct qvm_error *err)
{
    return qvm_qmp_connect_watch(socket_path, timeout_ms, NULL, NULL, ret, err);
}

int qvm_qmp_connect_watch(const char *socket_path, int timeout_ms, qvm_qmp_alive_fn *alive,
                          void *alive_arg, struct qvm_qmp **ret, struct qvm_error *err)
{
    long long deadline = deadline_after(timeout_ms);
    int fd;
    int r = connect_socket(socket_path, timeout_ms, "QMP", alive, alive_arg, &fd, err);
    if (r < 0)
        return r;
    struct qvm_qmp *q = qmp_new(fd, false);

    /* {"QMP": {"version": {...}, "capabilities": ["oob"]}} */
    for (;;) {
        struct json_object *msg = NULL;
        r = next_message(q, deadline, &msg, err);
        if (r == -ETIMEDOUT)
            r = qvm_err(err, ETIMEDOUT,
                        "no QMP greeting within %d ms (is another client connected?)",
                        timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS);
        if (r < 0)
            goto fail;
        bool greeting = json_object_object_get_ex(msg, "QMP", NULL);
        json_object_put(msg);
        if (greeting)
            break;
    }
    int left = remaining(deadline);
    r = qvm_qmp_execute(q, "qmp_capabilities", NULL, left > 0 ? left : 1, NULL, err);
    if (r < 0)
        goto fail;
    *ret = q;
    return 0;
fail:
    qvm_err_wrap(err, "cannot talk to QEMU on %s", socket_path);
    qvm_qmp_close(q);
    return r;
}

/* The agent answers guest-sync-delimited with 0xFF and then {"return": ID}.
 * Everything before that is left over from an earlier client and dropped;
 * the 0xFF we send first makes the agent drop a half-received request. */
int qvm_qga_connect(const char *socket_path, int timeout_ms, struct qvm_qmp **ret,
                    struct qvm_error *err)
{
    return qvm_qga_connect_watch(socket_path, timeout_ms, NULL, NULL, ret, err);
}

int qvm_qga_connect_watch(const char *socket_path, int timeout_ms, qvm_qmp_alive_fn *alive,
                          void *alive_arg, struct qvm_qmp **ret, struct qvm_error *err)
{
    long long deadline = deadline_after(timeout_ms);
    int fd;
    int r = connect_socket(socket_path, timeout_ms, "guest agent", alive, alive_arg, &fd, err);
    if (r < 0)
        return r;
    struct qvm_qmp *q = qmp_new(fd, true);

    uint32_t rnd;
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
        rnd = (uint32_t)now_ms() ^ (uint32_t)getpid() << 16;
    int64_t sync_id = (int64_t)(rnd & 0x7fffffff) + 1;

    struct strbuf req = STRBUF_INIT;
    strbuf_addch(&req, (char)QGA_SENTINEL);
    strbuf_addf(&req, "{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%" PRId64 "}}\n",
                sync_id);
    r = send_all(q, req.buf, req.len, deadline, err);
    strbuf_release(&req);
    if (r < 0)
        goto fail;
    q->skip_to_sentinel = true;
    for (;;) {
        struct json_object *msg = NULL, *v = NULL;
        r = next_message(q, deadline, &msg, err);
        if (r == -ETIMEDOUT)
            r = qvm_err(err, ETIMEDOUT,
                        "the guest agent did not answer within %d ms "
                        "(is qemu-guest-agent running in the guest?)",
                        timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS);
        if (r < 0)
            goto fail;
        bool match = json_object_object_get_ex(msg, "return", &v) &&
                     json_object_is_type(v, json_type_int) &&
                     json_object_get_int64(v) == sync_id;
        json_object_put(msg);
        if (match)
            break;
    }
    *ret = q;
    return 0;
fail:
    qvm_err_wrap(err, "cannot talk to the guest agent on %s", socket_path);
    qvm_qmp_close(q);
    return r;
}

int qvm_qmp_wait_event(struct qvm_qmp *q, const char *event, int timeout_ms,
                       struct qvm_error *err)
{
    for (size_t i = 0; i < q->nevents; i++) {
        const char *name = member_string(q->events[i], "event");
        if (name && strcmp(name, event) == 0) {
            json_object_put(q->events[i]);
            memmove(q->events + i, q->events + i + 1, (q->nevents - i - 1) * sizeof *q->events);
            q->nevents--;
            return 0;
        }
    }
    long long deadline = deadline_after(timeout_ms);
    for (;;) {
        struct json_object *msg = NULL;
        int r = next_message(q, deadline, &msg, err);
        if (r == -ETIMEDOUT)
            return qvm_err(err, ETIMEDOUT, "no %s event from %s within %d ms", event, q->peer,
                           timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS);
        if (r < 0)
            return r;
        const char *name = member_string(msg, "event");
        if (name && strcmp(name, event) == 0) {
            json_object_put(msg);
            return 0;
        }
        if (name)
            queue_event(q, msg);
        else
            json_object_put(msg);   /* a late reply to a request that timed out */
    }
}
