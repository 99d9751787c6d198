/* qmp_probe.c - drives the QMP client against a real QEMU for
 * tests/integration/qmp.sh. Not a unit test: it prints one line per step
 * ("what: result") and the script checks them.
 *
 *   qmp_probe SOCKET basic          the full conversation, ending in quit
 *   qmp_probe SOCKET dead           connect, wait for a line on stdin, then
 *                                   run query-status (QEMU was killed)
 *   qmp_probe SOCKET connect MS     connect with a timeout of MS and quit
 *   qmp_probe SOCKET fake SCENARIO  serve SOCKET from a scripted fake QEMU or
 *                                   guest agent (a child process) and talk
 *                                   to it: split, oversize, garbage, qga */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/qmp.h"
#include "util/strbuf.h"

/* From runtime/qga.c. */
char *qvm_base64_encode(const void *data, size_t len);

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void report(const char *what, int r, const struct qvm_error *err)
{
    if (r == 0)
        printf("%s: ok\n", what);
    else
        printf("%s: rc=%d msg=%s\n", what, r, err->msg);
    fflush(stdout);
}

static int status(struct qvm_qmp *q, const char *what)
{
    struct qvm_error err = { 0 };
    struct json_object *ret = NULL, *v;
    int r = qvm_qmp_execute(q, "query-status", NULL, 5000, &ret, &err);
    if (r < 0) {
        report(what, r, &err);
        return r;
    }
    const char *st = json_object_object_get_ex(ret, "status", &v) ? json_object_get_string(v) : "?";
    int running = json_object_object_get_ex(ret, "running", &v) && json_object_get_boolean(v);
    printf("%s: status=%s running=%s\n", what, st, running ? "true" : "false");
    fflush(stdout);
    json_object_put(ret);
    return 0;
}

static int basic(struct qvm_qmp *q)
{
    struct qvm_error err = { 0 };
    struct json_object *ret = NULL, *v, *qemu;

    int r = qvm_qmp_execute(q, "query-version", NULL, 5000, &ret, &err);
    if (r == 0 && json_object_object_get_ex(ret, "qemu", &qemu)) {
        int maj = json_object_object_get_ex(qemu, "major", &v) ? json_object_get_int(v) : -1;
        int min = json_object_object_get_ex(qemu, "minor", &v) ? json_object_get_int(v) : -1;
        printf("version: %d.%d\n", maj, min);
    } else {
        report("version", r, &err);
    }
    json_object_put(ret);
    ret = NULL;

    status(q, "status-before");
    report("cont", qvm_qmp_execute(q, "cont", NULL, 5000, NULL, &err), &err);
    /* RESUME arrives around the reply to cont: it must have been queued. */
    report("event-resume", qvm_qmp_wait_event(q, "RESUME", 2000, &err), &err);
    status(q, "status-after");

    /* Arguments reach QEMU. */
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "command-line", json_object_new_string("info name"));
    r = qvm_qmp_execute(q, "human-monitor-command", args, 5000, &ret, &err);
    json_object_put(args);
    if (r == 0)
        printf("hmp-info-name: %s", json_object_get_string(ret));
    else
        report("hmp-info-name", r, &err);
    json_object_put(ret);
    ret = NULL;

    qvm_err_clear(&err);
    report("unknown-command", qvm_qmp_execute(q, "no-such-command", NULL, 5000, NULL, &err),
           &err);
    args = json_object_new_object();
    json_object_object_add(args, "id", json_object_new_string("nonexistent0"));
    report("bad-argument", qvm_qmp_execute(q, "device_del", args, 5000, NULL, &err), &err);
    json_object_put(args);
    status(q, "status-after-errors");

    report("event-timeout", qvm_qmp_wait_event(q, "NO_SUCH_EVENT", 300, &err), &err);

    report("powerdown", qvm_qmp_execute(q, "system_powerdown", NULL, 5000, NULL, &err), &err);
    report("event-powerdown", qvm_qmp_wait_event(q, "POWERDOWN", 5000, &err), &err);

    report("quit", qvm_qmp_execute(q, "quit", NULL, 5000, NULL, &err), &err);
    report("event-shutdown", qvm_qmp_wait_event(q, "SHUTDOWN", 5000, &err), &err);
    long long t0 = now_ms();
    r = status(q, "status-after-quit");
    printf("status-after-quit-ms: %lld\n", now_ms() - t0);
    report("event-after-quit", qvm_qmp_wait_event(q, "RESET", 5000, &err), &err);
    return 0;
}

