/* SPDX-License-Identifier: MIT */
/*
 * The platform-neutral half of minicrit: the registry that Test and TestSuite
 * fill from constructors, the checks' reporting, the command line, and main(),
 * which runs the selected tests one after the other and ends with the line
 * "N passed, M failed" (", K skipped" when some were).  main() is in this
 * static library so that a test executable needs nothing of its own.
 *
 * Inside a test, a failed check prints one line and counts; a fatal one then
 * jumps back here with longjmp, so that fini still runs, as in Criterion.
 */
#if defined(__MINGW32__) && !defined(__USE_MINGW_ANSI_STDIO)
/* C99 printf (%zu, %llu) instead of msvcrt's. */
#define __USE_MINGW_ANSI_STDIO 1
#endif

#include "minicrit_private.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct minicrit_test *tests;
static struct minicrit_suite *suites;

/* Options from the command line. */
static const char *filter;
static int verbose;
static double default_timeout;

/* MINICRIT_TIMEOUT_SCALE stretches every time-out: a sanitizer build runs
 * each child several times slower, and a test's bound is there to catch a
 * hang, not to time the code. */
static double timeout_scale(void)
{
    const char *v = getenv("MINICRIT_TIMEOUT_SCALE");
    double scale = v ? atof(v) : 0;
    return scale > 0 ? scale : 1;
}

/* The run so far, for the closing line. */
static int n_passed, n_failed, n_skipped, n_left;

/*
 * The test being run on this process.  Failures may be reported from any of
 * the test's threads, hence the atomic counter; the jump target belongs to
 * the test's thread only.
 */
static const struct minicrit_test *current;
static atomic_int failures;
static volatile bool skipped;
static jmp_buf jump;

void minicrit_register_test(struct minicrit_test *t)
{
    t->next = tests;
    tests = t;
}

void minicrit_register_suite(struct minicrit_suite *s)
{
    s->next = suites;
    suites = s;
}

const struct minicrit_test *minicrit__current(void)
{
    return current;
}

