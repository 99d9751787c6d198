/* test_subprocess.c - qvm_run, qvm_argv_to_string, qvm_last_line.
 *
 * The library never uses a shell; the tests do, only to make a child that
 * prints or exits in a given way. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* True if this process has no child left (exited or not): every child
 * qvm_run started was reaped. */
static int no_children(void)
{
    int st;
    return waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD;
}

static int sh(const char *script, const struct qvm_run_opts *opts, struct qvm_run_result *res,
              struct qvm_error *err)
{
    const char *argv[] = { "/bin/sh", "-c", script, NULL };
    return qvm_run(argv, opts, res, err);
}

static void test_capture(void)
{
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    int r = sh("echo out1; echo err1 >&2; printf out2; printf 'err2\\n' >&2", NULL, &res, &err);
    CHECK(r == 0, "a child that exits 0 succeeds (r=%d: %s)", r, err.msg);
    CHECK(res.status == 0 && !res.timed_out, "status 0, not timed out");
    CHECK_STR(res.out, "out1\nout2", "stdout captured");
    CHECK(res.out_len == 9, "stdout length");
    CHECK_STR(res.err, "err1\nerr2\n", "stderr captured separately");
    CHECK(res.err_len == 10, "stderr length");
    CHECK(err.code == 0, "no error set on success");
    qvm_run_result_release(&res);
    CHECK(res.out == NULL && res.err == NULL && res.out_len == 0, "release clears the result");
    qvm_run_result_release(&res);
    qvm_run_result_release(NULL);

    r = sh("true", NULL, &res, &err);
    CHECK(r == 0 && res.out && res.err && res.out[0] == '\0' && res.err[0] == '\0',
          "silent child: out and err are empty strings, not NULL");
    qvm_run_result_release(&res);

    /* Binary output with NUL bytes. */
    r = sh("printf 'a\\000b'", NULL, &res, &err);
    CHECK(r == 0 && res.out_len == 3 && memcmp(res.out, "a\0b", 4) == 0, "NUL bytes kept in output");
    qvm_run_result_release(&res);

    /* No result, no opts, no error. */
    CHECK(sh("exit 0", NULL, NULL, NULL) == 0, "RES, OPTS and ERR may all be NULL");
    CHECK(sh("exit 1", NULL, NULL, NULL) == -EIO, "failure with NULL RES and ERR");

    const char *argv[] = { "echo", "via", "PATH", NULL };
    r = qvm_run(argv, NULL, &res, &err);
    CHECK(r == 0, "argv[0] is looked up in PATH");
    CHECK_STR(res.out, "via PATH\n", "args are passed verbatim");
    qvm_run_result_release(&res);

    const char *argv2[] = { "printf", "%s|", "a b", "$HOME", "*", "'q'", "", NULL };
    r = qvm_run(argv2, NULL, &res, &err);
    CHECK_STR(res.out, "a b|$HOME|*|'q'||", "no shell: spaces, $, *, quotes and empty args verbatim");
    qvm_run_result_release(&res);

    /* inherit_stderr: nothing captured, but the result strings exist. */
    struct qvm_run_opts o = { .inherit_stderr = true };
    r = sh("echo captured", &o, &res, &err);
    CHECK(r == 0 && strcmp(res.out, "captured\n") == 0 && res.err && res.err_len == 0,
          "inherit_stderr: stdout still captured, err empty");
    qvm_run_result_release(&res);
    CHECK(no_children(), "every child reaped");
}

