/* SPDX-License-Identifier: MIT */
/*
 * Option and argument parsing shared by the subcommands: getopt_long with
 * iocptool's own messages, and numbers with bounds (the reason goes into
 * the message).  Addresses and ports are addr.h's.
 */
#ifndef IOCPTOOL_OPTS_H
#define IOCPTOOL_OPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The options of one subcommand's command line, read with getopt_long but
 * with getopt's own messages off: a mistake is one line,
 *   iocptool: listen: unrecognized option '--bogus'
 * followed by the pointer "Try 'iocptool listen --help'." (diag_try_help).
 *
 * A negative number that is not made of option letters ("-1", but not
 * "-4" or "-46") is an operand, not an option: `listen -1` is then a port
 * that is too small, as the user meant it.  To that end opt_init() moves
 * the options (with their values) in front of the operands, and getopt
 * sees only the options; once opt_next() returns -1, argv[optind] up to
 * argc are the operands, in the order given.  Everything after "--" is an
 * operand.
 */
struct opt_parser {
    const char *cmd;
    char **argv;
    int nargs; /* what getopt_long sees: argv[0] and the options */
    char shortopts[128];
    const struct option *longopts;
};

/* Start reading argv (argc, as main() has it after the command name). */
void opt_init(struct opt_parser *p, const char *cmd, int argc, char **argv, const char *shortopts,
              const struct option *longopts);

/* The next option as getopt_long returns it (optarg set); -1 at the end;
 * OPT_ERROR once a mistake has been said. */
#define OPT_ERROR '?'
int opt_next(struct opt_parser *p);

/*
 * opt_number(cmd, what, text, min, max, out):
 * Parse a whole decimal number within [min, max].  On error print
 * "iocptool: CMD: WHAT TEXT: too large" (or "too small", "not a number")
 * and return false.
 */
bool opt_number(const char *cmd, const char *what, const char *text, long long min, long long max,
                long long *out);

/* Seconds, possibly fractional ("0.5"), as milliseconds (0 .. 1e9 s). */
bool opt_seconds(const char *cmd, const char *what, const char *text, unsigned *ms_out);

#endif /* IOCPTOOL_OPTS_H */