/* ---- the fake server (child process) ---- */

struct peer {
    int fd;
    struct strbuf in;
};

static void srv_write(struct peer *p, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(p->fd, data, len);
        if (n <= 0)
            _exit(0);   /* the client went away: the scenario is over */
        data += n;
        len -= (size_t)n;
    }
}

static void srv_send(struct peer *p, const char *s)
{
    srv_write(p, s, strlen(s));
}

static void srv_sendf(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void srv_sendf(struct peer *p, const char *fmt, ...)
{
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vaddf(&sb, fmt, ap);
    va_end(ap);
    srv_write(p, sb.buf, sb.len);
    strbuf_release(&sb);
}

/* The next request line, 0xFF bytes dropped; exits when the client is gone. */
static struct json_object *srv_recv(struct peer *p)
{
    for (;;) {
        char *nl = memchr(p->in.buf, '\n', p->in.len);
        if (nl) {
            *nl = '\0';
            char *start = p->in.buf;
            while (*start == '\xff')
                start++;
            struct json_object *o = json_tokener_parse(start);
            size_t rest = p->in.len - (size_t)(nl + 1 - p->in.buf);
            memmove(p->in.buf, nl + 1, rest);
            p->in.len = rest;
            p->in.buf[rest] = '\0';
            if (!o)
                _exit(3);
            return o;
        }
        char buf[4096];
        ssize_t n = read(p->fd, buf, sizeof buf);
        if (n <= 0)
            _exit(0);
        strbuf_add(&p->in, buf, (size_t)n);
    }
}

static const char *req_str(struct json_object *req, const char *key)
{
    struct json_object *v;
    return json_object_object_get_ex(req, key, &v) ? json_object_get_string(v) : "";
}

static void greet(struct peer *p, bool slowly)
{
    const char *g = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, "
                    "\"major\": 7}, \"package\": \"fake\"}, \"capabilities\": [\"oob\"]}}";
    if (slowly) {
        for (const char *c = g; *c; c++) {
            srv_write(p, c, 1);
            if ((c - g) % 16 == 0)
                usleep(1000);
        }
    } else {
        srv_send(p, g);
        srv_send(p, "\r\n");
    }
    struct json_object *req = srv_recv(p);
    if (strcmp(req_str(req, "execute"), "qmp_capabilities") != 0)
        _exit(4);
    srv_sendf(p, "{\"return\": {}, \"id\": \"%s\"}", req_str(req, "id"));
    json_object_put(req);
}

static void scenario_split(struct peer *p)
{
    /* No newline after the greeting, after the capabilities reply or
     * between messages: only the JSON itself separates them. */
    greet(p, true);
    srv_send(p, "{\"event\": \"EARLY\", \"data\": {}}");
    struct json_object *req = srv_recv(p);
    char *id = xstrdup(req_str(req, "id"));
    json_object_put(req);
    srv_send(p, "{\"return\": {\"status\": \"stale\"}, \"id\": \"someone-else\"}"
                "\r\n{\"event\":\"RESUME\",\"timestamp\":{\"seconds\":1,\"microseconds\":2}}");
    usleep(50000);
    srv_send(p, "  {\"return\": {\"sta");
    usleep(50000);
    srv_sendf(p, "tus\": \"running\", \"running\": true, \"note\": \"}{\\\"\"}, \"i");
    usleep(50000);
    srv_sendf(p, "d\": \"%s\"}\n", id);
    free(id);
    req = srv_recv(p);
    srv_sendf(p, "{\"id\": \"%s\", \"error\": {\"class\": \"GenericError\", "
                 "\"desc\": \"boom \\u00e9\"}}", req_str(req, "id"));
    json_object_put(req);
    req = srv_recv(p);   /* then the connection drops mid-reply */
    json_object_put(req);
    srv_send(p, "{\"return\": {\"sta");
}

static void scenario_oversize(struct peer *p)
{
    greet(p, false);
    struct json_object *req = srv_recv(p);
    json_object_put(req);
    srv_send(p, "{\"return\": \"");
    static char chunk[65536];
    memset(chunk, 'A', sizeof chunk);
    for (int i = 0; i < 17 * 16; i++)   /* 17 MiB, never terminated */
        srv_write(p, chunk, sizeof chunk);
    pause();
}

static void scenario_garbage(struct peer *p)
{
    greet(p, false);
    struct json_object *req = srv_recv(p);
    json_object_put(req);
    srv_send(p, "{\"return\": {}}\n]\n");
    pause();
}

static void scenario_qga(struct peer *p)
{
    /* Left in the channel by an earlier client: replies and half a request. */
    srv_send(p, "{\"return\": 1234}\n{\"return\": {\"pid\": 1}}\n{\"error\": {\"cla");
    struct json_object *req = srv_recv(p);
    struct json_object *args, *v;
    if (strcmp(req_str(req, "execute"), "guest-sync-delimited") != 0 ||
        !json_object_object_get_ex(req, "arguments", &args) ||
        !json_object_object_get_ex(args, "id", &v))
        _exit(5);
    long long sync_id = (long long)json_object_get_int64(v);
    json_object_put(req);
    srv_sendf(p, "{\"return\": %lld}\n\xff{\"return\": %lld}\n", sync_id + 1, sync_id);

    req = srv_recv(p);
    if (strcmp(req_str(req, "execute"), "guest-exec") != 0)
        _exit(6);
    json_object_object_get_ex(req, "arguments", &args);
    /* echo what arrived, so the client can check it */
    char *in = xstrdup(json_object_object_get_ex(args, "input-data", &v) ?
                       json_object_get_string(v) : "");
    char *path = xstrdup(json_object_object_get_ex(args, "path", &v) ?
                         json_object_get_string(v) : "");
    char *argl = xstrdup(json_object_object_get_ex(args, "arg", &v) ?
                         json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN) : "");
    json_object_put(req);
    srv_send(p, "{\"return\": {\"pid\": 4242}}\n");   /* an agent that echoes no id */

    for (int polls = 0;; polls++) {
        req = srv_recv(p);
        if (strcmp(req_str(req, "execute"), "guest-exec-status") != 0)
            _exit(7);
        const char *id = req_str(req, "id");
        if (polls < 2) {
            srv_sendf(p, "{\"return\": {\"exited\": false}, \"id\": \"%s\"}\n", id);
            json_object_put(req);
            continue;
        }
        struct strbuf out = STRBUF_INIT;
        strbuf_addf(&out, "path=%s arg=%s input-b64=%s", path, argl, in);
        char *o = qvm_base64_encode(out.buf, out.len);
        char *e = qvm_base64_encode("err\0bytes", 9);
        srv_sendf(p, "{\"return\": {\"exited\": true, \"exitcode\": 7, \"out-data\": \"%s\", "
                     "\"err-data\": \"%s\"}, \"id\": \"%s\"}\n", o, e, id);
        free(o);
        free(e);
        strbuf_release(&out);
        json_object_put(req);
        break;
    }
    free(in);
    free(path);
    free(argl);
    pause();
}

