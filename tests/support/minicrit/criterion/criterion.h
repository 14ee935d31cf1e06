/* SPDX-License-Identifier: MIT */
/*
 * minicrit: a small stand-in for Criterion that builds the same test sources
 * where Criterion cannot run: under ThreadSanitizer, where every Criterion 2.4
 * binary aborts at start ("Could not initialize inheritable arena",
 * https://github.com/Snaipe/Criterion/issues/274), and on Windows, where
 * Criterion has no mingw-w64 build.  A test file includes
 * <criterion/criterion.h> either way; the include path chooses which.
 *
 * Only what the unit tests use is here:
 *
 *   Test(suite, name, .init = f, .fini = g, .timeout = seconds, .disabled = b)
 *   TestSuite(suite, .init = f, .fini = g, .timeout = seconds, .disabled = b)
 *   cr_assert, cr_assert_not, cr_assert_eq/neq/lt/leq/gt/geq, cr_assert_zero,
 *   cr_assert_not_zero, cr_assert_null/not_null, cr_assert_str_eq/str_neq,
 *   cr_assert_arr_eq/arr_neq, cr_assert_fail, and the cr_expect_* twins,
 *   cr_skip_test, cr_log_info/warn/error.
 *
 * .signal and .exit_code also work on POSIX, where every test runs in a
 * process of its own.  A suite's .init runs before the test's, its .fini
 * after the test's, and its .timeout applies to each test that sets none.
 *
 * One difference: the optional message after an assertion's arguments must
 * be a string literal (it is joined to another literal), where Criterion
 * also accepts a variable.
 *
 * The runner and main() are in minicrit.c and minicrit_{posix,win}.c.
 */
#ifndef MINICRIT_CRITERION_H
#define MINICRIT_CRITERION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__MINGW32__)
/* minicrit.c formats with mingw-w64's C99 printf, which knows %zu and %llu. */
#define MINICRIT_PRINTF_(f, a) __attribute__((format(gnu_printf, f, a)))
#else
#define MINICRIT_PRINTF_(f, a) __attribute__((format(printf, f, a)))
#endif

/* What Test and TestSuite accept after their names, as in Criterion. */
struct minicrit_opts {
    void (*init)(void);
    void (*fini)(void);
    double timeout; /* seconds; 0: none */
    bool disabled;
    const char *description;
    int signal;    /* the test passes only if this signal ends it */
    int exit_code; /* the test passes only if it exits with this status */
    int end_;      /* lets Test(suite, name) expand with no options */
};

struct minicrit_test {
    const char *suite;
    const char *name;
    const char *file;
    int line;
    void (*fn)(void);
    struct minicrit_opts opts;
    struct minicrit_test *next;
};

struct minicrit_suite {
    const char *name;
    struct minicrit_opts opts;
    struct minicrit_suite *next;
};

void minicrit_register_test(struct minicrit_test *t);
void minicrit_register_suite(struct minicrit_suite *s);
void minicrit_report(const char *file, int line, const char *expr, const char *fmt, ...)
    MINICRIT_PRINTF_(4, 5);
void minicrit_report_str(const char *file, int line, const char *expr, const char *a, const char *b,
                         const char *fmt, ...) MINICRIT_PRINTF_(6, 7);
bool minicrit_str_equal(const char *a, const char *b);
_Noreturn void minicrit_abort_test(void);
_Noreturn void minicrit_skip(const char *file, int line, const char *fmt, ...)
    MINICRIT_PRINTF_(3, 4);
void minicrit_log(int level, const char *fmt, ...) MINICRIT_PRINTF_(2, 3);

/* Tests and suites register themselves before main() runs. */
#define MINICRIT_CONSTRUCTOR_ __attribute__((constructor))

#define Test(...) MINICRIT_TEST_(__VA_ARGS__, .end_ = 0)
#define MINICRIT_TEST_(s_, n_, ...)                                                                \
    static void minicrit_fn_##s_##_##n_(void);                                                     \
    static struct minicrit_test minicrit_test_##s_##_##n_ = {                                      \
        .suite = #s_,                                                                              \
        .name = #n_,                                                                               \
        .file = __FILE__,                                                                          \
        .line = __LINE__,                                                                          \
        .fn = minicrit_fn_##s_##_##n_,                                                             \
        .opts = {__VA_ARGS__},                                                                     \
    };                                                                                             \
    MINICRIT_CONSTRUCTOR_ static void minicrit_reg_##s_##_##n_(void)                               \
    {                                                                                              \
        minicrit_register_test(&minicrit_test_##s_##_##n_);                                        \
    }                                                                                              \
    static void minicrit_fn_##s_##_##n_(void)

/* The definition comes last so that it takes the caller's semicolon. */
#define TestSuite(...) MINICRIT_SUITE_(__VA_ARGS__, .end_ = 0)
#define MINICRIT_SUITE_(s_, ...)                                                                   \
    static struct minicrit_suite minicrit_suite_##s_;                                              \
    MINICRIT_CONSTRUCTOR_ static void minicrit_reg_suite_##s_(void)                                \
    {                                                                                              \
        minicrit_register_suite(&minicrit_suite_##s_);                                             \
    }                                                                                              \
    static struct minicrit_suite minicrit_suite_##s_ = {.name = #s_, .opts = {__VA_ARGS__}}

/*
 * The checks.  kind is assert (stop the test) or expect (go on); the message
 * is joined to " " so that an absent one is still a valid format, and the
 * reporter drops that space again.
 */
#define MINICRIT_STOP_expect ((void)0)
#define MINICRIT_STOP_assert minicrit_abort_test()

#define MINICRIT_CHECK_(kind, cond, expr, ...)                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            minicrit_report(__FILE__, __LINE__, expr, " " __VA_ARGS__);                            \
            MINICRIT_STOP_##kind;                                                                  \
        }                                                                                          \
    } while (0)

