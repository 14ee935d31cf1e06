/* SPDX-License-Identifier: MIT */
/*
 * The manual page and the built iocptool agree: the subcommands that
 * `iocptool --help` lists are the ".Ss iocptool NAME" subsections of the
 * page's DESCRIPTION, and for each subcommand the options of its --help
 * are the options its subsection describes.
 *
 * From --help, an option line is one whose first non-blank character is a
 * dash, indented by at most 8 columns (continuation lines are indented
 * further): "-k, --keep-open", "--broker", "-l".  From the page, every
 * ".Fl" in the subsection (and in the subcommand's SYNOPSIS lines) is an
 * option the page mentions, and those on ".It" lines are the ones it
 * describes.  Every --help option must be described; every option the
 * page mentions must be in --help.  A subcommand that is not in this build
 * (its --help says "not available") cannot be compared; that is logged.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"

#ifndef IOCPTOOL_MANPAGE
#error "IOCPTOOL_MANPAGE must name man/iocptool.1"
#endif

TestSuite(cli_manual, .fini = proc_cleanup_all, .timeout = 60);

#define MAX_CMDS 32
#define MAX_OPTS 128
#define NAME_LEN 64

struct optset {
    char name[MAX_OPTS][NAME_LEN];
    int n;
};

static void optset_add(struct optset *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->name[i], name))
            return;
    cr_assert_lt(s->n, MAX_OPTS, "too many options");
    snprintf(s->name[s->n++], NAME_LEN, "%s", name);
}

static bool optset_has(const struct optset *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->name[i], name))
            return true;
    return false;
}

/* ---- the differences found, all reported together ---- */

static char diffs[16384];
static size_t diffs_len;
static int ndiffs;

static void diff(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void diff(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(diffs + diffs_len, sizeof diffs - diffs_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        diffs_len = diffs_len + (size_t)n < sizeof diffs ? diffs_len + (size_t)n : sizeof diffs - 1;
    if (diffs_len + 1 < sizeof diffs)
        diffs[diffs_len++] = '\n';
    diffs[diffs_len] = '\0';
    ndiffs++;
}

static void reset_diffs(void)
{
    diffs_len = 0;
    diffs[0] = '\0';
    ndiffs = 0;
}

static void report_diffs(void)
{
    if (!ndiffs)
        return;
    /* The whole list on stderr too: a harness may shorten the message. */
    fprintf(stderr, "%d difference(s) between --help and %s:\n%s", ndiffs, IOCPTOOL_MANPAGE, diffs);
    cr_assert_fail("%d difference(s) between --help and %s:\n%s", ndiffs, IOCPTOOL_MANPAGE, diffs);
}

/* ---- running iocptool ---- */

/* Run iocptool with up to two arguments; stdout into out, the status back. */
static int run_tool(const char *a1, const char *a2, char *out, size_t outlen, char *err,
                    size_t errlen)
{
    struct proc p;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(devnull, 0);
    cr_assert(proc_start(&p, devnull, (char *)a1, (char *)a2, NULL));
    close(devnull);
    size_t n = tn_read_full(p.out, out, outlen - 1, 10000);
    out[n] = '\0';
    int status = proc_wait(&p, 10000);
    cr_assert_geq(status, 0, "iocptool %s %s did not exit", a1, a2 ? a2 : "");
    snprintf(err, errlen, "%s", p.errbuf);
    return status;
}

/* The subcommands of `iocptool --help`: the lines after "commands:". */
static int help_commands(char names[][NAME_LEN])
{
    static char out[65536];
    char err[8192];
    cr_assert_eq(run_tool("--help", NULL, out, sizeof out, err, sizeof err), 0, "stderr: %s", err);
    char *list = strstr(out, "\ncommands:\n");
    cr_assert_not_null(list, "no \"commands:\" in iocptool --help:\n%s", out);
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(list + 11, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] != ' ')
            break;
        char name[NAME_LEN];
        if (sscanf(line, " %63s", name) == 1) {
            cr_assert_lt(n, MAX_CMDS);
            snprintf(names[n++], NAME_LEN, "%s", name);
        }
    }
    cr_assert_gt(n, 0, "no subcommand listed by iocptool --help:\n%s", out);
    return n;
}

/* A token of an option column: "-k," "--keep-open" "-p," ... */
static bool option_token(char *tok, bool *more)
{
    size_t len = strlen(tok);
    *more = len > 0 && tok[len - 1] == ',';
    if (*more)
        tok[--len] = '\0';
    if (len < 2 || tok[0] != '-')
        return false;
    const char *name = tok[1] == '-' ? tok + 2 : tok + 1;
    if (!*name || (tok[1] != '-' && len != 2))
        return false;
    for (const char *c = name; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-')
            return false;
    return true;
}

/* Parse the option column of a --help text into set. */
static void parse_help(const char *text, struct optset *set)
{
    char *copy = strdup(text);
    cr_assert_not_null(copy);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t indent = strspn(line, " ");
        if (indent == 0 || indent > 8 || line[indent] != '-')
            continue;
        char *tsave = NULL;
        for (char *tok = strtok_r(line + indent, " \t", &tsave); tok;
             tok = strtok_r(NULL, " \t", &tsave)) {
            bool more;
            if (!option_token(tok, &more))
                break;
            optset_add(set, tok);
            if (!more)
                break;
        }
    }
    free(copy);
}