static void test_status(void)
{
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    int r = sh("exit 3", NULL, &res, &err);
    CHECK(r == -EIO, "exit 3 gives -EIO (r=%d)", r);
    CHECK(res.status == 3, "status 3");
    CHECK(err.code == EIO, "error code EIO");
    CHECK_STR(err.msg, "/bin/sh failed (exit status 3)", "message names the program and status");
    qvm_run_result_release(&res);

    qvm_err_clear(&err);
    r = sh("echo progress; echo 'first problem' >&2; echo 'the real reason' >&2; echo >&2; exit 2",
           NULL, &res, &err);
    CHECK(r == -EIO && res.status == 2, "exit 2 with stderr");
    CHECK_STR(err.msg, "/bin/sh failed (exit status 2): the real reason",
              "message carries the last non-empty stderr line");
    CHECK_STR(res.out, "progress\n", "stdout still captured on failure");
    qvm_run_result_release(&res);

    qvm_err_clear(&err);
    r = sh("echo 'on stdout only'; exit 1", NULL, &res, &err);
    CHECK_STR(err.msg, "/bin/sh failed (exit status 1)", "stdout is not used in the message");
    qvm_run_result_release(&res);

    qvm_err_clear(&err);
    r = sh("kill -TERM $$", NULL, &res, &err);
    CHECK(r == -EIO, "killed by a signal: -EIO");
    CHECK(res.status == 128 + 15, "killed by SIGTERM: status 143 (got %d)", res.status);
    CHECK_CONTAINS(err.msg, "exit status 143", "signal death status in the message");
    qvm_run_result_release(&res);

    /* The error is filled even without a result. */
    qvm_err_clear(&err);
    r = sh("echo boom >&2; exit 9", NULL, NULL, &err);
    CHECK(r == -EIO, "failure without RES");
    CHECK_STR(err.msg, "/bin/sh failed (exit status 9): boom", "message without RES");
    CHECK(no_children(), "every child reaped");
}

static void test_enoent(void)
{
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    const char *argv[] = { "qvm-test-no-such-program-4711", "--help", NULL };
    long long t0 = now_ms();
    int r = qvm_run(argv, NULL, &res, &err);
    CHECK(r == -ENOENT, "a program that does not exist: -ENOENT (r=%d)", r);
    CHECK(err.code == ENOENT, "error code ENOENT");
    CHECK_STR(err.msg, "cannot run qvm-test-no-such-program-4711: not found or not executable",
              "clear message naming the program");
    CHECK(now_ms() - t0 < 5000, "fails fast");
    CHECK(res.out && res.err, "result filled");
    qvm_run_result_release(&res);

    const char *argv2[] = { "/nonexistent/dir/prog", NULL };
    qvm_err_clear(&err);
    r = qvm_run(argv2, NULL, NULL, &err);
    CHECK(r == -ENOENT, "an absolute path that does not exist: -ENOENT");
    CHECK_CONTAINS(err.msg, "cannot run /nonexistent/dir/prog", "message names the path");

    /* A file that is not executable. */
    char tmpl[] = "/tmp/qvm-test-noexec-XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0, "temp file");
    if (fd >= 0) {
        CHECK(write(fd, "#!/bin/sh\necho hi\n", 18) == 18, "script written");
        close(fd);
        const char *argv3[] = { tmpl, NULL };
        qvm_err_clear(&err);
        r = qvm_run(argv3, NULL, NULL, &err);
        CHECK(r < 0, "a non-executable file fails (r=%d)", r);
        CHECK_CONTAINS(err.msg, "not found or not executable", "non-executable: clear message");
        unlink(tmpl);
    }
    CHECK(no_children(), "every child reaped");
}

static void test_timeout(void)
{
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    const char *argv[] = { "sleep", "10", NULL };
    struct qvm_run_opts o = { .timeout_ms = 300 };
    long long t0 = now_ms();
    int r = qvm_run(argv, &o, &res, &err);
    long long took = now_ms() - t0;
    CHECK(r == -ETIMEDOUT, "sleep 10 with a 300 ms timeout: -ETIMEDOUT (r=%d)", r);
    CHECK(took >= 250 && took < 3000, "returns soon after the timeout (%lld ms)", took);
    CHECK(res.timed_out, "result says timed out");
    CHECK(res.status == 128 + 9, "killed with SIGKILL: status 137 (got %d)", res.status);
    CHECK(err.code == ETIMEDOUT, "error code ETIMEDOUT");
    CHECK_CONTAINS(err.msg, "sleep timed out after", "message names the program");
    CHECK_CONTAINS(err.msg, "was killed", "message says it was killed");
    CHECK(no_children(), "the killed child was reaped: no zombie");
    qvm_run_result_release(&res);

    /* A child that keeps its pipes busy until killed. */
    o.timeout_ms = 400;
    t0 = now_ms();
    r = sh("while :; do echo tick; echo tock >&2; done", &o, &res, &err);
    took = now_ms() - t0;
    CHECK(r == -ETIMEDOUT && res.timed_out, "a busy writer times out too");
    CHECK(took < 3000, "busy writer: returns soon after the timeout (%lld ms)", took);
    CHECK(res.out_len > 0 && res.err_len > 0, "output up to the timeout is kept");
    CHECK(no_children(), "busy writer reaped");
    qvm_run_result_release(&res);

    /* A child that ends before the timeout is not reported as timed out. */
    o.timeout_ms = 5000;
    r = sh("sleep 0.2; echo done", &o, &res, &err);
    CHECK(r == 0 && !res.timed_out && strcmp(res.out, "done\n") == 0, "finishes within the timeout");
    qvm_run_result_release(&res);
}

