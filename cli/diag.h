/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics: everything iocptool says goes to stderr as
 * "iocptool: <what>: <why>", so that stdout carries exactly the data.
 */
#ifndef IOCPTOOL_DIAG_H
#define IOCPTOOL_DIAG_H

#include <stdarg.h>

/* Exit statuses, documented in the manual. */
#define EXIT_OK 0
#define EXIT_RUNTIME 1 /* network or runtime error */
#define EXIT_USAGE 2   /* bad option or argument */

/* How talkative: 0 errors only, 1 (-v) progress, 2 (-vv) detail. */
extern int diag_verbosity;

/* Formats are C99's everywhere: mingw-w64 builds use its own stdio
 * (__USE_MINGW_ANSI_STDIO), which knows %zu and %llu. */
#if defined(__MINGW32__)
#define DIAG_PRINTF(f, a) __attribute__((format(gnu_printf, f, a)))
#else
#define DIAG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#endif

/* "iocptool: fmt" on stderr, always. */
void diag_error(const char *fmt, ...) DIAG_PRINTF(1, 2);
/* The same, only when diag_verbosity >= level. */
void diag_info(int level, const char *fmt, ...) DIAG_PRINTF(2, 3);

/* A log hook for libiocp that prints at -v (info) and -vv (debug). */
void diag_lib_log(void *arg, int level, const char *message);

#endif /* IOCPTOOL_DIAG_H */
