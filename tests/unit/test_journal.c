/* test_journal.c - undo journals: commit, rollback, recovery of journals
 * left by dead writers, and the locks that keep recovery away from live
 * ones. Everything happens under a temporary root in /tmp. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "core/journal.h"
#include "util/fsutil.h"
#include "util/lock.h"
#include "util/paths.h"
#include "util/strbuf.h"

static struct qvm_ctx ctx;
static char root[64];
/* A crashed writer's journal, kept reachable so leak checkers in the child
 * see no leak: the child dies without freeing, as a killed qvm would. */
static struct qvm_journal *child_journal;

/* flock() seen by the library: a test may arm a one-shot hook that runs
 * just before the next flock call, to put another step exactly in the
 * window between two steps of the library. */
static void (*flock_hook)(int fd, int op);

int flock(int fd, int op)
{
    void (*h)(int, int) = flock_hook;
    flock_hook = NULL;
    if (h)
        h(fd, op);
    return (int)syscall(SYS_flock, fd, op);
}

static char *tpath(const char *rel)
{
    return xasprintf("%s/%s", root, rel);
}

/* Paths handed to forked children live on the stack, so that a child that
 * dies without freeing leaks nothing a leak checker would report. */
#define TPATH(buf, rel) snprintf(buf, sizeof buf, "%s/%s", root, rel)

static int exists(const char *path)
{
    return qvm_path_exists(path);
}

static void write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t n = strlen(text);
    if (fd < 0 || write(fd, text, n) != (ssize_t)n)
        printf("# cannot write %s\n", path);
    if (fd >= 0)
        close(fd);
}

static char *read_text(const char *path)
{
    char *data = NULL;
    size_t len;
    if (qvm_read_file(path, 1 << 20, &data, &len, NULL) < 0)
        return NULL;
    return data;
}

/* Number of *.jnl files; the name of the last one in *RET_PATH (caller frees). */
static int journals(char **ret_path)
{
    int n = 0;
    if (ret_path)
        *ret_path = NULL;
    DIR *d = opendir(ctx.paths.journal_dir);
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".jnl") == 0) {
            n++;
            if (ret_path) {
                free(*ret_path);
                *ret_path = qvm_path_join(ctx.paths.journal_dir, de->d_name);
            }
        }
    }
    closedir(d);
    return n;
}

static int alive(pid_t pid)
{
    int st;
    return waitpid(pid, &st, WNOHANG) == 0 && kill(pid, 0) == 0;
}

static void reap(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
}

static void kill_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    reap(pid);
}

/* Blocks until the child writes its ready byte; 0 on success. */
static int wait_ready(int fd)
{
    char c;
    ssize_t n;
    while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
        ;
    return n == 1 ? 0 : -1;
}

static void setup(void)
{
    struct qvm_error err = { 0 };
    strcpy(root, "/tmp/qvm-test-journal-XXXXXX");
    if (!mkdtemp(root)) {
        printf("Bail out! mkdtemp failed\n");
        exit(1);
    }
    memset(&ctx, 0, sizeof ctx);
    int r = qvm_paths_init(&ctx.paths, root, &err);
    CHECK(r == 0, "paths_init on a temp root (%s)", err.msg);
    r = qvm_paths_ensure(&ctx.paths, &err);
    CHECK(r == 0, "paths_ensure creates the directories (%s)", err.msg);
    CHECK(exists(ctx.paths.journal_dir) && exists(ctx.paths.lock_dir), "journal and lock dirs exist");
    ctx.ui = NULL;
}

static void teardown(void)
{
    qvm_rm_rf(root, NULL);
    qvm_paths_release(&ctx.paths);
}