/* A daemonizing child: it exits while a grandchild still holds the pipes.
 * qvm_run returns once the child is gone instead of waiting for EOF. */
static void test_daemonizing_child(void)
{
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    struct qvm_run_opts o = { .timeout_ms = 10000 };
    long long t0 = now_ms();
    int r = sh("sleep 3 & echo started; echo warn >&2", &o, &res, &err);
    long long took = now_ms() - t0;
    CHECK(r == 0 && !res.timed_out, "a child that leaves a grandchild behind succeeds (r=%d)", r);
    CHECK(took < 2000, "it returns without waiting for the grandchild (%lld ms)", took);
    CHECK_STR(res.out, "started\n", "its output is captured");
    CHECK_STR(res.err, "warn\n", "its stderr is captured");
    CHECK(no_children(), "the child was reaped");
    qvm_run_result_release(&res);
}

/* A timeout below one second must not be reported as "after 0 s". */
static void test_timeout_message(void)
{
    struct qvm_error err = { 0 };
    const char *argv[] = { "sleep", "10", NULL };
    struct qvm_run_opts o = { .timeout_ms = 300 };
    int r = qvm_run(argv, &o, NULL, &err);
    CHECK(r == -ETIMEDOUT, "sub-second timeout: -ETIMEDOUT");
    CHECK(strstr(err.msg, "after 0 s") == NULL,
          "a 300 ms timeout is not reported as 'after 0 s' (got '%s')", err.msg);
    CHECK(no_children(), "reaped");
}

static void test_max_output(void)
{
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    struct qvm_run_opts o = { .max_output = 1000, .timeout_ms = 30000 };
    int r = sh("i=0; while [ $i -lt 500 ]; do echo 0123456789abcdefghi; echo EEEEEEEEE >&2; i=$((i+1)); done; "
               "echo tail-line >&2; exit 0", &o, &res, &err);
    CHECK(r == 0, "truncated output is still success (r=%d %s)", r, err.msg);
    CHECK(res.out_len == 1000, "stdout capped at max_output (got %zu)", res.out_len);
    CHECK(res.err_len == 1000, "stderr capped at max_output (got %zu)", res.err_len);
    CHECK(strlen(res.out) == 1000 && res.out[1000] == '\0', "capped stdout is NUL-terminated");
    CHECK(strncmp(res.out, "0123456789abcdefghi\n0123456789", 30) == 0, "the head of the output is kept");
    qvm_run_result_release(&res);

    /* Exactly max_output bytes are kept whole. */
    o.max_output = 10;
    r = sh("printf 0123456789", &o, &res, &err);
    CHECK(r == 0 && res.out_len == 10 && strcmp(res.out, "0123456789") == 0, "exactly max_output bytes");
    qvm_run_result_release(&res);

    /* Default cap is 1 MiB. */
    o.max_output = 0;
    r = sh("head -c 3000000 /dev/zero", &o, &res, &err);
    CHECK(r == 0 && res.out_len == 1 << 20, "default cap 1 MiB (got %zu)", res.out_len);
    qvm_run_result_release(&res);
    CHECK(no_children(), "every child reaped");
}

