/* tests/testlib.h - the plain C test runner shared by every test file.
 *
 * Every tests/test_NAME.c file is linked into one binary, bin/recd-tests. A test is declared with
 *
 *     TEST(snap_roundtrip) { ... ASSERT_EQ(n, 3); ... }
 *     TEST_TIMEOUT(server_hot_swap, 120) { ... }      // seconds; the default is 60
 *
 * Names are prefixed by module (snap_, gru_, server_...) so `bin/recd-tests snap_` runs one module.
 * Each test runs in its own child process (a crash or a hang fails that test only) with a fresh
 * temporary directory, test_tmpdir(), removed afterwards (kept when RECD_KEEP_TMP=1).
 * Failing asserts print both values and end the test; SKIP("why") ends it as skipped, with the reason.
 * Timing never goes into tests. The runner's last line is `N passed, N failed, N skipped`.
 */
#ifndef RECD_TESTLIB_H
#define RECD_TESTLIB_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

typedef void (*test_fn)(void);
void test_register(const char *name, const char *file, test_fn fn, int timeout_s);

#define TEST_TIMEOUT(name, secs)                                                    \
    static void test_##name(void);                                                  \
    __attribute__((constructor)) static void test_reg_##name(void)                  \
    {                                                                               \
        test_register(#name, __FILE__, test_##name, secs);                          \
    }                                                                               \
    static void test_##name(void)
#define TEST(name) TEST_TIMEOUT(name, 60)

/* Ends the current test as failed / skipped (never returns). */
void test_fail_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
void test_skip_(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define FAIL(...) test_fail_(__FILE__, __LINE__, __VA_ARGS__)
#define SKIP(...) test_skip_(__VA_ARGS__)

#define ASSERT(c)                                                  \
    do {                                                           \
        if (!(c)) FAIL("ASSERT(%s) failed", #c);                   \
    } while (0)
#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) FAIL("ASSERT_EQ(%s, %s) failed: %lld != %lld", #a, #b, a_, b_);              \
    } while (0)
#define ASSERT_NE(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ == b_) FAIL("ASSERT_NE(%s, %s) failed: both %lld", #a, #b, a_);                     \
    } while (0)
#define ASSERT_NEAR(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            FAIL("ASSERT_NEAR(%s, %s) failed: %.9g vs %.9g (tol %g)", #a, #b, a_, b_, (double)(tol)); \
    } while (0)
#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            FAIL("ASSERT_STR_EQ(%s, %s) failed: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",     \
                 b_ ? b_ : "(null)");                                                              \
    } while (0)
#define ASSERT_CONTAINS(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            FAIL("ASSERT_CONTAINS(%s, %s) failed: \"%s\" not in \"%.400s\"", #hay, #needle, n_,     \
                 h_ ? h_ : "(null)");                                                              \
    } while (0)
/* For functions returning an RC code: prints the error message on failure. */
#define ASSERT_OK(expr)                                                                            \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != RC_OK) FAIL("%s returned %d (%s): %s", #expr, rc_, rc_strerror(rc_), rc_errmsg()); \
    } while (0)
#define ASSERT_RC(expr, code)                                                                      \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != (code))                                                                         \
            FAIL("%s returned %d (%s), expected %d: %s", #expr, rc_, rc_strerror(rc_), (int)(code), \
                 rc_errmsg());                                                                     \
    } while (0)

/* A fresh empty directory for this test (absolute path, no trailing slash). */
const char *test_tmpdir(void);

/* Path of the real dataset folder ../shared/data/<name> (or $RECD_SHARED/data/<name>), or NULL when
 * absent: tests that need it call SKIP("dataset <name> absent"). */
const char *test_shared_data(const char *name);

/* Absolute path of the recd binary under test ($RECD_BIN, else bin/recd). */
const char *test_recd_bin(void);

/* Run a shell command, capture up to cap-1 bytes of its stdout+stderr into out (NUL-terminated).
 * Returns its exit status (0-255), or -1 if it could not run / was killed by a signal. */
int test_run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Write a file (creating or truncating it); fails the test on error. */
void test_write_file(const char *path, const char *text);

/* A free TCP port on 127.0.0.1 (bound then released; race-free enough for tests). */
int test_free_port(void);

#endif