static void test_commit(void)
{
    struct qvm_error err = { 0 };
    struct qvm_journal *j = NULL;
    char *dir = tpath("commit-dir");
    int r = qvm_journal_begin(&ctx, "up", "vm", "alpha", &j, &err);
    CHECK(r == 0 && j, "begin (%s)", err.msg);
    char *jp;
    CHECK(journals(&jp) == 1, "begin creates one journal file");
    char *text = jp ? read_text(jp) : NULL;
    CHECK_CONTAINS(text, "\"op\":\"up\"", "header names the operation");
    CHECK_CONTAINS(text, "\"lock\":\"vm-alpha\"", "header names the object lock");
    CHECK(text && strchr(text, '\n') && strchr(text, '\n')[1] == '\0', "header is one complete line");
    free(text);
    struct stat st;
    CHECK(jp && stat(jp, &st) == 0 && (st.st_mode & 0777) == 0600, "journal is mode 0600");

    r = qvm_journal_undo_rm_rf(j, dir, &err);
    CHECK(r == 0, "undo_rm_rf record");
    text = jp ? read_text(jp) : NULL;
    CHECK_CONTAINS(text, "\"undo\":\"rm_rf\"", "record is on disk before the step");
    free(text);
    CHECK(mkdir(dir, 0755) == 0, "the step: mkdir");

    r = qvm_journal_commit(j, &err);
    CHECK(r == 0, "commit (%s)", err.msg);
    CHECK(journals(NULL) == 0, "commit removes the journal");
    CHECK(exists(dir), "commit leaves the work in place");
    CHECK(qvm_journal_recover(&ctx, &err) == 0, "nothing to recover after commit");
    CHECK(exists(dir), "recovery does not touch committed work");
    qvm_rm_rf(dir, NULL);
    free(dir);
    free(jp);
}

static void test_rollback_rm_rf(void)
{
    struct qvm_error err = { 0 };
    struct qvm_journal *j = NULL;
    char *dir = tpath("rb-dir");
    char *file = tpath("rb-dir/sub/file");
    char *sub = tpath("rb-dir/sub");
    int r = qvm_journal_begin(&ctx, "up", "vm", "beta", &j, &err);
    CHECK(r == 0, "begin");
    CHECK(qvm_journal_undo_rm_rf(j, dir, &err) == 0, "rm_rf record");
    mkdir(dir, 0755);
    mkdir(sub, 0755);
    write_text(file, "data");
    CHECK(exists(file), "the step created a tree");
    r = qvm_journal_rollback(j, &err);
    CHECK(r == 0, "rollback (%s)", err.msg);
    CHECK(!exists(dir), "rollback removed the directory tree");
    CHECK(journals(NULL) == 0, "rollback removed the journal");

    /* A record whose step never ran: removing a missing path is fine. */
    r = qvm_journal_begin(&ctx, "up", "vm", "beta", &j, &err);
    CHECK(qvm_journal_undo_rm_rf(j, dir, &err) == 0, "rm_rf record of a step not taken");
    r = qvm_journal_rollback(j, &err);
    CHECK(r == 0 && journals(NULL) == 0, "rollback of a step not taken succeeds");

    /* A journal with no records at all. */
    r = qvm_journal_begin(&ctx, "down", "vm", "beta", &j, &err);
    CHECK(r == 0 && qvm_journal_rollback(j, &err) == 0 && journals(NULL) == 0,
          "rollback of an empty journal");
    free(dir);
    free(file);
    free(sub);
}

static void test_rename(void)
{
    struct qvm_error err = { 0 };
    struct qvm_journal *j = NULL;
    char *a = tpath("rename-a"), *b = tpath("rename-b");
    write_text(a, "payload");
    int r = qvm_journal_begin(&ctx, "import", "image", "gamma", &j, &err);
    CHECK(r == 0, "begin");
    CHECK(qvm_journal_undo_rename(j, a, b, &err) == 0, "rename record");
    CHECK(rename(a, b) == 0, "the step: rename a -> b");
    r = qvm_journal_rollback(j, &err);
    CHECK(r == 0, "rollback (%s)", err.msg);
    CHECK(exists(a) && !exists(b), "rename undone: a is back, b is gone");
    char *t = read_text(a);
    CHECK_STR(t, "payload", "content moved back intact");
    free(t);
    CHECK(journals(NULL) == 0, "journal removed");

    /* Step not taken: nothing moves. */
    r = qvm_journal_begin(&ctx, "import", "image", "gamma", &j, &err);
    qvm_journal_undo_rename(j, a, b, &err);
    r = qvm_journal_rollback(j, &err);
    CHECK(r == 0 && exists(a) && !exists(b), "rename not taken: a stays");

    /* Both exist (something else recreated FROM): nothing is overwritten. */
    write_text(b, "other");
    r = qvm_journal_begin(&ctx, "import", "image", "gamma", &j, &err);
    qvm_journal_undo_rename(j, a, b, &err);
    r = qvm_journal_rollback(j, &err);
    t = read_text(a);
    CHECK(r == 0 && t && strcmp(t, "payload") == 0 && exists(b), "both exist: nothing is overwritten");
    free(t);
    unlink(a);
    unlink(b);
    free(a);
    free(b);
}