static void test_env(void)
{
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    const char *old = getenv("LC_ALL");
    char *saved = old ? strdup(old) : NULL;
    setenv("LC_ALL", "de_DE.UTF-8", 1);
    setenv("QVM_TEST_MARKER", "kept", 1);
    const char *argv[] = { "env", NULL };
    int r = qvm_run(argv, NULL, &res, &err);
    CHECK(r == 0, "env runs");
    struct strbuf sb = STRBUF_INIT;
    strbuf_addch(&sb, '\n');
    strbuf_addstr(&sb, res.out);
    CHECK_CONTAINS(sb.buf, "\nLC_ALL=C\n", "the child gets LC_ALL=C");
    CHECK(strstr(sb.buf, "LC_ALL=de_DE") == NULL, "the parent's LC_ALL is overridden");
    CHECK_CONTAINS(sb.buf, "\nQVM_TEST_MARKER=kept\n", "the rest of the environment is passed on");
    strbuf_release(&sb);
    qvm_run_result_release(&res);
    const char *now = getenv("LC_ALL");
    CHECK(now && strcmp(now, "de_DE.UTF-8") == 0, "the parent's own LC_ALL is unchanged");
    if (saved) {
        setenv("LC_ALL", saved, 1);
        free(saved);
    } else {
        unsetenv("LC_ALL");
    }
    unsetenv("QVM_TEST_MARKER");

    /* A message in a localised program would be in C. */
    const char *argv2[] = { "ls", "/nonexistent-qvm-test-path", NULL };
    setenv("LANG", "fr_FR.UTF-8", 1);
    qvm_err_clear(&err);
    r = qvm_run(argv2, NULL, &res, &err);
    CHECK(r == -EIO, "ls of a missing path fails");
    CHECK_CONTAINS(err.msg, "No such file or directory", "the child's message is in English");
    unsetenv("LANG");
    qvm_run_result_release(&res);
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len == n && strncmp(p, line, n) == 0)
            return 1;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

static void test_fds(void)
{
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    int fd = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
    int hi = dup2(fd, 77);
    int hi2 = dup2(fd, 1000);
    CHECK(fd >= 3 && hi == 77 && hi2 == 1000, "test fds opened without O_CLOEXEC");
    int fl = fcntl(fd, F_GETFD);
    CHECK(fl >= 0 && !(fl & FD_CLOEXEC), "the test fd is inheritable");

    const char *argv[] = { "ls", "/proc/self/fd", NULL };
    int r = qvm_run(argv, NULL, &res, &err);
    CHECK(r == 0, "ls /proc/self/fd runs");
    char num[16];
    snprintf(num, sizeof num, "%d", fd);
    CHECK(!has_line(res.out, num) || fd == 3, "fd %d is closed in the child", fd);
    CHECK(!has_line(res.out, "77"), "fd 77 is closed in the child");
    CHECK(!has_line(res.out, "1000"), "fd 1000 is closed in the child");
    CHECK(has_line(res.out, "0") && has_line(res.out, "1") && has_line(res.out, "2"),
          "fds 0, 1 and 2 are open in the child");
    int extra = 0;
    for (const char *p = res.out; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        /* 3 is ls's own handle on the directory it lists. */
        if (!(len == 1 && (*p == '0' || *p == '1' || *p == '2' || *p == '3')))
            extra++;
        p = nl ? nl + 1 : p + len;
    }
    CHECK(extra == 0, "no fd beyond 0-2 (and ls's own 3) in the child");
    if (extra) {
        for (const char *p = res.out; *p;) {
            size_t len = strcspn(p, "\n");
            printf("#   open in the child: %.*s\n", (int)len, p);
            p += len + (p[len] == '\n');
        }
    }
    qvm_run_result_release(&res);

    /* The library's own pipes and /dev/null do not leak into the parent. */
    int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int i = 0; i < 20; i++) {
        sh("echo x; echo y >&2", NULL, &res, NULL);
        qvm_run_result_release(&res);
        sh("exit 1", NULL, NULL, NULL);
    }
    int probe2 = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(probe2 == probe + 1, "no fd leaked in the parent after 40 runs (%d then %d)", probe, probe2);
    close(probe);
    close(probe2);
    close(fd);
    close(hi);
    close(hi2);
}

