/* net_dhcp.c - dnsmasq for a qvm network, supervised (net_dhcp.h). */
#include "net_dhcp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/process.h"
#include "runtime/qemu.h"
#include "util/fsutil.h"
#include "util/strbuf.h"
#include "util/subprocess.h"

#define START_WAIT_MS 10000
#define STOP_WAIT_MS 5000
#define RESTART_BURST 5          /* restarts within RESTART_WINDOW_S ... */
#define RESTART_WINDOW_S 60
#define RESTART_PAUSE_MS 30000   /* ... then a pause before the next */


/* The pid in PATH if the process holding PATH's lock is alive. A lock
 * nobody holds means whoever wrote the pid is gone. */
static pid_t locked_pid(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    pid_t pid = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0)
            pid = (pid_t)atoi(buf);
    }
    close(fd);
    return pid > 0 && qvm_process_alive(pid) ? pid : 0;
}

static pid_t dnsmasq_pid(const char *dir)
{
    char *path = qvm_path_join(dir, "dnsmasq.pid");
    char *text = NULL;
    size_t len;
    pid_t pid = 0;
    if (qvm_read_file(path, 32, &text, &len, NULL) == 0)
        pid = (pid_t)atoi(text);
    free(text);
    free(path);
    if (pid <= 0 || !qvm_process_alive(pid))
        return 0;
    char *cmd = qvm_process_cmdline(pid, 4096);
    /* Ours only if its command line names this network's hosts file. */
    char *mark = qvm_path_join(dir, "dhcp-hosts");
    bool ours = cmd && strstr(cmd, "dnsmasq") && strstr(cmd, mark);
    free(mark);
    free(cmd);
    return ours ? pid : 0;
}

void qvm_net_dhcp_pids(const struct qvm_network *n, pid_t *ret_supervisor, pid_t *ret_dnsmasq)
{
    char *sup = qvm_path_join(n->dir, "supervisor.pid");
    *ret_supervisor = locked_pid(sup);
    *ret_dnsmasq = dnsmasq_pid(n->dir);
    free(sup);
}

char **qvm_net_dnsmasq_argv(const struct qvm_network *n, const char *user)
{
    char gw[16], net[16], mask[16];
    qvm_net_format_ip(n->gateway, gw, sizeof gw);
    qvm_net_format_ip(n->subnet, net, sizeof net);
    qvm_net_format_ip(0xffffffffu << (32 - n->prefix), mask, sizeof mask);
    char **v = xcalloc(32, sizeof *v);
    size_t i = 0;
    v[i++] = xstrdup("dnsmasq");
    v[i++] = xstrdup("--keep-in-foreground");
    v[i++] = xstrdup("--conf-file=/dev/null");       /* not /etc/dnsmasq.conf */
    v[i++] = xstrdup("--no-hosts");                  /* not the host's /etc/hosts */
    v[i++] = xstrdup("--pid-file=");                 /* the supervisor records it */
    v[i++] = xasprintf("--user=%s", user);
    v[i++] = xstrdup("--bind-interfaces");           /* only the bridge's address */
    v[i++] = xasprintf("--interface=%s", n->bridge);
    v[i++] = xstrdup("--except-interface=lo");
    v[i++] = xasprintf("--listen-address=%s", gw);
    v[i++] = xasprintf("--dhcp-range=%s,static,%s,1h", net, mask);
    v[i++] = xasprintf("--dhcp-hostsfile=%s/dhcp-hosts", n->dir);
    v[i++] = xasprintf("--dhcp-leasefile=%s/dnsmasq.leases", n->dir);
    v[i++] = xstrdup("--dhcp-authoritative");
    v[i++] = xasprintf("--addn-hosts=%s/hosts", n->dir);
    v[i++] = xstrdup("--domain=qvm");
    v[i++] = xstrdup("--local=/qvm/");               /* *.qvm never goes upstream */
    v[i++] = xstrdup("--log-facility=-");
    v[i++] = xstrdup("--log-dhcp");
    v[i] = NULL;
    return v;
}


static void stop_pid(pid_t pid);

static const char *dnsmasq_user(void)
{
    return getpwnam("dnsmasq") ? "dnsmasq" : "nobody";
}

/* dnsmasq drops to USER before it reads the leases and names (again on
 * every SIGHUP): every directory above them must let others through. */