/* Records are undone last first. */
static void test_reverse_order(void)
{
    struct qvm_error err = { 0 };
    struct qvm_journal *j = NULL;
    char *d = tpath("order-dir"), *f = tpath("order-file"), *inside = tpath("order-dir/file");
    write_text(f, "keep me");
    qvm_journal_begin(&ctx, "up", "vm", "delta", &j, &err);
    qvm_journal_undo_rm_rf(j, d, &err);
    mkdir(d, 0755);
    qvm_journal_undo_rename(j, f, inside, &err);
    rename(f, inside);
    int r = qvm_journal_rollback(j, &err);
    CHECK(r == 0, "rollback of two records");
    CHECK(exists(f), "the later rename was undone before the earlier rm_rf");
    CHECK(!exists(d), "the earlier rm_rf was undone");
    unlink(f);
    free(d);
    free(f);
    free(inside);
}

static void test_rollback_failure(void)
{
    struct qvm_error err = { 0 };
    struct qvm_journal *j = NULL;
    char *from = tpath("fail-parent/from"), *to = tpath("fail-to"), *parent = tpath("fail-parent");
    write_text(to, "x");
    qvm_journal_begin(&ctx, "up", "vm", "epsilon", &j, &err);
    qvm_journal_undo_rename(j, from, to, &err);
    int r = qvm_journal_rollback(j, &err);
    CHECK(r == -EIO, "an undo that fails: -EIO (r=%d)", r);
    CHECK_CONTAINS(err.msg, "rolling back 'up epsilon' left changes behind", "message names the operation");
    CHECK_CONTAINS(err.msg, "could not be moved back", "message lists the change");
    CHECK(journals(NULL) == 1, "the journal is kept for a later retry");
    CHECK(exists(to), "nothing was lost");
    char **list = NULL;
    size_t n = 0;
    CHECK(qvm_journal_list_stale(&ctx, &list, &n, &err) == 0 && n == 1, "the kept journal is stale");
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);

    /* Recovery retries it and fails the same way while the cause remains. */
    r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 0, "recovery cannot finish it yet (r=%d)", r);
    CHECK(journals(NULL) == 1, "still kept");
    mkdir(parent, 0755);
    r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 1, "recovery finishes it once the cause is gone (r=%d)", r);
    CHECK(exists(from) && !exists(to) && journals(NULL) == 0, "moved back, journal gone");
    qvm_rm_rf(parent, NULL);
    free(from);
    free(to);
    free(parent);

    /* An unknown record kind is reported, not ignored. */
    char *jp = qvm_path_join(ctx.paths.journal_dir, "1-1-unknown.jnl");
    write_text(jp, "{\"op\":\"up\",\"lock\":\"vm-zeta\",\"subject\":\"zeta\",\"pid\":1,\"started\":1}\n"
                   "{\"undo\":\"format_disk\",\"path\":\"/\"}\n");
    qvm_err_clear(&err);
    r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 0 && journals(NULL) == 1, "a journal with an unknown record is not deleted");
    unlink(jp);
    free(jp);
}

