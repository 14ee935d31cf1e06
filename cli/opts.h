/* SPDX-License-Identifier: MIT */
/*
 * Option and argument parsing shared by the subcommands: numbers with
 * bounds (the reason goes into the message), ports, and [ADDR:]PORT.
 */
#ifndef IOCPTOOL_OPTS_H
#define IOCPTOOL_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * opt_number(cmd, what, text, min, max, out):
 * Parse a whole decimal number within [min, max].  On error print
 * "iocptool: CMD: WHAT TEXT: too large" (or "too small", "not a number")
 * and return false.
 */
bool opt_number(const char *cmd, const char *what, const char *text, long long min, long long max,
                long long *out);

/* A port number 0..65535 (0 only when allow_zero). */
bool opt_port(const char *cmd, const char *text, bool allow_zero, uint16_t *out);

/* Seconds, possibly fractional ("0.5"), as milliseconds (0 .. 1e9 s). */
bool opt_seconds(const char *cmd, const char *what, const char *text, unsigned *ms_out);

/*
 * opt_hostport(cmd, text, host, hostlen, port):
 * Split "[ADDR:]PORT", "[v6addr]:PORT" or "v6::addr:PORT" into host (empty
 * when absent) and port.
 */
bool opt_hostport(const char *cmd, const char *text, char *host, size_t hostlen, uint16_t *port);

#endif /* IOCPTOOL_OPTS_H */