static void test_stdin(void)
{
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    const char *argv[] = { "readlink", "/proc/self/fd/0", NULL };
    int r = qvm_run(argv, NULL, &res, &err);
    CHECK(r == 0, "readlink runs");
    CHECK_STR(res.out, "/dev/null\n", "stdin is /dev/null by default");
    qvm_run_result_release(&res);

    struct qvm_run_opts o = { .timeout_ms = 5000 };
    const char *cat[] = { "cat", NULL };
    r = qvm_run(cat, &o, &res, &err);
    CHECK(r == 0 && res.out_len == 0 && !res.timed_out, "cat reads EOF at once");
    qvm_run_result_release(&res);

    o.stdin_fd = -1;
    r = qvm_run(argv, &o, &res, &err);
    CHECK(r == 0 && strcmp(res.out, "/dev/null\n") == 0, "stdin_fd -1 without use_stdin_fd: /dev/null");
    qvm_run_result_release(&res);

    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe");
    CHECK(write(p[1], "from the pipe\n", 14) == 14, "pipe written");
    close(p[1]);
    o.stdin_fd = p[0];
    o.use_stdin_fd = true;
    r = qvm_run(cat, &o, &res, &err);
    CHECK(r == 0, "cat with a given stdin fd runs (%s)", err.msg);
    CHECK_STR(res.out, "from the pipe\n", "a given stdin fd is used");
    qvm_run_result_release(&res);
    close(p[0]);
}

/* use_stdout_fd: the child writes straight into a given fd (btrfs send into
 * a stream's pipe), uncapped; stderr is still captured for the message. */
static void test_stdout_fd(void)
{
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe");
    struct qvm_run_opts o = { .timeout_ms = 5000, .use_stdout_fd = true, .stdout_fd = p[1] };
    int r = sh("printf 'into the pipe'; echo 'on stderr' >&2", &o, &res, &err);
    CHECK(r == 0, "a child with a given stdout fd runs (%s)", err.msg);
    CHECK(res.out && res.out_len == 0, "nothing is captured from stdout");
    CHECK_STR(res.err, "on stderr\n", "stderr is still captured");
    qvm_run_result_release(&res);
    CHECK(write(p[1], "|ours", 5) == 5, "the given fd stays open in the parent");
    close(p[1]);
    char buf[64] = { 0 };
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    CHECK(n == 18 && strcmp(buf, "into the pipe|ours") == 0, "the output went into the fd (%s)",
          buf);
    close(p[0]);

    /* More than max_output, into a file: nothing is cut. */
    char tmpl[] = "/tmp/qvm-test-stdout-XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0, "temp file");
    o.stdout_fd = fd;
    o.max_output = 1000;
    r = sh("head -c 3000000 /dev/zero", &o, NULL, &err);
    CHECK(r == 0 && lseek(fd, 0, SEEK_END) == 3000000, "3 MB written whole past max_output");

    /* A failure is reported with stderr's last line, as always. */
    qvm_err_clear(&err);
    r = sh("printf partial; echo 'no space left' >&2; exit 4", &o, NULL, &err);
    CHECK(r == -EIO, "a failing writer gives -EIO");
    CHECK_STR(err.msg, "/bin/sh failed (exit status 4): no space left",
              "the message carries stderr");
    close(fd);
    unlink(tmpl);
    CHECK(no_children(), "every child reaped");
}

static void test_chatty(void)
{
    struct qvm_run_result res;
    struct qvm_error err = { 0 };
    struct qvm_run_opts o = { .timeout_ms = 60000 };
    long long t0 = now_ms();
    /* stderr first: a parent reading stdout to EOF before stderr would hang. */
    int r = sh("head -c 10485760 /dev/zero >&2; head -c 10485760 /dev/zero", &o, &res, &err);
    CHECK(r == 0, "10 MiB on stderr then stdout: no deadlock (r=%d %s, %lld ms)", r, err.msg,
          now_ms() - t0);
    CHECK(res.out_len == 1 << 20 && res.err_len == 1 << 20, "both capped at 1 MiB (%zu, %zu)",
          res.out_len, res.err_len);
    qvm_run_result_release(&res);

    o.max_output = 16 << 20;
    t0 = now_ms();
    r = sh("head -c 10485760 /dev/zero | tr '\\0' o & head -c 10485760 /dev/zero | tr '\\0' e >&2; wait",
           &o, &res, &err);
    CHECK(r == 0, "10 MiB on both at once: no deadlock (r=%d, %lld ms)", r, now_ms() - t0);
    CHECK(res.out_len == 10485760 && res.err_len == 10485760, "all 10 MiB captured on each (%zu, %zu)",
          res.out_len, res.err_len);
    int ok = res.out && res.err;
    for (size_t i = 0; ok && i < res.out_len; i++)
        if (res.out[i] != 'o' || res.err[i] != 'e')
            ok = 0;
    CHECK(ok, "captured streams are not mixed up");
    qvm_run_result_release(&res);
    CHECK(no_children(), "every child reaped");
}