static void test_torn(void)
{
    struct qvm_error err = { 0 };
    char *d1 = tpath("torn-1"), *d2 = tpath("torn-2"), *d3 = tpath("torn-3");
    mkdir(d1, 0755);
    mkdir(d2, 0755);
    mkdir(d3, 0755);
    char *jp = qvm_path_join(ctx.paths.journal_dir, "1700000000-999999-aabbccddeeff.jnl");
    struct strbuf sb = STRBUF_INIT;
    strbuf_addstr(&sb, "{\"op\":\"up\",\"lock\":\"vm-torn\",\"subject\":\"torn\",\"pid\":999999,\"started\":1}\n");
    strbuf_addf(&sb, "{\"undo\":\"rm_rf\",\"path\":\"%s\"}\n", d1);
    strbuf_addstr(&sb, "{\"undo\":\"rm_rf\",\"pa\n");  /* garbage line in the middle */
    strbuf_addf(&sb, "{\"undo\":\"rm_rf\",\"path\":\"%s\"}\n", d3);
    strbuf_addf(&sb, "{\"undo\":\"rm_rf\",\"path\":\"%s\"}", d2);  /* torn: no newline */
    write_text(jp, sb.buf);
    strbuf_release(&sb);
    int r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 1, "a journal with a torn last line is recovered (r=%d)", r);
    CHECK(!exists(d1) && !exists(d3), "complete records are undone");
    CHECK(exists(d2), "the torn last record is ignored (its step had not started)");
    CHECK(journals(NULL) == 0, "journal removed");

    /* A journal torn inside its header: nothing to undo, just removed. */
    write_text(jp, "{\"op\":\"up\",\"lo");
    r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 1 && journals(NULL) == 0, "a journal torn in its header is cleared");
    write_text(jp, "");
    r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 1 && journals(NULL) == 0, "an empty journal is cleared");

    /* Files that are not journals are left alone. */
    char *other = qvm_path_join(ctx.paths.journal_dir, "notes.txt");
    char *hidden = qvm_path_join(ctx.paths.journal_dir, ".x.jnl");
    write_text(other, "{\"op\":\"up\"}\n");
    write_text(hidden, "{\"op\":\"up\"}\n");
    r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 0 && exists(other) && exists(hidden), "non-journal files are ignored");
    unlink(other);
    unlink(hidden);
    qvm_rm_rf(d2, NULL);
    free(other);
    free(hidden);
    free(jp);
    free(d1);
    free(d2);
    free(d3);
}

/* Forks a writer that begins a journal on vm-NAME, records rm_rf of DIR,
 * creates DIR and dies without committing. */
static void dead_writer(const char *name, const char *dir)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct qvm_error e = { 0 };
        if (qvm_journal_begin(&ctx, "up", "vm", name, &child_journal, &e) < 0 ||
            qvm_journal_undo_rm_rf(child_journal, dir, &e) < 0 || mkdir(dir, 0755) < 0)
            _exit(2);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer for %s ran and died without commit", name);
}

static void test_dead_writer(void)
{
    struct qvm_error err = { 0 };
    char dir[256];
    TPATH(dir, "dead-dir");
    dead_writer("dead", dir);
    CHECK(exists(dir) && journals(NULL) == 1, "the dead writer left its work and journal behind");
    int r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 1, "recover rolls back one journal (r=%d)", r);
    CHECK(!exists(dir), "the dead writer's directory is gone");
    CHECK(journals(NULL) == 0, "the journal is gone");
    CHECK(qvm_journal_recover(&ctx, &err) == 0, "a second recovery finds nothing");

    /* Several dead writers at once. */
    char d1[256];
    TPATH(d1, "dead-1");
    char d2[256];
    TPATH(d2, "dead-2");
    dead_writer("one", d1);
    dead_writer("two", d2);
    r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 2 && !exists(d1) && !exists(d2) && journals(NULL) == 0, "two dead writers recovered");
}

static void test_live_writer(void)
{
    struct qvm_error err = { 0 };
    char dir[256];
    TPATH(dir, "live-dir");
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct qvm_error e = { 0 };
        close(p[0]);
        if (qvm_journal_begin(&ctx, "up", "vm", "live", &child_journal, &e) < 0 ||
            qvm_journal_undo_rm_rf(child_journal, dir, &e) < 0 || mkdir(dir, 0755) < 0)
            _exit(2);
        if (write(p[1], "r", 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    close(p[1]);
    CHECK(wait_ready(p[0]) == 0, "live writer is ready");
    close(p[0]);

    int r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 0, "a journal held by a live process is not recovered (r=%d)", r);
    CHECK(exists(dir), "the live writer's work is untouched");
    CHECK(journals(NULL) == 1, "the live writer's journal is untouched");
    char **list = NULL;
    size_t n = 9;
    CHECK(qvm_journal_list_stale(&ctx, &list, &n, &err) == 0 && n == 0 && list == NULL,
          "a live journal is not stale");
    CHECK(alive(pid), "the writer is still alive");

    kill_reap(pid);
    r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 1, "once the writer is dead its journal is recovered (r=%d)", r);
    CHECK(!exists(dir) && journals(NULL) == 0, "dir and journal gone");
}

