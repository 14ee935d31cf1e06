/* SPDX-License-Identifier: MIT */
/*
 * opts.h: getopt_long with one-line messages, and bounded number parsing in
 * the spirit of OpenBSD's strtonum.
 */
#include "opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

bool opt_number(const char *cmd, const char *what, const char *text, long long min, long long max,
                long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end) {
        diag_error("%s: %s %s: not a number", cmd, what, text);
        return false;
    }
    if ((errno == ERANGE && v > 0) || v > max) {
        diag_error("%s: %s %s: too large (at most %lld)", cmd, what, text, max);
        return false;
    }
    if ((errno == ERANGE && v < 0) || v < min) {
        diag_error("%s: %s %s: too small (at least %lld)", cmd, what, text, min);
        return false;
    }
    *out = v;
    return true;
}

bool opt_seconds(const char *cmd, const char *what, const char *text, unsigned *ms_out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || v != v) {
        diag_error("%s: %s %s: not a number of seconds", cmd, what, text);
        return false;
    }
    if (v < 0) {
        diag_error("%s: %s %s: must not be negative", cmd, what, text);
        return false;
    }
    if (v > 1e6) {
        diag_error("%s: %s %s: too large (at most 1000000 seconds)", cmd, what, text);
        return false;
    }
    *ms_out = (unsigned)(v * 1000.0 + 0.5);
    return true;
}

/* ---- the option parser ---- */

/* The long option NAME (len bytes, the text before any '='): an exact
 * match, else the one option it abbreviates; NULL if none, and *matches
 * then says how many options it abbreviates (more than one: ambiguous). */
static const struct option *find_long(const struct option *longopts, const char *name, size_t len,
                                      int *matches)
{
    const struct option *found = NULL;
    *matches = 0;
    for (const struct option *o = longopts; o->name; o++) {
        if (strncmp(o->name, name, len) != 0)
            continue;
        if (strlen(o->name) == len) {
            *matches = 1;
            return o;
        }
        found = o;
        ++*matches;
    }
    return *matches == 1 ? found : NULL;
}

/* What follows short option letter c in the getopt string: NULL if it is
 * no option, else the rest of the string (':' when it takes a value). */
static const char *find_short(const char *shortopts, char c)
{
    if (c == ':' || c == '\0')
        return NULL;
    const char *at = strchr(shortopts, c);
    return at ? at + 1 : NULL;
}

/* "-1", "-5-10", but not "-4", "-46" (option letters) or "-4x". */
static bool is_negative_number(const char *shortopts, const char *arg)
{
    if (arg[0] != '-' || arg[1] < '0' || arg[1] > '9')
        return false;
    bool digits = true, letters = true;
    for (const char *c = arg + 1; *c; c++) {
        digits = digits && *c >= '0' && *c <= '9';
        letters = letters && find_short(shortopts, *c);
    }
    return (digits && !letters) || !find_short(shortopts, arg[1]);
}

/* Whether the option argument arg takes the next argument as its value
 * ("-p 80", "--port 80", "-kp 80"; not "--port=80" or "-p80"). */
static bool takes_next(const struct opt_parser *p, const char *arg)
{
    if (arg[1] == '-') {
        const char *name = arg + 2;
        if (strchr(name, '='))
            return false;
        int matches;
        const struct option *o = find_long(p->longopts, name, strlen(name), &matches);
        return o && o->has_arg == required_argument;
    }
    for (const char *c = arg + 1; *c; c++) {
        const char *after = find_short(p->shortopts + 1, *c);
        if (!after)
            return false;
        if (after[0] == ':')
            return after[1] != ':' && c[1] == '\0';
    }
    return false;
}

void opt_init(struct opt_parser *p, const char *cmd, int argc, char **argv, const char *shortopts,
              const struct option *longopts)
{
    p->cmd = cmd;
    p->argv = argv;
    p->nargs = argc;
    p->longopts = longopts;
    /* A leading ':' makes getopt tell a missing value (':') from an
     * unknown option ('?'). */
    snprintf(p->shortopts, sizeof p->shortopts, ":%s", shortopts);
    opterr = 0;
    optind = 1;

    /* Options and their values to the front, operands after them in their
     * order; getopt_long then sees the options only. */
    char **operands = malloc((size_t)argc * sizeof *operands);
    if (!operands)
        return; /* getopt permutes as usual; only "-1" stays an option */
    int nopt = 1, nops = 0;
    bool rest = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (rest || a[0] != '-' || a[1] == '\0' || is_negative_number(p->shortopts + 1, a)) {
            operands[nops++] = argv[i];
            continue;
        }
        /* nopt <= i: only places already read are written. */
        argv[nopt++] = argv[i];
        if (!strcmp(a, "--"))
            rest = true; /* getopt reads it as the end of the options */
        else if (takes_next(p, a) && i + 1 < argc)
            argv[nopt++] = argv[++i];
    }
    memcpy(argv + nopt, operands, (size_t)nops * sizeof *operands);
    free(operands);
    p->nargs = nopt;
}

/* Say what getopt_long found wrong: ret is its answer (':' a value is
 * missing, '?' anything else), optopt the option letter or value. */
static void say_option_error(const struct opt_parser *p, int ret)
{
    const char *arg = optind >= 2 && optind - 1 < p->nargs ? p->argv[optind - 1] : "";
    size_t len = strcspn(arg, "=");
    int matches = 0;
    const struct option *o =
        arg[0] == '-' && arg[1] == '-' ? find_long(p->longopts, arg + 2, len - 2, &matches) : NULL;
    /* A long option is at fault when getopt names no letter (unknown,
     * ambiguous) or the letter of the option just read. */
    if (arg[0] == '-' && arg[1] == '-' && (optopt == 0 || (o && o->val == optopt))) {
        if (o && arg[len] == '=')
            diag_error("%s: option '--%s' takes no value", p->cmd, o->name);
        else if (o)
            diag_error("%s: option '--%s' needs a value", p->cmd, o->name);
        else if (matches > 1) {
            char list[256] = "";
            size_t n = 0;
            for (const struct option *c = p->longopts; c->name && n < sizeof list; c++)
                if (!strncmp(c->name, arg + 2, len - 2))
                    n += (size_t)snprintf(list + n, sizeof list - n, "%s--%s", n ? ", " : "",
                                          c->name);
            diag_error("%s: option '%.*s' is ambiguous: %s", p->cmd, (int)len, arg, list);
        } else {
            diag_error("%s: unrecognized option '%.*s'", p->cmd, (int)len, arg);
        }
        return;
    }
    if (ret == ':') {
        const struct option *l = NULL;
        for (const struct option *c = p->longopts; c->name && !l; c++)
            if (!c->flag && c->val == optopt)
                l = c;
        if (l)
            diag_error("%s: option '-%c' (--%s) needs a value", p->cmd, optopt, l->name);
        else
            diag_error("%s: option '-%c' needs a value", p->cmd, optopt);
        return;
    }
    if (optopt > ' ' && optopt < 127)
        diag_error("%s: unrecognized option '-%c'", p->cmd, optopt);
    else
        diag_error("%s: unrecognized option '%s'", p->cmd, arg);
}

int opt_next(struct opt_parser *p)
{
    optopt = 0;
    int opt = getopt_long(p->nargs, p->argv, p->shortopts, p->longopts, NULL);
    if (opt != '?' && opt != ':')
        return opt;
    say_option_error(p, opt);
    diag_try_help(p->cmd);
    return OPT_ERROR;
}
