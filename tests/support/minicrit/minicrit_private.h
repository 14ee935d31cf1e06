/* SPDX-License-Identifier: MIT */
/*
 * What minicrit.c shares with the runner of each platform: minicrit_posix.c
 * runs each test in a child process, minicrit_win.c runs them in-process.
 */
#ifndef MINICRIT_PRIVATE_H
#define MINICRIT_PRIVATE_H

#include "criterion/criterion.h"

enum minicrit_verdict {
    MINICRIT_NONE, /* the test has not finished (yet) */
    MINICRIT_PASS,
    MINICRIT_FAIL,
    MINICRIT_SKIP,
};

/* Set up the platform's runner once, before the first test. */
void minicrit__platform_init(void);

/*
 * Run one test (suite may be NULL) with a timeout in seconds (0: none),
 * isolated as well as the platform allows; print any failure the test
 * itself could not, and return its verdict.
 */
enum minicrit_verdict minicrit__run_isolated(const struct minicrit_test *t,
                                             const struct minicrit_suite *suite, double timeout);

/* Run init, the test and fini on the calling thread, which becomes the test's. */
enum minicrit_verdict minicrit__run_body(const struct minicrit_test *t,
                                         const struct minicrit_suite *suite);

/* Mark the calling thread as the test's; ask whether the caller is that thread. */
void minicrit__mark_test_thread(void);
bool minicrit__on_test_thread(void);

/* A fatal check failed on a thread the harness does not own: end the test. */
_Noreturn void minicrit__stop_from_other_thread(void);

/* Print "[tag] suite::name: file:line: message" on one line and flush. */
void minicrit__line(const char *tag, const struct minicrit_test *t, const char *file, int line,
                    const char *fmt, ...) MINICRIT_PRINTF_(5, 6);

/*
 * The run cannot go on (a hang or a crash in-process): count t as failed,
 * print why, how many tests were not run and the closing line.  The caller
 * then ends the process.
 */
void minicrit__abandon(const struct minicrit_test *t, const char *fmt, ...) MINICRIT_PRINTF_(2, 3);

/* The test being run, or NULL. */
const struct minicrit_test *minicrit__current(void);

#endif /* MINICRIT_PRIVATE_H */
