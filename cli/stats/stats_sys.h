/* SPDX-License-Identifier: MIT */
/*
 * What the `stats` subcommand needs from the system besides the endpoint
 * (stats_endpoint.h): whether a process still exists and what it runs, the
 * interrupt that ends --watch, and what standard output can show.
 * stats_sys_posix.c and stats_sys_win.c implement it.
 */
#ifndef IOCPTOOL_STATS_SYS_H
#define IOCPTOOL_STATS_SYS_H

#include <stdbool.h>
#include <stddef.h>

/* Whether process pid is known to be gone (not merely out of reach). */
bool stats_sys_process_gone(long pid);

/* The command line of process pid, spaces between the arguments ("" if
 * unknown). */
void stats_sys_command_of(long pid, char *buf, size_t len);

/* From now on an interrupt (SIGINT, SIGTERM; Ctrl-C, Ctrl-Break or closing
 * the console on Windows) only sets a flag that stats_sys_interrupted()
 * reports, so that --watch ends with status 0. */
void stats_sys_catch_interrupts(void);
bool stats_sys_interrupted(void);

/* Wait ms milliseconds, or less when an interrupt comes. */
void stats_sys_sleep(unsigned ms);

/* Whether standard output is a terminal (the --clients header goes there). */
bool stats_sys_stdout_terminal(void);

/* Whether standard output is a terminal that takes ANSI escape sequences,
 * so that --watch may clear it (on Windows a console, switched to
 * processing them for the rest of the run where it can be). */
bool stats_sys_stdout_ansi(void);

#endif /* IOCPTOOL_STATS_SYS_H */