/* ---- reading the manual ---- */

struct man_cmd {
    char name[NAME_LEN];
    struct optset mentioned; /* every .Fl of its subsection and synopsis */
    struct optset described; /* .Fl on the .It lines of its subsection */
    bool has_subsection;
};

struct manual {
    struct man_cmd cmd[MAX_CMDS];
    int n;
};

static struct man_cmd *man_cmd(struct manual *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->cmd[i].name, name))
            return &m->cmd[i];
    cr_assert_lt(m->n, MAX_CMDS);
    struct man_cmd *c = &m->cmd[m->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, NAME_LEN, "%s", name);
    return c;
}

/* Split a macro line into tokens: blanks separate, "quoted strings" stay
 * whole, and the zero-width escape \& is dropped. */
static int tokenize(char *line, char *tok[], int max)
{
    int n = 0;
    char *p = line;
    while (*p && n < max) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        char *start = p, *w = p;
        if (*p == '"') {
            start = w = ++p;
            while (*p && *p != '"')
                *w++ = *p++;
            if (*p)
                p++;
        } else {
            while (*p && *p != ' ' && *p != '\t') {
                if (p[0] == '\\' && p[1] == '&') {
                    p += 2;
                    continue;
                }
                *w++ = *p++;
            }
            if (*p)
                p++;
        }
        *w = '\0';
        tok[n++] = start;
    }
    return n;
}

/* An mdoc macro name ("Ar", "Ta", "Ns", "Brc") ends the arguments of Fl. */
static bool is_macro(const char *t)
{
    size_t len = strlen(t);
    if (len < 2 || len > 3 || !isupper((unsigned char)t[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!islower((unsigned char)t[i]))
            return false;
    return true;
}

/* A delimiter (",", "|", ".", ")") ends them too. */
static bool is_delimiter(const char *t)
{
    return *t && strspn(t, "()[],.;:?!|") == strlen(t);
}

/* The options of every Fl on a macro line: ".Fl k" is -k, ".Fl -name" is
 * --name, ".Fl 46" is -4 and -6, ".Fl a b" is -a and -b.  The line is
 * split in place. */
static void line_flags(char *line, struct optset *set)
{
    char *tok[64];
    int n = tokenize(line, tok, 64);
    for (int i = 0; i < n; i++) {
        if (strcmp(tok[i], "Fl") != 0)
            continue;
        for (int k = i + 1; k < n && !is_macro(tok[k]) && !is_delimiter(tok[k]); k++) {
            char name[NAME_LEN];
            if (tok[k][0] == '-') {
                if (tok[k][1]) {
                    snprintf(name, sizeof name, "-%s", tok[k]);
                    optset_add(set, name);
                }
                continue;
            }
            for (const char *c = tok[k]; *c; c++) {
                snprintf(name, sizeof name, "-%c", *c);
                optset_add(set, name);
            }
        }
    }
}

static void read_manual(struct manual *m)
{
    FILE *f = fopen(IOCPTOOL_MANPAGE, "r");
    cr_assert_not_null(f, "cannot open %s", IOCPTOOL_MANPAGE);
    char section[64] = "";
    struct man_cmd *cur = NULL;     /* the subcommand whose lines these are */
    bool synopsis_wants_cm = false; /* after .Nm in SYNOPSIS: the next .Cm names it */
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] != '.' || !strncmp(line, ".\\\"", 3))
            continue;
        if (!strncmp(line, ".Sh ", 4)) {
            snprintf(section, sizeof section, "%.63s", line + 4);
            cur = NULL;
            synopsis_wants_cm = false;
            continue;
        }
        if (!strcmp(section, "SYNOPSIS")) {
            if (!strcmp(line, ".Nm") || !strncmp(line, ".Nm ", 4)) {
                cur = NULL;
                synopsis_wants_cm = true;
            } else if (synopsis_wants_cm && !strncmp(line, ".Cm ", 4)) {
                char name[NAME_LEN];
                if (sscanf(line + 4, "%63s", name) == 1)
                    cur = man_cmd(m, name);
                synopsis_wants_cm = false;
            }
        } else if (!strcmp(section, "DESCRIPTION") && !strncmp(line, ".Ss ", 4)) {
            char name[NAME_LEN], extra[NAME_LEN];
            cur = NULL;
            if (sscanf(line + 4, "iocptool %63s %63s", name, extra) == 1) {
                cur = man_cmd(m, name);
                cr_assert_not(cur->has_subsection, "two subsections for %s", name);
                cur->has_subsection = true;
            }
            continue;
        } else if (strcmp(section, "DESCRIPTION") != 0) {
            continue;
        }
        if (!cur)
            continue;
        bool item = !strncmp(line, ".It ", 4);
        char copy[sizeof line];
        memcpy(copy, line, sizeof line);
        line_flags(line, &cur->mentioned);
        if (item)
            line_flags(copy, &cur->described);
    }
    fclose(f);
}

