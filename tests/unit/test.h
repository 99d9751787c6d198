/* test.h - a tiny TAP producer for unit tests. Each check prints one
 * "ok N - what" or "not ok N - what" line; main() returns test_done(). */
#ifndef QVM_TEST_H
#define QVM_TEST_H

#include <stdio.h>
#include <string.h>

static int test_n, test_failed;

#define CHECK(cond, ...) do { \
    int ok_ = !!(cond); \
    test_n++; \
    if (ok_) { printf("ok %d - ", test_n); } \
    else { test_failed++; printf("not ok %d - ", test_n); } \
    printf(__VA_ARGS__); printf("\n"); \
    if (!ok_) printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
} while (0)

#define CHECK_STR(got, want, ...) do { \
    const char *g_ = (got), *w_ = (want); \
    int same_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
    CHECK(same_, __VA_ARGS__); \
    if (!same_) printf("#   got:  '%s'\n#   want: '%s'\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)

#define CHECK_CONTAINS(hay, needle, ...) do { \
    const char *h_ = (hay), *n_ = (needle); \
    int has_ = h_ && strstr(h_, n_) != NULL; \
    CHECK(has_, __VA_ARGS__); \
    if (!has_) printf("#   '%s'\n#   does not contain '%s'\n", h_ ? h_ : "(null)", n_); \
} while (0)

static inline int test_done(void)
{
    printf("1..%d\n", test_n);
    return test_failed ? 1 : 0;
}

#endif
