#include "process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/strbuf.h"

/* True if /proc/PID/cmdline has the two consecutive arguments
 * "-pidfile" PID_FILE. */
static bool cmdline_has_pidfile(pid_t pid, const char *pid_file)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct strbuf sb = STRBUF_INIT;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 && sb.len < (1 << 20))
        strbuf_add(&sb, buf, (size_t)n);
    close(fd);
    bool found = false;
    const char *prev = NULL;
    for (size_t off = 0; off < sb.len; off += strlen(sb.buf + off) + 1) {
        const char *arg = sb.buf + off;
        if (prev && strcmp(prev, "-pidfile") == 0 && strcmp(arg, pid_file) == 0) {
            found = true;
            break;
        }
        prev = arg;
    }
    strbuf_release(&sb);
    return found;
}

bool qvm_process_alive(pid_t pid)
{
    if (kill(pid, 0) == 0 || errno == EPERM) {
        /* A zombie is not alive for our purposes. */
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return false;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            return false;
        buf[n] = '\0';
        const char *p = strrchr(buf, ')');
        return !(p && p[1] == ' ' && p[2] == 'Z');
    }
    return false;
}

pid_t qvm_qemu_pid(const char *pid_file)
{
    char *data = NULL;
    size_t len;
    if (qvm_read_file(pid_file, 64, &data, &len, NULL) == 0) {
        long pid = strtol(data, NULL, 10);
        free(data);
        if (pid > 0 && qvm_process_alive((pid_t)pid) && cmdline_has_pidfile((pid_t)pid, pid_file))
            return (pid_t)pid;
    }
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    pid_t found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        if (cmdline_has_pidfile((pid_t)pid, pid_file) && qvm_process_alive((pid_t)pid))
            found = (pid_t)pid;
    }
    closedir(d);
    return found;
}

bool qvm_process_wait_gone(pid_t pid, int timeout_ms)
{
    for (int waited = 0; ; waited += 20) {
        if (!qvm_process_alive(pid))
            return true;
        if (waited >= timeout_ms)
            return false;
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

bool qvm_process_kill_wait(pid_t pid, int timeout_ms)
{
    if (kill(pid, SIGKILL) < 0 && errno == ESRCH)
        return true;
    return qvm_process_wait_gone(pid, timeout_ms);
}

long qvm_process_uptime(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* field 22 (starttime, clock ticks since boot); p points at field 2's end */
    int field = 2;
    unsigned long long start = 0;
    for (const char *s = p + 1; *s; s++) {
        if (*s == ' ') {
            field++;
            if (field == 22) {
                start = strtoull(s + 1, NULL, 10);
                break;
            }
        }
    }
    double up = 0;
    FILE *f = fopen("/proc/uptime", "re");
    if (!f)
        return -1;
    if (fscanf(f, "%lf", &up) != 1)
        up = 0;
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    return (long)(up - (double)start / (double)(hz > 0 ? hz : 100));
}

char *qvm_process_cmdline(pid_t pid, size_t max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *data = xmalloc(max + 1);
    size_t len = 0;
    ssize_t n;
    while (len < max && (n = read(fd, data + len, max - len)) > 0)
        len += (size_t)n;
    close(fd);
    while (len && data[len - 1] == '\0')
        len--;
    for (size_t i = 0; i < len; i++)
        if (data[i] == '\0' || data[i] == '\n')
            data[i] = ' ';
    data[len] = '\0';
    if (!len) {
        free(data);
        return NULL;
    }
    return data;
}

/* /proc/locks, one lock a line; "->" marks a waiter, devices are hex:
 *   1: FLOCK  ADVISORY  WRITE 12345 00:2d:1234567 0 EOF
 *   1: -> FLOCK  ADVISORY  WRITE 12346 00:2d:1234567 0 EOF */
pid_t qvm_flock_holder(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return 0;
    FILE *f = fopen("/proc/locks", "re");
    if (!f)
        return 0;
    char line[512];
    pid_t found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char kind[16], arrow[8];
        int pid;
        unsigned maj, min;
        unsigned long long ino;
        if (sscanf(line, "%*d: %7s", arrow) == 1 && strcmp(arrow, "->") == 0)
            continue;
        if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%llu", kind, &pid, &maj, &min, &ino) != 5)
            continue;
        if (strcmp(kind, "FLOCK") == 0 && maj == major(st.st_dev) && min == minor(st.st_dev) &&
            ino == (unsigned long long)st.st_ino && pid > 0)
            found = (pid_t)pid;
    }
    fclose(f);
    return found;
}
