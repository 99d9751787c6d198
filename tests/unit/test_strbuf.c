/* test_strbuf.c - struct strbuf and the x* allocation helpers. */
#include <signal.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "util/strbuf.h"

static int invariants(const struct strbuf *sb)
{
    if (!sb->buf)
        return 0;
    if (sb->buf[sb->len] != '\0')
        return 0;
    if (sb->alloc == 0)
        return sb->len == 0 && sb->buf == strbuf_empty_;
    return sb->len < sb->alloc;
}

static void test_init(void)
{
    struct strbuf a = STRBUF_INIT, b;
    strbuf_init(&b);
    CHECK(a.buf && a.buf[0] == '\0' && a.len == 0 && a.alloc == 0, "STRBUF_INIT is empty");
    CHECK(b.buf == a.buf && b.len == 0 && b.alloc == 0, "strbuf_init matches STRBUF_INIT");
    CHECK(invariants(&a), "invariants hold on an empty buffer");
    strbuf_reset(&a);
    CHECK(invariants(&a) && a.alloc == 0, "reset of an unallocated buffer allocates nothing");
    strbuf_release(&a);
    CHECK(invariants(&a) && a.alloc == 0, "release of an unallocated buffer is harmless");
    strbuf_add(&a, "", 0);
    CHECK(invariants(&a) && a.len == 0, "adding nothing keeps the buffer empty");
    strbuf_release(&a);
}

static void test_growth(void)
{
    struct strbuf sb = STRBUF_INIT;
    int ok = 1;
    for (int i = 0; i < 100000; i++) {
        strbuf_addch(&sb, (char)('a' + i % 26));
        if (!invariants(&sb) || sb.len != (size_t)i + 1) {
            ok = 0;
            break;
        }
    }
    CHECK(ok, "100000 addch keep the invariants");
    CHECK(sb.len == 100000, "length is 100000");
    ok = 1;
    for (size_t i = 0; i < sb.len; i++)
        if (sb.buf[i] != (char)('a' + i % 26))
            ok = 0;
    CHECK(ok, "content is intact after growth");
    CHECK(strlen(sb.buf) == sb.len, "buffer is NUL-terminated at len");
    strbuf_release(&sb);

    strbuf_grow(&sb, 1000);
    CHECK(sb.alloc >= 1001 && sb.len == 0 && sb.buf[0] == '\0', "grow reserves room and stays empty");
    size_t alloc = sb.alloc;
    char *before = sb.buf;
    strbuf_add(&sb, "0123456789", 10);
    CHECK(sb.alloc == alloc && sb.buf == before, "adding within the reserved room does not reallocate");
    strbuf_grow(&sb, 0);
    CHECK(sb.alloc == alloc, "grow by 0 is a no-op");
    CHECK_STR(sb.buf, "0123456789", "content after grow");

    strbuf_reset(&sb);
    CHECK(sb.len == 0 && sb.buf[0] == '\0' && sb.alloc == alloc, "reset keeps the allocation");
    strbuf_addstr(&sb, "again");
    CHECK_STR(sb.buf, "again", "reuse after reset");
    strbuf_release(&sb);

    /* Binary data with embedded NULs. */
    strbuf_add(&sb, "a\0b\0c", 5);
    CHECK(sb.len == 5 && memcmp(sb.buf, "a\0b\0c", 6) == 0, "embedded NULs are kept");
    strbuf_release(&sb);

    /* One big add straight from empty. */
    size_t big = 3 * 1024 * 1024 + 7;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)(i * 7);
    strbuf_add(&sb, data, big);
    CHECK(sb.len == big && invariants(&sb), "3 MiB add from empty");
    CHECK(memcmp(sb.buf, data, big) == 0, "3 MiB content intact");
    strbuf_add(&sb, data, big);
    CHECK(sb.len == 2 * big && memcmp(sb.buf + big, data, big) == 0 && invariants(&sb),
          "second 3 MiB add appends");
    free(data);
    strbuf_release(&sb);
}

