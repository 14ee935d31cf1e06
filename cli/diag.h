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

/* After a usage error: "Try 'iocptool CMD --help'." (cmd NULL: the
 * program's own --help), so that the error stays the line to read. */
void diag_try_help(const char *cmd);

/* iocp_strerror(code), or the system's words for an errno value that the
 * library has no name for ("is a directory" rather than "unknown error"). */
const char *diag_strerror(int code);

/*
 * diag_listen_error(cmd, host, port, code):
 * A server could not listen: "iocptool: CMD: ADDR:PORT: why", naming the
 * address ("*:PORT" for every address), or the library's detail when it
 * has one (a name that did not resolve).
 */
void diag_listen_error(const char *cmd, const char *host, unsigned port, int code);

/* A log hook for libiocp that prints at -v (info) and -vv (debug). */
void diag_lib_log(void *arg, int level, const char *message);

#endif /* IOCPTOOL_DIAG_H */