static void test_object_lock_held(void)
{
    struct qvm_error err = { 0 };
    char dir[256];
    TPATH(dir, "locked-dir");
    dead_writer("locked", dir);

    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        if (qvm_lock_object(ctx.paths.lock_dir, "vm", "locked", false, NULL) < 0)
            _exit(2);
        if (write(p[1], "r", 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    close(p[1]);
    CHECK(wait_ready(p[0]) == 0, "another process holds the object lock vm-locked");
    close(p[0]);

    int r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 0, "recovery skips a journal whose object lock is held (r=%d)", r);
    CHECK(exists(dir) && journals(NULL) == 1, "work and journal untouched");
    char **list = NULL;
    size_t n = 0;
    CHECK(qvm_journal_list_stale(&ctx, &list, &n, &err) == 0 && n == 1, "it is listed as stale");
    char *jp;
    journals(&jp);
    CHECK(n == 1 && jp && strcmp(list[0], jp) == 0, "list_stale gives the journal's path");
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
    free(jp);

    kill_reap(pid);
    r = qvm_journal_recover(&ctx, &err);
    CHECK(r == 1 && !exists(dir) && journals(NULL) == 0, "recovered once the lock is free (r=%d)", r);
}

static void test_list_stale(void)
{
    struct qvm_error err = { 0 };
    static char *sentinel[1];
    char **list = sentinel;
    size_t n = 7;
    CHECK(qvm_journal_list_stale(&ctx, &list, &n, &err) == 0 && n == 0 && list == NULL,
          "no journals: empty list");

    char d1[256];
    TPATH(d1, "stale-1");
    char d2[256];
    TPATH(d2, "stale-2");
    dead_writer("stale-one", d1);
    dead_writer("stale-two", d2);
    struct qvm_journal *mine = NULL;
    qvm_journal_begin(&ctx, "up", "vm", "mine", &mine, &err);
    CHECK(journals(NULL) == 3, "three journals");
    CHECK(qvm_journal_list_stale(&ctx, &list, &n, &err) == 0 && n == 2,
          "two stale, our own live one is not (n=%zu)", n);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(list[i], ctx.paths.journal_dir, strlen(ctx.paths.journal_dir)) != 0 ||
            !strstr(list[i], ".jnl"))
            ok = 0;
        free(list[i]);
    }
    free(list);
    CHECK(ok, "entries are journal paths");
    CHECK(journals(NULL) == 3, "listing changes nothing");
    CHECK(qvm_journal_recover(&ctx, &err) == 2, "recovery takes the two stale ones, not ours");
    CHECK(qvm_journal_commit(mine, &err) == 0 && journals(NULL) == 0, "ours commits");

    /* No journal directory at all. */
    char *saved = ctx.paths.journal_dir;
    ctx.paths.journal_dir = tpath("no-such-dir");
    CHECK(qvm_journal_list_stale(&ctx, &list, &n, &err) == 0 && n == 0, "missing directory: empty list");
    CHECK(qvm_journal_recover(&ctx, &err) == 0, "missing directory: nothing to recover");
    free(ctx.paths.journal_dir);
    ctx.paths.journal_dir = saved;
    qvm_rm_rf(d1, NULL);
    qvm_rm_rf(d2, NULL);
}

static pid_t spawn(const char *const argv[], int stdin_fd)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (stdin_fd >= 0)
            dup2(stdin_fd, 0);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static void write_pid(const char *path, pid_t pid)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%d\n", (int)pid);
    write_text(path, buf);
}