static void test_addf(void)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_addf(&sb, "%s=%d", "x", 42);
    CHECK_STR(sb.buf, "x=42", "addf formats");
    strbuf_addf(&sb, "%s", "");
    CHECK_STR(sb.buf, "x=42", "addf of an empty string appends nothing");
    CHECK(sb.len == 4, "len after empty addf");
    strbuf_addf(&sb, ",%05.1f,%c,%%", 3.14159, 'z');
    CHECK_STR(sb.buf, "x=42,003.1,z,%", "addf appends");
    strbuf_release(&sb);

    /* Exactly at the first allocation boundaries (64 bytes initially). */
    for (size_t n = 60; n <= 70; n++) {
        char *s = malloc(n + 1);
        memset(s, 'q', n);
        s[n] = '\0';
        strbuf_addf(&sb, "%s", s);
        CHECK(sb.len == n && strcmp(sb.buf, s) == 0 && invariants(&sb),
              "addf of %zu chars from empty", n);
        strbuf_release(&sb);
        free(s);
    }

    /* Large strings through addf, appended several times. */
    size_t big = 1024 * 1024 + 3;
    char *s = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        s[i] = (char)('A' + i % 23);
    s[big] = '\0';
    strbuf_addstr(&sb, "<");
    strbuf_addf(&sb, "%s|%s", s, s);
    strbuf_addf(&sb, "%zu>", big);
    char tail[32];
    int tl = snprintf(tail, sizeof tail, "%zu>", big);
    CHECK(sb.len == 1 + big + 1 + big + (size_t)tl, "addf with two 1 MiB strings: length %zu", sb.len);
    CHECK(sb.buf[0] == '<' && memcmp(sb.buf + 1, s, big) == 0 && sb.buf[1 + big] == '|' &&
          memcmp(sb.buf + 2 + big, s, big) == 0, "addf with two 1 MiB strings: content");
    CHECK(strcmp(sb.buf + sb.len - (size_t)tl, tail) == 0, "addf after a large one: content");
    CHECK(invariants(&sb), "invariants after large addf");
    strbuf_release(&sb);
    free(s);
}

static void vaddf_helper(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vaddf_helper(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf_vaddf(sb, fmt, ap);
    va_end(ap);
}

static void test_vaddf(void)
{
    struct strbuf sb = STRBUF_INIT;
    vaddf_helper(&sb, "%d-%s", 7, "seven");
    vaddf_helper(&sb, "/%x", 255);
    CHECK_STR(sb.buf, "7-seven/ff", "vaddf formats and appends");
    strbuf_release(&sb);
}

static void test_detach(void)
{
    struct strbuf sb = STRBUF_INIT;
    size_t len = 99;
    char *p = strbuf_detach(&sb, &len);
    CHECK(p != NULL && p != strbuf_empty_, "detach of an empty buffer gives a fresh allocation");
    CHECK(p && p[0] == '\0', "detach of an empty buffer gives \"\"");
    CHECK(len == 0, "detach of an empty buffer: len 0");
    CHECK(invariants(&sb) && sb.alloc == 0, "buffer is reset after detach");
    free(p);

    p = strbuf_detach(&sb, NULL);
    CHECK(p && p[0] == '\0', "detach with NULL len");
    free(p);

    strbuf_addstr(&sb, "hello");
    strbuf_reset(&sb);
    p = strbuf_detach(&sb, &len);
    CHECK(p && p[0] == '\0' && len == 0, "detach of an allocated but reset buffer gives \"\"");
    free(p);

    strbuf_addstr(&sb, "hello, world");
    char *inner = sb.buf;
    p = strbuf_detach(&sb, &len);
    CHECK(p == inner, "detach hands over the buffer itself");
    CHECK_STR(p, "hello, world", "detached content");
    CHECK(len == 12, "detached len");
    CHECK(sb.buf == strbuf_empty_ && sb.len == 0 && sb.alloc == 0, "buffer reset after detach");
    strbuf_addstr(&sb, "next");
    CHECK_STR(sb.buf, "next", "buffer reusable after detach");
    CHECK_STR(p, "hello, world", "detached string unaffected by reuse");
    free(p);
    strbuf_release(&sb);
}

static void test_release_reuse(void)
{
    struct strbuf sb = STRBUF_INIT;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 1000; i++)
            strbuf_addf(&sb, "%d,", i);
        strbuf_release(&sb);
    }
    CHECK(sb.buf == strbuf_empty_ && sb.len == 0 && sb.alloc == 0, "release resets the buffer");
    strbuf_release(&sb);
    CHECK(sb.buf == strbuf_empty_, "double release is harmless");
    strbuf_addstr(&sb, "reused");
    CHECK_STR(sb.buf, "reused", "buffer reusable after release");
    CHECK(strbuf_empty_[0] == '\0', "the shared empty string is never written");
    strbuf_release(&sb);
}

