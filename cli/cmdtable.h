/* SPDX-License-Identifier: MIT */
/*
 * The registry of subcommands: for each, the function that runs it, its
 * one-line summary, and the getopt_long table its parser uses, together
 * with what the values of options and the operands are (a FILE, a HOST, a
 * NUMBER...).  main() dispatches through it, and `iocptool --completions`
 * writes the shell completion scripts from it, so that the completions
 * offer exactly the options the parsers accept.  Each subcommand's --help
 * text is written by hand; tests/cli/test_cli_completions.c checks that it
 * lists exactly the options of the table, with the same short letters and
 * value names.
 */
#ifndef IOCPTOOL_CMDTABLE_H
#define IOCPTOOL_CMDTABLE_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* What the shells propose for an option's value or an operand. */
enum cmd_complete {
    CMD_COMPLETE_NONE,  /* nothing: a number, a time, a list, a port */
    CMD_COMPLETE_FILE,  /* file names */
    CMD_COMPLETE_HOST,  /* host names */
    CMD_COMPLETE_WORDS, /* one of a fixed list of words */
    CMD_COMPLETE_PID,   /* the process ids of running iocptool servers */
};

/* The value of an option, by long name: the same for every subcommand. */
struct cmd_value {
    const char *option;  /* long name, without the dashes */
    const char *metavar; /* its name in --help: FILE, N, S, ADDR, PORT... */
    enum cmd_complete complete;
    const char *words; /* CMD_COMPLETE_WORDS: the words, blank-separated */
};

struct cmd_entry {
    const char *name;
    int (*run)(int argc, char **argv); /* NULL: not in this build */
    const char *summary;
    /* The getopt_long table of its parser, or NULL when its source is not
     * in this build (stats on Windows). */
    const struct option *options;
    /* What its first operand and the ones after complete to. */
    enum cmd_complete first_operand, next_operands;
    /* The long options of the table that the parser knows only to refuse
     * with a pointer elsewhere (connect --keep-open: "that is for listen"),
     * blank-separated: neither --help nor the completions offer them. */
    const char *refused;
};

extern const struct cmd_entry cmd_table[];
extern const size_t cmd_table_len;

/* The entry of a subcommand, or NULL. */
const struct cmd_entry *cmd_find(const char *name);

/* What the value of the option named long_name is, or NULL if the table of
 * values does not know it (test_cli_completions fails such an option). */
const struct cmd_value *cmd_value_of(const char *long_name);

/* Whether --help lists the option o of c and the completions offer it:
 * every option of the table but the refused ones. */
bool cmd_option_listed(const struct cmd_entry *c, const struct option *o);

/* The short letter of an option ('k' for {"keep-open", ..., 'k'}), or 0 for
 * a long-only option. */
int cmd_short_of(const struct option *o);

/*
 * completions_write(out, shell):
 * `iocptool --completions SHELL`: write the completion script for "bash"
 * or "powershell", or "table": the registry itself, one tab-separated line
 * per subcommand and per option, which the tests compare with --help.
 * Returns the exit status (EXIT_USAGE for another SHELL, with a message).
 */
int completions_write(FILE *out, const char *shell);

/* The getopt_long tables of the subcommands (in their sources). */
extern const struct option listen_options[];
extern const struct option connect_options[];
extern const struct option echo_options[];
extern const struct option relay_options[];
extern const struct option stats_options[];
extern const struct option keygen_options[];

#endif /* IOCPTOOL_CMDTABLE_H */