static void test_argv_to_string(void)
{
    const char *a1[] = { "qemu-img", "info", "--output=json", "-f", "raw", "/var/lib/a_b.raw", NULL };
    char *s = qvm_argv_to_string(a1);
    CHECK_STR(s, "qemu-img info --output=json -f raw /var/lib/a_b.raw", "plain args are not quoted");
    free(s);

    const char *a2[] = { "echo", "a b", "", "it's", "$HOME", "x;y", "*", "new\nline", NULL };
    s = qvm_argv_to_string(a2);
    CHECK_STR(s, "echo 'a b' '' 'it'\\''s' '$HOME' 'x;y' '*' 'new\nline'",
              "spaces, empty, quotes and shell metacharacters are quoted");
    free(s);

    const char *a3[] = { NULL };
    s = qvm_argv_to_string(a3);
    CHECK_STR(s, "", "empty argv gives an empty string");
    free(s);

    const char *a4[] = { "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22", "a+b@c%d", NULL };
    s = qvm_argv_to_string(a4);
    CHECK_STR(s, "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22 a+b@c%d",
              "',', ':', '=', '@', '+', '%%' need no quoting");
    free(s);

    const char *a5[] = { "'", NULL };
    s = qvm_argv_to_string(a5);
    CHECK_STR(s, "''\\'''", "a lone quote");
    free(s);

    const char *a6[] = { "caf\xc3\xa9", NULL };
    s = qvm_argv_to_string(a6);
    CHECK_STR(s, "'caf\xc3\xa9'", "non-ASCII bytes are quoted");
    free(s);
}

static void test_last_line(void)
{
    CHECK_STR(qvm_last_line(NULL), "", "NULL gives empty");
    CHECK_STR(qvm_last_line(""), "", "empty gives empty");
    CHECK_STR(qvm_last_line("\n\n\n"), "", "only newlines give empty");
    CHECK_STR(qvm_last_line("only"), "only", "a single line without newline");
    CHECK_STR(qvm_last_line("only\n"), "only", "a single line with newline");
    CHECK_STR(qvm_last_line("first\nsecond\n"), "second", "the last line");
    CHECK_STR(qvm_last_line("first\nsecond\n\n  \n"), "second", "trailing blank lines are skipped");
    CHECK_STR(qvm_last_line("first\r\nsecond\r\n"), "second", "CRLF line ends");
    CHECK_STR(qvm_last_line("a\n  indented last"), "  indented last", "leading spaces of the line kept");
    CHECK_STR(qvm_last_line("\nx"), "x", "leading newline");

    char big[2000];
    memset(big, 'L', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *l = qvm_last_line(big);
    CHECK(strlen(l) == 511 && l[0] == 'L', "a long line is cut to the buffer (%zu)", strlen(l));

    /* The result is a static buffer: the next call overwrites it. */
    const char *p1 = qvm_last_line("one");
    const char *p2 = qvm_last_line("two");
    CHECK(p1 == p2 && strcmp(p2, "two") == 0, "static buffer reused");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);  /* no buffered TAP lines duplicated by forks */
    test_capture();
    test_status();
    test_enoent();
    test_timeout();
    test_daemonizing_child();
    test_timeout_message();
    test_max_output();
    test_env();
    test_fds();
    test_stdin();
    test_stdout_fd();
    test_chatty();
    test_argv_to_string();
    test_last_line();
    return test_done();
}