static void test_x_helpers(void)
{
    char *s = xasprintf("%s-%d-%c", "abc", -5, 'q');
    CHECK_STR(s, "abc--5-q", "xasprintf formats");
    free(s);
    s = xasprintf("%s", "");
    CHECK(s && s[0] == '\0', "xasprintf of an empty string gives \"\"");
    free(s);

    size_t big = 2 * 1024 * 1024;
    char *in = malloc(big + 1);
    memset(in, 'w', big);
    in[big] = '\0';
    s = xasprintf("[%s]", in);
    CHECK(s && strlen(s) == big + 2 && s[0] == '[' && s[big + 1] == ']' && s[1] == 'w' && s[big] == 'w',
          "xasprintf of a 2 MiB string");
    free(s);
    free(in);

    s = xstrdup("dup");
    CHECK_STR(s, "dup", "xstrdup copies");
    free(s);

    void *p = xmalloc(0);
    CHECK(p != NULL, "xmalloc(0) is not NULL");
    free(p);
    int *z = xcalloc(16, sizeof(int));
    int allzero = 1;
    for (int i = 0; i < 16; i++)
        if (z[i])
            allzero = 0;
    CHECK(allzero, "xcalloc zeroes");
    z = xrealloc(z, 1024 * sizeof(int));
    CHECK(z != NULL && z[0] == 0 && z[15] == 0, "xrealloc keeps content");
    free(z);
    p = xcalloc(0, 0);
    CHECK(p != NULL, "xcalloc(0, 0) is not NULL");
    free(p);
}

/* Growth that cannot be satisfied must abort ("Allocation failure aborts"),
 * not spin: with a request above SIZE_MAX/2 the doubling of the capacity
 * overflows to 0 and never reaches it. Run in a child with an alarm. */
/* The child gave up by itself: aborted (or, under a sanitizer, failed the
 * allocation and exited non-zero), not killed by the alarm, not exit 0. */
static int gave_up(int st)
{
    return (WIFSIGNALED(st) && WTERMSIG(st) != SIGALRM) || (WIFEXITED(st) && WEXITSTATUS(st) != 0);
}

static void test_grow_huge(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(3);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);   /* the "out of memory" line */
        struct strbuf sb = STRBUF_INIT;
        strbuf_grow(&sb, SIZE_MAX / 2 + 2);
        strbuf_release(&sb);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(gave_up(st),
          "an impossible grow aborts instead of looping (child %s %d)",
          WIFSIGNALED(st) ? "killed by signal" : "exited", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));

    /* The overflow check itself: len + extra + 1 wraps around to exactly
     * len, so the request looks satisfied and nothing is allocated (a
     * following strbuf_add would write SIZE_MAX bytes). */
    pid = fork();
    if (pid == 0) {
        alarm(3);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        struct strbuf sb = STRBUF_INIT;
        strbuf_addstr(&sb, "x");
        strbuf_grow(&sb, SIZE_MAX);
        strbuf_release(&sb);
        _exit(0);
    }
    waitpid(pid, &st, 0);
    CHECK(gave_up(st),
          "a grow by SIZE_MAX (len + extra + 1 wraps back to len) aborts (child %s %d)",
          WIFSIGNALED(st) ? "killed by signal" : "exited", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);  /* no buffered TAP lines duplicated by forks */
    test_init();
    test_growth();
    test_addf();
    test_vaddf();
    test_detach();
    test_release_reuse();
    test_x_helpers();
    test_grow_huge();
    return test_done();
}
