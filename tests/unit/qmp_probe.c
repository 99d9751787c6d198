/* qmp_probe.c - drives the QMP client against a real QEMU for
 * tests/integration/qmp.sh. Not a unit test: it prints one line per step
 * ("what: result") and the script checks them.
 *
 *   qmp_probe SOCKET basic          the full conversation, ending in quit
 *   qmp_probe SOCKET dead           connect, wait for a line on stdin, then
 *                                   run query-status (QEMU was killed)
 *   qmp_probe SOCKET connect MS     connect with a timeout of MS and quit */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/qmp.h"

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

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: qmp_probe SOCKET basic|dead|connect [MS]\n");
        return 2;
    }
    const char *mode = argv[2];
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