/* __FILE__ may be a full path; Criterion prints the last part only. */
static const char *base_name(const char *path)
{
    const char *p, *base = path;
    for (p = path; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    return base;
}

MINICRIT_PRINTF_(5, 0)
static void vline(const char *tag, const struct minicrit_test *t, const char *file, int line,
                  const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (t && file)
        printf("[%s] %s::%s: %s:%d: %s\n", tag, t->suite, t->name, base_name(file), line, msg);
    else if (t)
        printf("[%s] %s::%s: %s\n", tag, t->suite, t->name, msg);
    else
        printf("[%s] %s\n", tag, msg);
    fflush(stdout);
}

void minicrit__line(const char *tag, const struct minicrit_test *t, const char *file, int line,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(tag, t, file, line, fmt, ap);
    va_end(ap);
}

/* The message of a check: fmt starts with the space the macros put there. */
MINICRIT_PRINTF_(3, 0)
static void format_message(char *buf, size_t size, const char *fmt, va_list ap)
{
    if (fmt[0] == ' ')
        fmt++;
    vsnprintf(buf, size, fmt, ap);
}

void minicrit_report(const char *file, int line, const char *expr, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    format_message(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&failures, 1);
    if (msg[0])
        minicrit__line("FAIL", current, file, line, "%s: %s", expr, msg);
    else
        minicrit__line("FAIL", current, file, line, "%s", expr);
}

void minicrit_report_str(const char *file, int line, const char *expr, const char *a, const char *b,
                         const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    format_message(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&failures, 1);
    minicrit__line("FAIL", current, file, line, "%s: \"%s\" vs \"%s\"%s%s", expr, a ? a : "(null)",
                   b ? b : "(null)", msg[0] ? ": " : "", msg);
}

bool minicrit_str_equal(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

_Noreturn void minicrit_abort_test(void)
{
    if (!minicrit__on_test_thread())
        minicrit__stop_from_other_thread();
    longjmp(jump, 1);
}

_Noreturn void minicrit_skip(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    format_message(msg, sizeof msg, fmt, ap);
    va_end(ap);
    (void)file; /* a skip names the test, not the line */
    (void)line;
    skipped = true;
    minicrit__line("SKIP", current, NULL, 0, "%s", msg[0] ? msg : "skipped");
    minicrit_abort_test();
}

void minicrit_log(int level, const char *fmt, ...)
{
    static const char *const tags[] = {"INFO", "WARN", "ERR "};
    va_list ap;
    if (level < 0 || level > 2)
        level = 2;
    if (level == 0 && verbose < 1)
        return;
    va_start(ap, fmt);
    vline(tags[level], current, NULL, 0, fmt, ap);
    va_end(ap);
}

enum minicrit_verdict minicrit__run_body(const struct minicrit_test *t,
                                         const struct minicrit_suite *suite)
{
    /* How far set-up got: fini runs for each init that was started. */
    static volatile int stage;

    current = t;
    atomic_store(&failures, 0);
    skipped = false;
    stage = 0;
    minicrit__mark_test_thread();

    if (setjmp(jump) == 0) {
        stage = 1;
        if (suite && suite->opts.init)
            suite->opts.init();
        stage = 2;
        if (t->opts.init)
            t->opts.init();
        t->fn();
    }
    /* setjmp() must be the whole condition of its if (C11 7.13.1.1). */
    if (stage >= 2 && t->opts.fini) {
        if (setjmp(jump) == 0)
            t->opts.fini();
    }
    if (stage >= 1 && suite && suite->opts.fini) {
        if (setjmp(jump) == 0)
            suite->opts.fini();
    }

    if (atomic_load(&failures) > 0)
        return MINICRIT_FAIL;
    return skipped ? MINICRIT_SKIP : MINICRIT_PASS;
}

static void print_closing_line(void)
{
    if (n_skipped > 0)
        printf("%d passed, %d failed, %d skipped\n", n_passed, n_failed, n_skipped);
    else
        printf("%d passed, %d failed\n", n_passed, n_failed);
    fflush(stdout);
}

void minicrit__abandon(const struct minicrit_test *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline("FAIL", t, t ? t->file : NULL, t ? t->line : 0, fmt, ap);
    va_end(ap);
    n_failed++;
    n_left--;
    if (n_left > 0)
        printf("stopping: %d test%s not run\n", n_left, n_left == 1 ? "" : "s");
    print_closing_line();
}

/*
 * Shell-style pattern match of "suite/name": *, ? and [set] (with ! or ^ to
 * negate, a-z ranges), which covers the filters Criterion users write.
 */
static bool glob_match(const char *pat, const char *s)
{
    while (*pat) {
        switch (*pat) {
        case '*':
            while (*pat == '*')
                pat++;
            if (*pat == '\0')
                return true;
            for (; *s; s++)
                if (glob_match(pat, s))
                    return true;
            return false;
        case '?':
            if (*s == '\0')
                return false;
            pat++;
            s++;
            break;
        case '[': {
            const char *p = pat + 1;
            bool negate = *p == '!' || *p == '^', hit = false;
            if (negate)
                p++;
            if (*p == '\0')
                goto literal;
            do {
                if (p[1] == '-' && p[2] && p[2] != ']') {
                    hit |= *s >= p[0] && *s <= p[2];
                    p += 3;
                } else {
                    hit |= *s == *p;
                    p++;
                }
            } while (*p && *p != ']');
            if (*p != ']') /* no closing bracket: a plain '[' */
                goto literal;
            if (*s == '\0' || hit == negate)
                return false;
            pat = p + 1;
            s++;
            break;
        }
        case '\\':
            if (pat[1])
                pat++;
            /* fall through */
        default:
literal:
            if (*pat != *s)
                return false;
            pat++;
            s++;
        }
    }
    return *s == '\0';
}

static bool selected(const struct minicrit_test *t)
{
    char full[512];
    if (filter == NULL)
        return true;
    snprintf(full, sizeof full, "%s/%s", t->suite, t->name);
    return glob_match(filter, full);
}

static const struct minicrit_suite *find_suite(const char *name)
{
    const struct minicrit_suite *s;
    for (s = suites; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

/* Suites by name, tests of a suite in the order they are written. */
static int by_suite_then_place(const void *pa, const void *pb)
{
    const struct minicrit_test *a = *(const struct minicrit_test *const *)pa;
    const struct minicrit_test *b = *(const struct minicrit_test *const *)pb;
    int c = strcmp(a->suite, b->suite);
    if (c == 0)
        c = strcmp(a->file, b->file);
    if (c == 0)
        c = (a->line > b->line) - (a->line < b->line);
    return c;
}

static void usage(FILE *out, const char *argv0)
{
    fprintf(out,
            "usage: %s [--filter PATTERN] [--list] [--verbose[=N]] [--timeout SECONDS]\n"
            "  PATTERN is matched against suite/name (*, ?, [set]).\n"
            "  Other Criterion options are accepted and ignored.\n",
            argv0);
}

/* --opt VALUE or --opt=VALUE: the value, or NULL if arg is not opt. */
static const char *option_value(const char *arg, const char *opt, int argc, char **argv, int *i)
{
    size_t n = strlen(opt);
    if (strncmp(arg, opt, n) != 0)
        return NULL;
    if (arg[n] == '=')
        return arg + n + 1;
    if (arg[n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

/* 0 to run, -1 after --help, 2 on a usage error; *list set by --list. */
static int parse_args(int argc, char **argv, bool *list)
{
    const char *v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((v = option_value(a, "--filter", argc, argv, &i)) != NULL) {
            filter = v;
        } else if ((v = option_value(a, "--timeout", argc, argv, &i)) != NULL) {
            default_timeout = atof(v);
        } else if (strcmp(a, "--verbose") == 0) {
            verbose = 1;
        } else if (strncmp(a, "--verbose=", 10) == 0) {
            verbose = atoi(a + 10);
        } else if (strcmp(a, "-l") == 0 || strcmp(a, "--list") == 0) {
            *list = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout, argv[0]);
            return -1;
        } else if (strcmp(a, "-j") == 0 || strcmp(a, "--jobs") == 0) {
            i++; /* the runner is sequential: a job count changes nothing */
        } else if (a[0] != '-') {
            fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], a);
            usage(stderr, argv[0]);
            return 2;
        }
        /* Any other option is Criterion's and ignored here. */
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct minicrit_test **all, *t;
    size_t n = 0, i;
    bool list = false;
    int rc;

    filter = getenv("CRITERION_TEST_PATTERN");
    rc = parse_args(argc, argv, &list);
    if (rc != 0)
        return rc < 0 ? 0 : rc;

    for (t = tests; t; t = t->next)
        n++;
    all = calloc(n ? n : 1, sizeof *all);
    if (all == NULL) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        return 1;
    }
    n = 0;
    for (t = tests; t; t = t->next)
        all[n++] = t;
    qsort(all, n, sizeof *all, by_suite_then_place);

    if (list) {
        for (i = 0; i < n; i++)
            if (selected(all[i]))
                printf("%s/%s\n", all[i]->suite, all[i]->name);
        free(all);
        return 0;
    }

    for (i = 0; i < n; i++)
        n_left += selected(all[i]);

    minicrit__platform_init();
    for (i = 0; i < n; i++) {
        const struct minicrit_suite *suite;
        enum minicrit_verdict v;
        double timeout;

        t = all[i];
        if (!selected(t))
            continue;
        suite = find_suite(t->suite);
        if (t->opts.disabled || (suite && suite->opts.disabled)) {
            minicrit__line("SKIP", t, NULL, 0, "disabled");
            n_skipped++;
            n_left--;
            continue;
        }
        timeout = t->opts.timeout > 0 ? t->opts.timeout : 0;
        if (timeout == 0 && suite && suite->opts.timeout > 0)
            timeout = suite->opts.timeout;
        if (timeout == 0)
            timeout = default_timeout;
        timeout *= timeout_scale();

        v = minicrit__run_isolated(t, suite, timeout);
        n_left--;
        if (v == MINICRIT_PASS) {
            n_passed++;
            if (verbose > 0)
                minicrit__line("PASS", t, NULL, 0, "passed");
        } else if (v == MINICRIT_SKIP) {
            n_skipped++;
        } else {
            n_failed++;
        }
    }
    print_closing_line();
    free(all);
    return n_failed == 0 ? 0 : 1;
}