/* Waits until /proc/PID/cmdline contains NEEDLE (after exec). */
static int wait_cmdline(pid_t pid, const char *needle)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    for (int i = 0; i < 500; i++) {
        char buf[4096];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (n > 0) {
            for (ssize_t k = 0; k < n; k++)
                if (buf[k] == '\0')
                    buf[k] = ' ';
            buf[n] = '\0';
            if (strstr(buf, needle))
                return 0;
        }
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void test_kill_qemu(void)
{
    struct qvm_error err = { 0 };
    struct qvm_journal *j = NULL;
    char pf[256];
    TPATH(pf, "qemu.pid");

    /* A live process that is not ours: the pid file names it, but its
     * command line does not carry -pidfile PF. */
    const char *sleeper[] = { "sleep", "30", NULL };
    pid_t innocent = spawn(sleeper, -1);
    CHECK(wait_cmdline(innocent, "sleep 30") == 0, "sleep 30 started");
    write_pid(pf, innocent);
    qvm_journal_begin(&ctx, "up", "vm", "kq", &j, &err);
    qvm_journal_undo_kill_qemu(j, pf, &err);
    int r = qvm_journal_rollback(j, &err);
    CHECK(r == 0, "rollback with a kill_qemu record (%s)", err.msg);
    CHECK(alive(innocent), "a process without -pidfile PATH in its cmdline survives");
    CHECK(!exists(pf), "the pid file is removed");

    /* A process that carries "-pidfile" PF as two consecutive arguments.
     * dash's read builtin waits on stdin without forking a child. */
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe");
    const char *fake_qemu[] = { "/bin/sh", "-c", "read x", "fake-qemu", "-pidfile", pf, NULL };
    pid_t ours = spawn(fake_qemu, p[0]);
    struct strbuf want = STRBUF_INIT;
    strbuf_addf(&want, "-pidfile %s", pf);
    CHECK(wait_cmdline(ours, want.buf) == 0, "fake qemu started with -pidfile PATH");
    strbuf_release(&want);
    write_pid(pf, ours);
    qvm_journal_begin(&ctx, "up", "vm", "kq", &j, &err);
    qvm_journal_undo_kill_qemu(j, pf, &err);
    r = qvm_journal_rollback(j, &err);
    CHECK(r == 0, "rollback kills our process (%s)", err.msg);
    int st = 0;
    pid_t w = waitpid(ours, &st, 0);
    CHECK(w == ours && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the -pidfile process was SIGKILLed");
    CHECK(alive(innocent), "the unrelated process still survives");
    CHECK(!exists(pf), "pid file removed");

    /* The pid file names the innocent process, but ours is found by its
     * command line. */
    ours = spawn(fake_qemu, p[0]);
    want = (struct strbuf)STRBUF_INIT;
    strbuf_addf(&want, "-pidfile %s", pf);
    CHECK(wait_cmdline(ours, want.buf) == 0, "second fake qemu started");
    strbuf_release(&want);
    write_pid(pf, innocent);
    qvm_journal_begin(&ctx, "up", "vm", "kq", &j, &err);
    qvm_journal_undo_kill_qemu(j, pf, &err);
    r = qvm_journal_rollback(j, &err);
    w = waitpid(ours, &st, 0);
    CHECK(r == 0 && w == ours && WIFSIGNALED(st), "a pid file naming the wrong process: ours found by cmdline");
    CHECK(alive(innocent), "and the one named in the pid file survives");

    /* No pid file and no process: nothing to do. */
    qvm_journal_begin(&ctx, "up", "vm", "kq", &j, &err);
    qvm_journal_undo_kill_qemu(j, pf, &err);
    CHECK(qvm_journal_rollback(j, &err) == 0, "kill_qemu with no process is a no-op");

    /* Recovery of a dead writer's kill_qemu record. */
    ours = spawn(fake_qemu, p[0]);
    want = (struct strbuf)STRBUF_INIT;
    strbuf_addf(&want, "-pidfile %s", pf);
    wait_cmdline(ours, want.buf);
    strbuf_release(&want);
    write_pid(pf, ours);
    fflush(stdout);
    pid_t writer = fork();
    if (writer == 0) {
        struct qvm_error e = { 0 };
        if (qvm_journal_begin(&ctx, "up", "vm", "kq2", &child_journal, &e) < 0 ||
            qvm_journal_undo_kill_qemu(child_journal, pf, &e) < 0)
            _exit(2);
        _exit(0);
    }
    reap(writer);
    CHECK(qvm_journal_recover(&ctx, &err) == 1, "recovery of a kill_qemu record");
    w = waitpid(ours, &st, 0);
    CHECK(w == ours && WIFSIGNALED(st), "recovery killed the process it started");
    CHECK(journals(NULL) == 0, "journal gone");

    close(p[0]);
    close(p[1]);
    kill_reap(innocent);
}

/* The race window in qvm_journal_begin between creating the journal file
 * and locking it: a concurrent recovery (any other qvm command starting)
 * sees an unlocked, empty journal, "rolls it back" and deletes it; the
 * writer then locks and writes a journal that no longer exists on disk, so
 * if the writer dies later nothing is ever rolled back. */
static int race_recovered = -1;

static void recover_now(int fd, int op)
{
    race_recovered = qvm_journal_recover(&ctx, NULL);
}

static void test_begin_race(void)
{
    struct qvm_error err = { 0 };
    struct qvm_journal *j = NULL;
    flock_hook = recover_now;  /* the next flock is begin's own */
    int r = qvm_journal_begin(&ctx, "up", "vm", "begin-race", &j, &err);
    flock_hook = NULL;
    CHECK(r == 0, "begin with a recovery in its create-to-lock window");
    CHECK(race_recovered == 0 && journals(NULL) == 1,
          "a recovery racing begin leaves the new journal alone (recovered %d, %d journal(s) on disk)",
          race_recovered, journals(NULL));
    if (j)
        qvm_journal_rollback(j, NULL);
    char *jp;
    while (journals(&jp) > 0) {
        unlink(jp);
        free(jp);
    }
    free(jp);
}

/* recover_one reads the journal before it takes the locks. A writer that
 * appends a record and dies between that read and the lock attempt has its
 * last step ignored, and the journal is deleted anyway. */
static int race_go = -1;
static pid_t race_writer;

static void let_writer_finish(int fd, int op)
{
    if (write(race_go, "g", 1) == 1)
        reap(race_writer);
}

static void test_recover_race(void)
{
    char d1[256], d2[256];
    TPATH(d1, "race-1");
    TPATH(d2, "race-2");
    int ready[2], go[2];
    CHECK(pipe(ready) == 0 && pipe(go) == 0, "pipes");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct qvm_error e = { 0 };
        char c;
        close(ready[0]);
        close(go[1]);
        if (qvm_lock_object(ctx.paths.lock_dir, "vm", "race", false, &e) < 0 ||
            qvm_journal_begin(&ctx, "up", "vm", "race", &child_journal, &e) < 0 ||
            qvm_journal_undo_rm_rf(child_journal, d1, &e) < 0 || mkdir(d1, 0755) < 0)
            _exit(2);
        if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(3);
        /* The next step, journaled as it should be, then the writer dies. */
        if (qvm_journal_undo_rm_rf(child_journal, d2, &e) < 0 || mkdir(d2, 0755) < 0)
            _exit(4);
        raise(SIGKILL);
        _exit(5);
    }
    close(ready[1]);
    close(go[0]);
    CHECK(wait_ready(ready[0]) == 0, "writer is in the middle of its operation");
    close(ready[0]);
    race_go = go[1];
    race_writer = pid;
    /* recover_one: read the journal, then flock the object lock: the hook
     * lets the writer take its next step and die right there. */
    flock_hook = let_writer_finish;
    int r = qvm_journal_recover(&ctx, NULL);
    flock_hook = NULL;
    close(go[1]);
    CHECK(r == 1 && !exists(d1), "the dead writer's journal is recovered (r=%d)", r);
    CHECK(!exists(d2) || journals(NULL) == 1,
          "the step journaled just before the writer died is undone, or its journal kept "
          "(%s exists, %d journal(s) left)", d2, journals(NULL));
    qvm_journal_recover(&ctx, NULL);
    qvm_rm_rf(d1, NULL);
    qvm_rm_rf(d2, NULL);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);  /* no buffered TAP lines duplicated by forks */
    setup();
    test_commit();
    test_rollback_rm_rf();
    test_rename();
    test_reverse_order();
    test_rollback_failure();
    test_torn();
    test_dead_writer();
    test_live_writer();
    test_object_lock_held();
    test_list_stale();
    test_kill_qemu();
    test_begin_race();
    test_recover_race();
    teardown();
    return test_done();
}
