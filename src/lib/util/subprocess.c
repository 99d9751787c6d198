#include "subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *qvm_last_line(const char *s)
{
    static char line[512];
    line[0] = '\0';
    if (!s)
        return line;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        n--;
    size_t start = n;
    while (start > 0 && s[start - 1] != '\n')
        start--;
    size_t len = n - start;
    if (len >= sizeof line)
        len = sizeof line - 1;
    memcpy(line, s + start, len);
    line[len] = '\0';
    return line;
}

char *qvm_argv_to_string(const char *const argv[])
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; argv[i]; i++) {
        if (i)
            strbuf_addch(&sb, ' ');
        const char *a = argv[i];
        bool plain = *a != '\0';
        for (const char *p = a; *p; p++)
            if (!(strchr("-_./=:,@+%", *p) || (*p >= '0' && *p <= '9') ||
                  (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
                plain = false;
        if (plain) {
            strbuf_addstr(&sb, a);
        } else {
            strbuf_addch(&sb, '\'');
            for (const char *p = a; *p; p++) {
                if (*p == '\'')
                    strbuf_addstr(&sb, "'\\''");
                else
                    strbuf_addch(&sb, *p);
            }
            strbuf_addch(&sb, '\'');
        }
    }
    return strbuf_detach(&sb, NULL);
}

void qvm_run_result_release(struct qvm_run_result *res)
{
    if (!res)
        return;
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
    res->out_len = res->err_len = 0;
}

/* The child's environment: ours with LC_ALL=C, built before fork because
 * setenv is not async-signal-safe. Caller frees the array (not the strings
 * taken from environ). */
static char **child_env(void)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = xcalloc(n + 2, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LC_ALL=", 7) != 0)
            env[k++] = environ[i];
    env[k++] = (char *)"LC_ALL=C";
    env[k] = NULL;
    return env;
}

static void child_exec(const char *const argv[], char **env, int in_fd, int out_fd, int err_fd,
                       const int *pass, size_t npass)
{
    /* Only async-signal-safe calls from here on. */
    if (dup2(in_fd, 0) < 0 || (out_fd >= 0 && dup2(out_fd, 1) < 0) ||
        (err_fd >= 0 && dup2(err_fd, 2) < 0))
        _exit(127);
    /* Passed fds go to 3, 4, ...: first above every target, so that no
     * dup2 overwrites a source still to be moved. */
    int high[QVM_RUN_MAX_PASS_FDS];
    for (size_t i = 0; i < npass; i++)
        if ((high[i] = fcntl(pass[i], F_DUPFD, 3 + QVM_RUN_MAX_PASS_FDS + 64)) < 0)
            _exit(127);
    for (size_t i = 0; i < npass; i++)
        if (dup2(high[i], 3 + (int)i) < 0)
            _exit(127);
    unsigned first = 3 + (unsigned)npass;
    if (close_range(first, ~0U, 0) < 0) {
        /* Kernels before 5.9 or a seccomp filter: close them one by one. */
        struct rlimit rl;
        int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
        for (int fd = (int)first; fd < max; fd++)
            close(fd);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    execvpe(argv[0], (char *const *)argv, env);
    _exit(127);
}

static void read_into(int *fd, struct strbuf *sb, size_t max)
{
    char buf[8192];
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n > 0) {
        size_t room = sb->len < max ? max - sb->len : 0;
        strbuf_add(sb, buf, (size_t)n < room ? (size_t)n : room);
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(*fd);
        *fd = -1;
    }
}

int qvm_run(const char *const argv[], const struct qvm_run_opts *opts,
            struct qvm_run_result *res, struct qvm_error *err)
{
    static const struct qvm_run_opts defaults = { 0 };
    if (!opts)
        opts = &defaults;
    int timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 10 * 60 * 1000;
    size_t max = opts->max_output ? opts->max_output : 1 << 20;
    struct strbuf out = STRBUF_INIT, errb = STRBUF_INIT;
    int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
    int null_fd = -1;
    int r;

    if (res)
        memset(res, 0, sizeof *res);
    if (opts->npass_fds > QVM_RUN_MAX_PASS_FDS)
        return qvm_err(err, E2BIG, "cannot pass %zu fds to %s", opts->npass_fds, argv[0]);
    null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        return qvm_err_errno(err, errno, "cannot open /dev/null");
    bool capture_out = !opts->inherit_stdout && !opts->use_stdout_fd;
    if ((capture_out && pipe2(outp, O_CLOEXEC) < 0) ||
        (!opts->inherit_stderr && pipe2(errp, O_CLOEXEC) < 0)) {
        r = qvm_err_errno(err, errno, "cannot create pipe for %s", argv[0]);
        goto out_close;
    }

    char **env = child_env();
    pid_t pid = fork();
    if (pid < 0) {
        r = qvm_err_errno(err, errno, "cannot start %s", argv[0]);
        free(env);
        goto out_close;
    }
    if (pid == 0)
        child_exec(argv, env, opts->use_stdin_fd ? opts->stdin_fd : null_fd,
                   opts->use_stdout_fd ? opts->stdout_fd : capture_out ? outp[1] : -1,
                   opts->inherit_stderr ? -1 : errp[1], opts->pass_fds, opts->npass_fds);
    free(env);
    /* A pidfd turns the child's exit into a poll() event, so we notice it at
     * once even when a daemonizing grandchild (qemu -daemonize) still holds
     * the pipes. Without one (kernels before 5.3) we poll every 10 ms. */
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

    if (outp[1] >= 0) { close(outp[1]); outp[1] = -1; }
    if (errp[1] >= 0) { close(errp[1]); errp[1] = -1; }

    long long deadline = now_ms() + timeout_ms;
    bool timed_out = false, reaped = false;
    int wstatus = 0;
    for (;;) {
        if (!reaped && waitpid(pid, &wstatus, WNOHANG) == pid)
            reaped = true;
        if (outp[0] < 0 && errp[0] < 0 && reaped)
            break;
        struct pollfd pfd[3];
        int n = 0;
        if (outp[0] >= 0) pfd[n++] = (struct pollfd){ .fd = outp[0], .events = POLLIN };
        if (errp[0] >= 0) pfd[n++] = (struct pollfd){ .fd = errp[0], .events = POLLIN };
        if (!reaped && pidfd >= 0) pfd[n++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
        long long left = deadline - now_ms();
        if (left <= 0 && !reaped) {
            timed_out = true;
            break;
        }
        /* Once the child is gone, take what is already in the pipes and stop:
         * a daemonized grandchild may keep them open. */
        int wait_ms = reaped ? 0 : (pidfd >= 0 ? (int)(left < 60000 ? left : 60000)
                                                : (left > 10 ? 10 : (int)left));
        int pr = n ? poll(pfd, (nfds_t)n, wait_ms) : (usleep((useconds_t)wait_ms * 1000), 0);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr == 0 && reaped)
            break;
        for (int i = 0; i < n && pr > 0; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (pfd[i].fd == outp[0])
                read_into(&outp[0], &out, max);
            else if (pfd[i].fd == errp[0])
                read_into(&errp[0], &errb, max);
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    if (!reaped) {
        if (timed_out)
            kill(pid, SIGKILL);
        while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
            ;
    }

    int status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
               : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : 255;
    if (timed_out)
        r = qvm_err(err, ETIMEDOUT, "%s timed out after %.1f s and was killed", argv[0],
                    timeout_ms / 1000.0);
    else if (status == 127 && WIFEXITED(wstatus) && errb.len == 0)
        r = qvm_err(err, ENOENT, "cannot run %s: not found or not executable", argv[0]);
    else if (status != 0)
        r = qvm_err(err, EIO, "%s failed (exit status %d)%s%s", argv[0], status,
                    errb.len ? ": " : "", errb.len ? qvm_last_line(errb.buf) : "");
    else
        r = 0;
    if (res) {
        res->status = status;
        res->timed_out = timed_out;
        res->out = strbuf_detach(&out, &res->out_len);
        res->err = strbuf_detach(&errb, &res->err_len);
    }

out_close:
    strbuf_release(&out);
    strbuf_release(&errb);
    for (int i = 0; i < 2; i++) {
        if (outp[i] >= 0) close(outp[i]);
        if (errp[i] >= 0) close(errp[i]);
    }
    if (null_fd >= 0)
        close(null_fd);
    return r;
}