/* ---- the tests ---- */

Test(cli_manual, the_subcommands_of_help_are_the_subsections_of_the_page)
{
    reset_diffs();
    char names[MAX_CMDS][NAME_LEN];
    int n = help_commands(names);
    static struct manual m;
    read_manual(&m);
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (int k = 0; k < m.n; k++)
            found |= !strcmp(m.cmd[k].name, names[i]) && m.cmd[k].has_subsection;
        if (!found)
            diff("%s: listed by iocptool --help, but the page has no \".Ss iocptool %s\"", names[i],
                 names[i]);
    }
    for (int k = 0; k < m.n; k++) {
        bool found = false;
        for (int i = 0; i < n; i++)
            found |= !strcmp(m.cmd[k].name, names[i]);
        if (!found)
            diff("%s: in the page (%s), but not listed by iocptool --help", m.cmd[k].name,
                 m.cmd[k].has_subsection ? "a subsection" : "SYNOPSIS");
    }
    report_diffs();
}

Test(cli_manual, every_option_of_help_is_in_the_page_and_the_other_way_round)
{
    reset_diffs();
    char names[MAX_CMDS][NAME_LEN];
    int n = help_commands(names);
    static struct manual m;
    read_manual(&m);
    static char out[65536];
    char err[8192];
    int compared = 0;
    for (int i = 0; i < n; i++) {
        int status = run_tool(names[i], "--help", out, sizeof out, err, sizeof err);
        if (status != 0 && strstr(err, "not available")) {
            cr_log_warn("%s: not in this build (%s): its options are not compared", names[i], err);
            continue;
        }
        if (status != 0) {
            err[strcspn(err, "\n")] = '\0';
            diff("%s: iocptool %s --help exits %d: %s", names[i], names[i], status, err);
            continue;
        }
        struct optset help = {.n = 0};
        parse_help(out, &help);
        if (help.n == 0) {
            diff("%s: no option found in its --help:\n%s", names[i], out);
            continue;
        }
        compared++;
        struct man_cmd *c = NULL;
        for (int k = 0; k < m.n; k++)
            if (!strcmp(m.cmd[k].name, names[i]))
                c = &m.cmd[k];
        if (!c || !c->has_subsection)
            continue; /* reported by the test above */
        for (int o = 0; o < help.n; o++)
            if (!optset_has(&c->described, help.name[o]))
                diff("%s: %s is in --help, but no \".It\" of \".Ss iocptool %s\" describes it",
                     names[i], help.name[o], names[i]);
        for (int o = 0; o < c->mentioned.n; o++)
            if (!optset_has(&help, c->mentioned.name[o]))
                diff("%s: %s is in the page, but not in --help", names[i], c->mentioned.name[o]);
    }
    cr_expect_gt(compared, 0, "no subcommand could be compared");
    report_diffs();
}

/* The parsers themselves, on known input. */
Test(cli_manual, the_parsers_read_help_columns_and_fl_macros)
{
    struct optset h = {.n = 0};
    parse_help("usage: iocptool x [options]\n"
               "Without -k the tool ends.\n"
               "  -k, --keep-open        serve many\n"
               "                         -z in a continuation line is no option\n"
               "      --broker           relay (-vv: more)\n"
               "  -p, --source-port PORT connect from this port\n"
               "  -l                     accepted\n",
               &h);
    cr_expect_eq(h.n, 6, "found %d", h.n);
    const char *want[] = {"-k", "--keep-open", "--broker", "-p", "--source-port", "-l"};
    for (int i = 0; i < 6; i++)
        cr_expect(optset_has(&h, want[i]), "%s", want[i]);

    struct optset f = {.n = 0};
    char l1[] = ".It Fl k , Fl -keep-open";
    char l2[] = ".Op Fl 46 Ar x";
    char l3[] = ".Pq Fl vv : No more still .";
    char l4[] = ".It Fl q Ar S Ta \"\" Ta as without Fl \\&-no-shutdown";
    line_flags(l1, &f);
    line_flags(l2, &f);
    line_flags(l3, &f);
    line_flags(l4, &f);
    const char *fl[] = {"-k", "--keep-open", "-4", "-6", "-v", "-q", "--no-shutdown"};
    cr_expect_eq(f.n, 7, "found %d", f.n);
    for (int i = 0; i < 7; i++)
        cr_expect(optset_has(&f, fl[i]), "%s", fl[i]);
}