static pid_t start_fake(const char *path, const char *scenario)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    unlink(path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4) < 0) {
        perror(path);
        exit(1);
    }
    pid_t pid = fork();
    if (pid != 0) {
        close(lfd);
        return pid;
    }
    signal(SIGPIPE, SIG_IGN);
    struct peer p = { .fd = accept(lfd, NULL, NULL) };
    strbuf_init(&p.in);
    if (p.fd < 0)
        _exit(2);
    if (strcmp(scenario, "split") == 0)
        scenario_split(&p);
    else if (strcmp(scenario, "oversize") == 0)
        scenario_oversize(&p);
    else if (strcmp(scenario, "garbage") == 0)
        scenario_garbage(&p);
    else if (strcmp(scenario, "qga") == 0)
        scenario_qga(&p);
    _exit(0);
}

static void print_bytes(const char *what, const char *s, size_t len)
{
    printf("%s: ", what);
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 0x20 && s[i] < 0x7f)
            putchar(s[i]);
        else
            printf("\\x%02x", (unsigned char)s[i]);
    printf("\n");
}

static int fake(const char *path, const char *scenario)
{
    pid_t child = start_fake(path, scenario);
    struct qvm_error err = { 0 };
    struct qvm_qmp *q = NULL;
    int r;
    if (strcmp(scenario, "qga") == 0) {
        r = qvm_qga_connect(path, 5000, &q, &err);
        report("qga-connect", r, &err);
        if (r == 0) {
            int code = -1;
            char *out = NULL, *errs = NULL;
            size_t out_len = 0, err_len = 0;
            const char *argv[] = { "/bin/sh", "-c", "echo \"$0\"", "x y", NULL };
            long long t0 = now_ms();
            r = qvm_qga_exec(q, argv, "input\n", 5000, &code, &out, &out_len, &errs, &err_len,
                             &err);
            report("qga-exec", r, &err);
            if (r == 0) {
                printf("qga-exit: %d\n", code);
                print_bytes("qga-out", out, out_len);
                print_bytes("qga-err", errs, err_len);
                printf("qga-polled-ms: %lld\n", now_ms() - t0);
            }
            free(out);
            free(errs);
        }
    } else {
        r = qvm_qmp_connect(path, 5000, &q, &err);
        report("connect", r, &err);
    }
    if (r == 0 && strcmp(scenario, "split") == 0) {
        status(q, "split-status");
        report("split-queued-early", qvm_qmp_wait_event(q, "EARLY", 100, &err), &err);
        report("split-queued-resume", qvm_qmp_wait_event(q, "RESUME", 100, &err), &err);
        report("split-error", qvm_qmp_execute(q, "query-x", NULL, 5000, NULL, &err), &err);
        report("split-eof", qvm_qmp_execute(q, "query-y", NULL, 5000, NULL, &err), &err);
    } else if (r == 0 && (strcmp(scenario, "oversize") == 0 || strcmp(scenario, "garbage") == 0)) {
        report(scenario, qvm_qmp_execute(q, "query-status", NULL, 10000, NULL, &err), &err);
        report("then", qvm_qmp_execute(q, "query-status", NULL, 1000, NULL, &err), &err);
    }
    qvm_qmp_close(q);
    kill(child, SIGKILL);
    int st;
    waitpid(child, &st, 0);
    unlink(path);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: qmp_probe SOCKET basic|dead|connect [MS]\n");
        return 2;
    }
    const char *mode = argv[2];
    if (strcmp(mode, "fake") == 0)
        return argc > 3 ? fake(argv[1], argv[3]) : 2;
    int timeout = argc > 3 ? atoi(argv[3]) : 10000;
    struct qvm_error err = { 0 };
    struct qvm_qmp *q = NULL;
    long long t0 = now_ms();
    int r = qvm_qmp_connect(argv[1], timeout, &q, &err);
    report("connect", r, &err);
    printf("connect-ms: %lld\n", now_ms() - t0);
    fflush(stdout);
    if (r < 0)
        return 1;

    if (strcmp(mode, "basic") == 0) {
        basic(q);
    } else if (strcmp(mode, "dead") == 0) {
        char line[64];
        if (!fgets(line, sizeof line, stdin))
            return 1;
        t0 = now_ms();
        status(q, "status-after-kill");
        printf("status-after-kill-ms: %lld\n", now_ms() - t0);
        status(q, "status-again");
    } else if (strcmp(mode, "connect") == 0) {
        status(q, "status");
    }
    qvm_qmp_close(q);
    return 0;
}