static int check_reachable(const char *dir, const char *user, struct qvm_error *err)
{
    char *p = xstrdup(dir);
    int r = 0;
    for (char *slash = p + strlen(p); r == 0 && slash > p; slash = strrchr(p, '/')) {
        *slash = '\0';
        struct stat st;
        const char *d = p[0] ? p : "/";
        if (stat(d, &st) == 0 && !(st.st_mode & S_IXOTH))
            r = qvm_err(err, EACCES, "dnsmasq runs as user %s and cannot reach %s: directory %s "
                        "is not searchable by others (chmod o+x %s)", user, dir, d, d);
    }
    free(p);
    return r;
}

static bool dnsmasq_installed(void)
{
    const char *path = getenv("PATH");
    char *copy = xstrdup(path && *path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
    bool found = false;
    for (char *save = NULL, *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/dnsmasq", d);
        found = access(p, X_OK) == 0;
        free(p);
    }
    free(copy);
    return found;
}

int qvm_net_dhcp_check(const struct qvm_network *n, struct qvm_error *err)
{
    if (!dnsmasq_installed())
        return qvm_err(err, ENOENT, "dnsmasq not found; install the dnsmasq-base package");
    return check_reachable(n->dir, dnsmasq_user(), err);
}

/* The last line of the log at PATH (it grows with --log-dhcp: only its end
 * is read). BUF gets it. */
static void log_tail(const char *path, char *buf, size_t size)
{
    snprintf(buf, size, "empty");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char tail[4096];
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof tail - 1 ? end - (off_t)sizeof tail + 1 : 0;
    ssize_t n = pread(fd, tail, sizeof tail - 1, from);
    close(fd);
    if (n > 0) {
        tail[n] = '\0';
        snprintf(buf, size, "%s", qvm_last_line(tail));
    }
}

int qvm_net_dhcp_start(struct qvm_ctx *ctx, const struct qvm_network *n, struct qvm_error *err)
{
    int rc = qvm_net_dhcp_check(n, err);
    if (rc < 0)
        return rc;
    pid_t sup, dns;
    qvm_net_dhcp_pids(n, &sup, &dns);
    if (sup && dns)
        return 0;
    if (!sup && dns)
        stop_pid(dns);      /* orphaned by a killed supervisor: it holds the bridge's ports */
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return qvm_err_errno(err, errno, "cannot find qvm's own executable");
    exe[len] = '\0';
    char *log = qvm_path_join(n->dir, "dnsmasq.log");
    if (!sup) {
        const char *argv[8];
        size_t i = 0;
        argv[i++] = "qvm";
        if (ctx->paths.root[0]) {
            argv[i++] = "--root";
            argv[i++] = ctx->paths.root;
        }
        argv[i++] = "net";
        argv[i++] = "supervise";
        argv[i++] = n->name;
        argv[i] = NULL;
        int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (logfd < 0) {
            int r = qvm_err_errno(err, errno, "cannot open %s", log);
            free(log);
            return r;
        }
        pid_t pid = fork();
        if (pid < 0) {
            close(logfd);
            free(log);
            return qvm_err_errno(err, errno, "cannot start the supervisor of network '%s'", n->name);
        }
        if (pid == 0) {
            /* A session of its own, re-parented to init: it outlives us. */
            setsid();
            if (fork() != 0)
                _exit(0);
            int nul = open("/dev/null", O_RDWR);
            if (nul < 0 || dup2(nul, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
                _exit(127);
            close_range(3, ~0U, 0);
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            execv(exe, (char *const *)argv);
            _exit(127);
        }
        close(logfd);
        int st;
        waitpid(pid, &st, 0);
    }
    /* Up once the same dnsmasq has lived a moment: one that exits at once
     * (a port taken, a bad option) must not count as started. */
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    pid_t seen = 0;
    int alive_ms = 0;
    for (int waited = 0; waited < START_WAIT_MS && alive_ms < 300; waited += 50) {
        qvm_net_dhcp_pids(n, &sup, &dns);
        if (sup && dns && dns == seen)
            alive_ms += 50;
        else
            alive_ms = 0;
        seen = dns;
        nanosleep(&ts, NULL);
    }
    int r = 0;
    if (alive_ms < 300) {
        char last[512];
        log_tail(log, last, sizeof last);
        r = qvm_err(err, EIO, "dnsmasq of network '%s' did not start (%s: %s)", n->name, log, last);
    }
    free(log);
    return r;
}

static void stop_pid(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    if (!qvm_process_wait_gone(pid, STOP_WAIT_MS))
        qvm_process_kill_wait(pid, STOP_WAIT_MS);
}

void qvm_net_dhcp_stop(const char *net_dir)
{
    char *sup = qvm_path_join(net_dir, "supervisor.pid");
    stop_pid(locked_pid(sup));     /* it stops its dnsmasq */
    stop_pid(dnsmasq_pid(net_dir)); /* read again (pid and command line): an orphan of a killed supervisor */
    free(sup);
}

void qvm_net_dhcp_reload(const struct qvm_network *n)
{
    pid_t sup, dns;
    qvm_net_dhcp_pids(n, &sup, &dns);
    if (dns)
        kill(dns, SIGHUP);
}

/* ---- the supervisor ---------------------------------------------------------- */

static void say(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(const char *name, const char *fmt, ...)
{
    char when[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    fprintf(stderr, "%s qvm-net-supervise[%s]: ", when, name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static pid_t spawn_dnsmasq(const struct qvm_network *n)
{
    char **argv = qvm_net_dnsmasq_argv(n, dnsmasq_user());
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        close_range(3, ~0U, 0);
        execvp(argv[0], argv);
        _exit(127);
    }
    qvm_argv_free(argv);
    if (pid > 0) {
        char *path = qvm_path_join(n->dir, "dnsmasq.pid");
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%d\n", (int)pid);
        qvm_write_file_atomic(path, buf, (size_t)len, 0644, NULL);
        free(path);
    }
    return pid;
}

int qvm_net_supervise(struct qvm_ctx *ctx, const char *name, struct qvm_error *err)
{
    struct qvm_network n;
    int r = qvm_net_load(ctx, name, &n, err);
    if (r < 0)
        return r;
    char *pidpath = qvm_path_join(n.dir, "supervisor.pid"), *json = qvm_path_join(n.dir, "net.json");
    int lock = open(pidpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0) {
        r = lock < 0 ? qvm_err_errno(err, errno, "cannot open %s", pidpath) : 0;  /* one runs */
        goto out;
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(lock, 0) < 0 || pwrite(lock, buf, (size_t)len, 0) != len) {
        r = qvm_err_errno(err, errno, "cannot write %s", pidpath);
        goto out;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        r = qvm_err_errno(err, errno, "signalfd");
        goto out;
    }
    say(name, "supervisor started (pid %d)", (int)getpid());
    pid_t child = 0;
    time_t starts[RESTART_BURST] = { 0 };
    size_t nstart = 0;
    bool stopping = false;
    int pause_ms = 0;
    while (!stopping) {
        if (!child && pause_ms == 0) {
            if (!qvm_path_exists(json)) {
                say(name, "the network is gone: stopping");
                break;
            }
            time_t now = time(NULL);
            if (nstart == RESTART_BURST && now - starts[0] < RESTART_WINDOW_S) {
                say(name, "dnsmasq exited %d times within a minute: pausing 30 s", RESTART_BURST);
                pause_ms = RESTART_PAUSE_MS;
                nstart = 0;
                continue;
            }
            if (nstart == RESTART_BURST) {
                memmove(starts, starts + 1, sizeof starts - sizeof starts[0]);
                nstart--;
            }
            starts[nstart++] = now;
            child = spawn_dnsmasq(&n);
            if (child > 0)
                say(name, "dnsmasq started (pid %d)", (int)child);
            else
                child = 0;
        }
        struct pollfd p = { .fd = sfd, .events = POLLIN };
        int wait_ms = child ? -1 : pause_ms ? pause_ms : 1000;
        int pr = poll(&p, 1, wait_ms);
        if (pr == 0) {
            pause_ms = 0;
            continue;
        }
        struct signalfd_siginfo si;
        if (pr < 0 || read(sfd, &si, sizeof si) != sizeof si)
            continue;
        if (si.ssi_signo == SIGCHLD) {
            int st;
            pid_t w;
            while ((w = waitpid(-1, &st, WNOHANG)) > 0)
                if (w == child) {
                    say(name, "dnsmasq exited (%s%d); restarting", WIFSIGNALED(st) ? "signal " : "status ",
                        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
                    child = 0;
                    pause_ms = 1000;
                }
        } else if (si.ssi_signo == SIGHUP) {
            if (child)
                kill(child, SIGHUP);
        } else {
            stopping = true;
        }
    }
    if (child) {
        kill(child, SIGTERM);
        for (int i = 0; i < STOP_WAIT_MS / 50 && waitpid(child, NULL, WNOHANG) == 0; i++) {
            struct timespec ts = { 0, 50 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
        if (waitpid(child, NULL, WNOHANG) == 0) {
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
        }
    }
    char *dpid = qvm_path_join(n.dir, "dnsmasq.pid");
    unlink(dpid);
    free(dpid);
    say(name, "supervisor stopped");
    close(sfd);
    unlink(pidpath);
out:
    if (lock >= 0)
        close(lock);
    free(pidpath);
    free(json);
    qvm_net_release(&n);
    return r;
}