#define MINICRIT_STR_(kind, want_equal, expr, a, b, ...)                                           \
    do {                                                                                           \
        const char *minicrit_a_ = (a), *minicrit_b_ = (b);                                         \
        if (minicrit_a_ == NULL || minicrit_b_ == NULL ||                                          \
            minicrit_str_equal(minicrit_a_, minicrit_b_) != (want_equal)) {                        \
            minicrit_report_str(__FILE__, __LINE__, expr, minicrit_a_, minicrit_b_,                \
                                " " __VA_ARGS__);                                                  \
            MINICRIT_STOP_##kind;                                                                  \
        }                                                                                          \
    } while (0)

#define MINICRIT_ARR_(kind, want_equal, expr, a, b, size, ...)                                     \
    MINICRIT_CHECK_(kind, (memcmp((a), (b), (size)) == 0) == (want_equal), expr, __VA_ARGS__)

#define cr_assert(cond, ...)         MINICRIT_CHECK_(assert, (cond), #cond, __VA_ARGS__)
#define cr_assert_not(cond, ...)     MINICRIT_CHECK_(assert, !(cond), "!(" #cond ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...)      MINICRIT_CHECK_(assert, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...)     MINICRIT_CHECK_(assert, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...)      MINICRIT_CHECK_(assert, (a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...)     MINICRIT_CHECK_(assert, (a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...)      MINICRIT_CHECK_(assert, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...)     MINICRIT_CHECK_(assert, (a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_zero(a, ...)       MINICRIT_CHECK_(assert, (a) == 0, #a " == 0", __VA_ARGS__)
#define cr_assert_not_zero(a, ...)   MINICRIT_CHECK_(assert, (a) != 0, #a " != 0", __VA_ARGS__)
#define cr_assert_null(p, ...)       MINICRIT_CHECK_(assert, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...)   MINICRIT_CHECK_(assert, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)  MINICRIT_STR_(assert, true, #a " == " #b, a, b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) MINICRIT_STR_(assert, false, #a " != " #b, a, b, __VA_ARGS__)
#define cr_assert_arr_eq(a, b, size, ...)                                                          \
    MINICRIT_ARR_(assert, true, #a " == " #b " (" #size " bytes)", a, b, size, __VA_ARGS__)
#define cr_assert_arr_neq(a, b, size, ...)                                                         \
    MINICRIT_ARR_(assert, false, #a " != " #b " (" #size " bytes)", a, b, size, __VA_ARGS__)
#define cr_assert_fail(...) MINICRIT_CHECK_(assert, 0, "cr_assert_fail", __VA_ARGS__)

#define cr_expect(cond, ...)         MINICRIT_CHECK_(expect, (cond), #cond, __VA_ARGS__)
#define cr_expect_not(cond, ...)     MINICRIT_CHECK_(expect, !(cond), "!(" #cond ")", __VA_ARGS__)
#define cr_expect_eq(a, b, ...)      MINICRIT_CHECK_(expect, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...)     MINICRIT_CHECK_(expect, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...)      MINICRIT_CHECK_(expect, (a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...)     MINICRIT_CHECK_(expect, (a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...)      MINICRIT_CHECK_(expect, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...)     MINICRIT_CHECK_(expect, (a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_expect_zero(a, ...)       MINICRIT_CHECK_(expect, (a) == 0, #a " == 0", __VA_ARGS__)
#define cr_expect_not_zero(a, ...)   MINICRIT_CHECK_(expect, (a) != 0, #a " != 0", __VA_ARGS__)
#define cr_expect_null(p, ...)       MINICRIT_CHECK_(expect, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_expect_not_null(p, ...)   MINICRIT_CHECK_(expect, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...)  MINICRIT_STR_(expect, true, #a " == " #b, a, b, __VA_ARGS__)
#define cr_expect_str_neq(a, b, ...) MINICRIT_STR_(expect, false, #a " != " #b, a, b, __VA_ARGS__)
#define cr_expect_arr_eq(a, b, size, ...)                                                          \
    MINICRIT_ARR_(expect, true, #a " == " #b " (" #size " bytes)", a, b, size, __VA_ARGS__)
#define cr_expect_arr_neq(a, b, size, ...)                                                         \
    MINICRIT_ARR_(expect, false, #a " != " #b " (" #size " bytes)", a, b, size, __VA_ARGS__)
#define cr_expect_fail(...) MINICRIT_CHECK_(expect, 0, "cr_expect_fail", __VA_ARGS__)

#define cr_skip_test(...) minicrit_skip(__FILE__, __LINE__, " " __VA_ARGS__)

#define cr_log_info(...)  minicrit_log(0, __VA_ARGS__)
#define cr_log_warn(...)  minicrit_log(1, __VA_ARGS__)
#define cr_log_error(...) minicrit_log(2, __VA_ARGS__)

#endif /* MINICRIT_CRITERION_H */
