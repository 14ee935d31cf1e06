/* SPDX-License-Identifier: MIT */
/*
 * The option tables, --help and the completion scripts agree.
 *
 * `iocptool --completions table` prints the registry of cli/cmdtable.c: the
 * subcommands, and for each the options of the getopt_long table its parser
 * uses (long name, short letter, the value's name).  Here:
 *
 *   - the subcommands of `iocptool --help` are those of the table;
 *   - each subcommand's --help lists exactly the long options of its table,
 *     each with the table's short letter and value name ("-m, --max-conns N"),
 *     and none of the options the parser knows only to refuse;
 *   - the bash script offers exactly those options per subcommand, and the
 *     PowerShell script holds exactly those records;
 *   - the PowerShell script is well formed as far as can be seen without
 *     PowerShell (Debian has no package of it): balanced brackets outside
 *     strings and comments, ASCII, the completer registered for iocptool
 *     and iocptool.exe.  tests/cli/test_completion_bash.sh runs the bash
 *     script in bash.
 *
 * Since the scripts are written from the same tables, --help, the parsers
 * and the completions cannot drift apart without this suite failing.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"

TestSuite(cli_completions, .fini = proc_cleanup_all, .timeout = 60);

#define MAX_CMDS 16
#define MAX_OPTS 256
#define NAME_LEN 64

struct table_cmd {
    char name[NAME_LEN];
    char first[NAME_LEN], next[NAME_LEN];
    char summary[256];
};

struct table_opt {
    char cmd[NAME_LEN];
    char lng[NAME_LEN];     /* "--keep-open" */
    char shrt[NAME_LEN];    /* "-k" or "-" */
    char metavar[NAME_LEN]; /* "N", "-" (no value) or "?" (unknown) */
    char kind[NAME_LEN];    /* none file host words pid */
    char words[NAME_LEN];   /* "-" unless kind is words */
};

struct table {
    struct table_cmd cmd[MAX_CMDS];
    int ncmd;
    struct table_opt opt[MAX_OPTS];
    int nopt;
    struct table_opt refused[MAX_OPTS]; /* cmd and lng only */
    int nrefused;
};

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

static void report_diffs(const char *what)
{
    if (!ndiffs)
        return;
    fprintf(stderr, "%d difference(s) between %s:\n%s", ndiffs, what, diffs);
    cr_assert_fail("%d difference(s) between %s:\n%s", ndiffs, what, diffs);
}

/* ---- running iocptool ---- */

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

/* The output of `iocptool --completions WHICH`, which must succeed quietly. */
static char *completions(const char *which)
{
    static char bufs[3][131072];
    static int next;
    char *out = bufs[next++ % 3];
    char err[8192];
    int status = run_tool("--completions", which, out, sizeof bufs[0], err, sizeof err);
    cr_assert_eq(status, 0, "iocptool --completions %s exits %d: %s", which, status, err);
    cr_assert_eq(err[0], '\0', "iocptool --completions %s says: %s", which, err);
    cr_assert_lt(strlen(out), sizeof bufs[0] - 1, "--completions %s: output cut", which);
    return out;
}

/* Split a line at tabs into at most max fields, in place. */
static int fields(char *line, char *f[], int max)
{
    int n = 0;
    while (n < max) {
        f[n++] = line;
        char *tab = strchr(line, '\t');
        if (!tab)
            break;
        *tab = '\0';
        line = tab + 1;
    }
    return n;
}

static void read_table(struct table *t)
{
    memset(t, 0, sizeof *t);
    char *text = strdup(completions("table"));
    cr_assert_not_null(text);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[8];
        int n = fields(line, f, 8);
        if (!strcmp(f[0], "command") && n == 5) {
            cr_assert_lt(t->ncmd, MAX_CMDS);
            struct table_cmd *c = &t->cmd[t->ncmd++];
            snprintf(c->name, sizeof c->name, "%s", f[1]);
            snprintf(c->first, sizeof c->first, "%s", f[2]);
            snprintf(c->next, sizeof c->next, "%s", f[3]);
            snprintf(c->summary, sizeof c->summary, "%s", f[4]);
        } else if (!strcmp(f[0], "option") && n == 7) {
            cr_assert_lt(t->nopt, MAX_OPTS);
            struct table_opt *o = &t->opt[t->nopt++];
            snprintf(o->cmd, sizeof o->cmd, "%s", f[1]);
            snprintf(o->lng, sizeof o->lng, "%s", f[2]);
            snprintf(o->shrt, sizeof o->shrt, "%s", f[3]);
            snprintf(o->metavar, sizeof o->metavar, "%s", f[4]);
            snprintf(o->kind, sizeof o->kind, "%s", f[5]);
            snprintf(o->words, sizeof o->words, "%s", f[6]);
        } else if (!strcmp(f[0], "refused") && n == 3) {
            cr_assert_lt(t->nrefused, MAX_OPTS);
            struct table_opt *o = &t->refused[t->nrefused++];
            snprintf(o->cmd, sizeof o->cmd, "%s", f[1]);
            snprintf(o->lng, sizeof o->lng, "%s", f[2]);
        } else {
            cr_assert_fail("--completions table: a line of %d fields: %s", n, f[0]);
        }
    }
    free(text);
    cr_assert_gt(t->ncmd, 0, "no subcommand in the table");
    cr_assert_gt(t->nopt, 0, "no option in the table");
}

/* ---- --help ---- */

struct help_opt {
    char shrt[NAME_LEN];    /* "-k", or "" */
    char lng[NAME_LEN];     /* "--keep-open", or "" for a short-only option */
    char metavar[NAME_LEN]; /* "N", or "" */
};

struct help {
    struct help_opt opt[MAX_OPTS];
    int n;
};

/* A value name of --help: capitals, digits and _ (FILE, N, ADDR, PORT). */
static bool is_metavar(const char *tok)
{
    if (!*tok || !isupper((unsigned char)*tok))
        return false;
    for (const char *c = tok; *c; c++)
        if (!isupper((unsigned char)*c) && !isdigit((unsigned char)*c) && *c != '_')
            return false;
    return true;
}

/* Copy the word at *p (up to a blank or the end) into buf; advance *p. */
static void take_word(const char **p, char *buf, size_t len)
{
    size_t n = strcspn(*p, " ");
    snprintf(buf, len, "%.*s", (int)n, *p);
    *p += n;
}

/*
 * The option lines of a --help text: indented by 1 to 8 columns, starting
 * with a dash (further lines of a description are indented more):
 *   "  -m, --max-conns N      ..."  "      --broker  ..."  "  -l   ..."
 * A value name follows its option after one blank; the description comes
 * after two or more ("-n, --numeric          HOST must be..."), or after
 * one when the option column is full ("-p, --source-port PORT connect...").
 */
static void parse_help(const char *text, struct help *h)
{
    memset(h, 0, sizeof *h);
    for (const char *line = text; *line; line += strcspn(line, "\n"), line += *line == '\n') {
        size_t indent = strspn(line, " ");
        if (indent == 0 || indent > 8 || line[indent] != '-')
            continue;
        char buf[512];
        snprintf(buf, sizeof buf, "%.*s", (int)strcspn(line, "\n"), line);
        const char *p = buf + indent;
        cr_assert_lt(h->n, MAX_OPTS);
        struct help_opt *o = &h->opt[h->n++];
        char word[NAME_LEN];
        take_word(&p, word, sizeof word);
        if (word[1] != '-') {
            size_t len = strlen(word);
            if (len && word[len - 1] == ',')
                word[--len] = '\0';
            /* A short option is "-x": the precision keeps GCC's truncation
             * check quiet in Debug builds. */
            snprintf(o->shrt, sizeof o->shrt, "%.*s", (int)sizeof o->shrt - 1, word);
            if (p[0] == ' ' && p[1] == '-' && p[2] == '-') {
                p++;
                take_word(&p, word, sizeof word);
            } else {
                word[0] = '\0';
            }
        }
        if (!strncmp(word, "--", 2))
            snprintf(o->lng, sizeof o->lng, "%s", word);
        if (p[0] == ' ' && p[1] != ' ') {
            p++;
            take_word(&p, word, sizeof word);
            if (is_metavar(word))
                snprintf(o->metavar, sizeof o->metavar, "%.*s", (int)sizeof o->metavar - 1,
                         word);
        }
    }
}

static const struct help_opt *help_find(const struct help *h, const char *lng)
{
    for (int i = 0; i < h->n; i++)
        if (!strcmp(h->opt[i].lng, lng))
            return &h->opt[i];
    return NULL;
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
        cr_assert_lt(n, MAX_CMDS);
        if (sscanf(line, " %63s", names[n]) == 1)
            n++;
    }
    return n;
}

/* ---- the tests ---- */

Test(cli_completions, the_subcommands_of_help_are_those_of_the_table)
{
    static struct table t;
    read_table(&t);
    char names[MAX_CMDS][NAME_LEN];
    int n = help_commands(names);
    cr_expect_eq(n, t.ncmd, "iocptool --help lists %d subcommands, the table %d", n, t.ncmd);
    for (int i = 0; i < n && i < t.ncmd; i++)
        cr_expect_str_eq(names[i], t.cmd[i].name, "subcommand %d", i);
}

Test(cli_completions, every_option_of_the_table_is_in_help_and_the_other_way_round)
{
    static struct table t;
    static struct help h;
    static char out[65536];
    char err[8192];
    read_table(&t);
    ndiffs = 0;
    diffs_len = 0;
    int compared = 0;
    for (int c = 0; c < t.ncmd; c++) {
        const char *cmd = t.cmd[c].name;
        int status = run_tool(cmd, "--help", out, sizeof out, err, sizeof err);
        if (status != 0 && strstr(err, "not available")) {
            cr_log_warn("%s: not in this build: its options are not compared", cmd);
            continue;
        }
        if (status != 0) {
            diff("%s: iocptool %s --help exits %d: %s", cmd, cmd, status, err);
            continue;
        }
        compared++;
        parse_help(out, &h);
        int in_table = 0;
        for (int i = 0; i < t.nopt; i++) {
            const struct table_opt *o = &t.opt[i];
            if (strcmp(o->cmd, cmd) != 0)
                continue;
            in_table++;
            if (!strcmp(o->metavar, "?"))
                diff("%s: %s takes a value that the table of values (cli/cmdtable.c) lacks", cmd,
                     o->lng);
            const struct help_opt *ho = help_find(&h, o->lng);
            if (!ho) {
                diff("%s: %s is in the option table, but not in --help", cmd, o->lng);
                continue;
            }
            const char *want_short = strcmp(o->shrt, "-") ? o->shrt : "";
            if (strcmp(ho->shrt, want_short) != 0)
                diff("%s: %s: --help shows the short option \"%s\", the table \"%s\"", cmd, o->lng,
                     ho->shrt, want_short);
            const char *want_metavar = strcmp(o->metavar, "-") ? o->metavar : "";
            if (strcmp(ho->metavar, want_metavar) != 0)
                diff("%s: %s: --help names its value \"%s\", the table \"%s\"", cmd, o->lng,
                     ho->metavar, want_metavar);
        }
        if (!in_table)
            diff("%s: no option in the table", cmd);
        for (int i = 0; i < h.n; i++) {
            if (!h.opt[i].lng[0])
                continue; /* a short-only option ("-l"): not in the long table */
            bool found = false;
            for (int k = 0; k < t.nopt; k++)
                found |= !strcmp(t.opt[k].cmd, cmd) && !strcmp(t.opt[k].lng, h.opt[i].lng);
            if (!found)
                diff("%s: %s is in --help, but not in the option table", cmd, h.opt[i].lng);
        }
        for (int i = 0; i < t.nrefused; i++)
            if (!strcmp(t.refused[i].cmd, cmd) && help_find(&h, t.refused[i].lng))
                diff("%s: %s is refused by the parser, but --help lists it", cmd, t.refused[i].lng);
    }
    cr_expect_gt(compared, 0, "no subcommand could be compared");
    report_diffs("the option tables and --help");
}

/* The words of the bash script's "opts='...'" line for cmd. */
static bool bash_opts(const char *script, const char *cmd, char *buf, size_t len)
{
    char key[NAME_LEN + 32];
    snprintf(key, sizeof key, "\n    %s)\n        opts='", cmd);
    const char *at = strstr(script, key);
    if (!at)
        return false;
    at += strlen(key);
    const char *end = strchr(at, '\'');
    if (!end || (size_t)(end - at) >= len - 2)
        return false;
    snprintf(buf, len, " %.*s ", (int)(end - at), at);
    return true;
}

Test(cli_completions, the_scripts_offer_exactly_the_options_of_the_table)
{
    static struct table t;
    read_table(&t);
    const char *bash = completions("bash");
    const char *ps1 = completions("powershell");
    ndiffs = 0;
    diffs_len = 0;
    for (int c = 0; c < t.ncmd; c++) {
        const char *cmd = t.cmd[c].name;
        char opts[4096];
        if (!bash_opts(bash, cmd, opts, sizeof opts)) {
            diff("bash: no opts line for %s", cmd);
            continue;
        }
        int n = 0;
        for (int i = 0; i < t.nopt; i++) {
            if (strcmp(t.opt[i].cmd, cmd) != 0)
                continue;
            n++;
            char word[NAME_LEN + 2];
            snprintf(word, sizeof word, " %s ", t.opt[i].lng);
            if (!strstr(opts, word))
                diff("bash: %s: %s is not offered", cmd, t.opt[i].lng);
        }
        int words = 0;
        for (char *s = opts; *s; s++)
            words += s[0] == ' ' && s[1] == '-';
        if (words != n)
            diff("bash: %s: %d options offered, %d in the table:%s", cmd, words, n, opts);
        for (int i = 0; i < t.nrefused; i++) {
            char word[NAME_LEN + 2];
            snprintf(word, sizeof word, " %s ", t.refused[i].lng);
            if (!strcmp(t.refused[i].cmd, cmd) && strstr(opts, word))
                diff("bash: %s: the refused %s is offered", cmd, t.refused[i].lng);
        }
    }
    /* Every record of the PowerShell script is an option of the table, and
     * every option of the table has its record. */
    int records = 0;
    for (const char *s = ps1; (s = strstr(s, "[pscustomobject]@{ Cmd = ")) != NULL; s++)
        records++;
    if (records != t.nopt)
        diff("powershell: %d option records, %d options in the table", records, t.nopt);
    for (int i = 0; i < t.nopt; i++) {
        const struct table_opt *o = &t.opt[i];
        char rec[512];
        snprintf(rec, sizeof rec,
                 "[pscustomobject]@{ Cmd = '%s'; Long = '%s'; Short = '%s'; Value = '%s'; "
                 "Complete = '%s'; Words = '%s' }\n",
                 o->cmd, o->lng, strcmp(o->shrt, "-") ? o->shrt : "",
                 strcmp(o->metavar, "-") ? o->metavar : "", o->kind,
                 strcmp(o->words, "-") ? o->words : "");
        if (!strstr(ps1, rec))
            diff("powershell: no record %s", rec);
    }
    for (int c = 0; c < t.ncmd; c++) {
        char rec[512];
        snprintf(rec, sizeof rec,
                 "[pscustomobject]@{ Name = '%s'; First = '%s'; Next = '%s'; Summary = '",
                 t.cmd[c].name, t.cmd[c].first, t.cmd[c].next);
        if (!strstr(ps1, rec))
            diff("powershell: no record for the subcommand %s", t.cmd[c].name);
    }
    report_diffs("the option tables and the completion scripts");
}

Test(cli_completions, what_the_values_complete_to)
{
    static struct table t;
    read_table(&t);
    const char *kinds[] = {"none", "file", "host", "words", "pid"};
    bool key = false, backend = false;
    for (int i = 0; i < t.nopt; i++) {
        const struct table_opt *o = &t.opt[i];
        bool known = false;
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            known |= !strcmp(o->kind, kinds[k]);
        cr_expect(known, "%s %s: kind %s", o->cmd, o->lng, o->kind);
        if (!strcmp(o->metavar, "-"))
            cr_expect_str_eq(o->kind, "none", "%s %s takes no value", o->cmd, o->lng);
        if (!strcmp(o->metavar, "FILE"))
            cr_expect_str_eq(o->kind, "file", "%s %s FILE completes file names", o->cmd, o->lng);
        if (!strcmp(o->lng, "--key")) {
            key = true;
            cr_expect_str_eq(o->kind, "file");
        }
        if (!strcmp(o->lng, "--backend")) {
            backend = true;
            cr_expect_str_eq(o->kind, "words");
            cr_expect_str_eq(o->words, "uring epoll iocp");
        }
    }
    cr_expect(key && backend, "the table has --key and --backend");
}

/* Brackets balance outside single-quoted strings and comments, and never
 * close more than they opened. */
static bool ps_balanced(const char *s, char *why, size_t len)
{
    char stack[256];
    int depth = 0, line = 1;
    for (; *s; s++) {
        if (*s == '\n') {
            line++;
        } else if (*s == '#') {
            s += strcspn(s, "\n") - 1;
        } else if (*s == '\'') {
            for (s++; *s && !(s[0] == '\'' && s[1] != '\''); s++)
                if (s[0] == '\'')
                    s++; /* '' inside a string */
                else if (s[0] == '\n')
                    line++;
            if (!*s) {
                snprintf(why, len, "a string does not end");
                return false;
            }
        } else if (strchr("({[", *s)) {
            if (depth == (int)sizeof stack) {
                snprintf(why, len, "line %d: nested too deep", line);
                return false;
            }
            stack[depth++] = *s;
        } else if (strchr(")}]", *s)) {
            char open = *s == ')' ? '(' : *s == '}' ? '{' : '[';
            if (!depth || stack[depth - 1] != open) {
                snprintf(why, len, "line %d: '%c' closes nothing it opened", line, *s);
                return false;
            }
            depth--;
        }
    }
    if (depth) {
        snprintf(why, len, "%d bracket(s) left open", depth);
        return false;
    }
    return true;
}

Test(cli_completions, the_powershell_script_is_well_formed)
{
    const char *ps1 = completions("powershell");
    for (const unsigned char *c = (const unsigned char *)ps1; *c; c++)
        cr_assert(*c == '\n' || (*c >= 0x20 && *c < 0x7f), "not plain ASCII at byte %zu",
                  (size_t)(c - (const unsigned char *)ps1));
    char why[128];
    cr_assert(ps_balanced(ps1, why, sizeof why), "%s", why);
    cr_expect(!strncmp(ps1, "# PowerShell completion for iocptool\n", 37));
    cr_expect_not_null(strstr(ps1, "\nRegister-ArgumentCompleter -Native -CommandName 'iocptool', "
                                   "'iocptool.exe' -ScriptBlock {\n"
                                   "    param($wordToComplete, $commandAst, $cursorPosition)\n"));
    cr_expect_not_null(strstr(ps1, "CompleteFilename($value)"), "file names for FILE values");
    cr_expect_not_null(strstr(ps1, "Join-Path $env:LOCALAPPDATA 'iocptool'"),
                       "stats PIDs from the endpoint directory");
    /* The script ends with the end of the script block. */
    size_t len = strlen(ps1);
    cr_expect(len > 3 && !strcmp(ps1 + len - 3, "\n}\n"), "ends with \"}\"");
    /* The parser of this test sees unbalanced text. */
    cr_expect_not(ps_balanced("{ ( }", why, sizeof why));
    cr_expect_not(ps_balanced("{ 'x", why, sizeof why));
    cr_expect(ps_balanced("{ '}'' (' # )\n }", why, sizeof why), "%s", why);
}

Test(cli_completions, an_unknown_shell_is_a_usage_error)
{
    char out[4096], err[8192];
    cr_expect_eq(run_tool("--completions", "zsh", out, sizeof out, err, sizeof err), 2);
    cr_expect_not_null(strstr(err, "iocptool: --completions: zsh"), "stderr: %s", err);
    cr_expect_eq(out[0], '\0');
    cr_expect_eq(run_tool("--completions", NULL, out, sizeof out, err, sizeof err), 2);
}

/* The parser of --help on known lines. */
Test(cli_completions, the_help_parser_reads_option_columns)
{
    static struct help h;
    parse_help("usage: iocptool x [options] HOST PORT\n"
               "Without -k the tool ends.\n"
               "  -k, --keep-open        serve many\n"
               "                         -z in a continuation line is no option\n"
               "      --broker           relay\n"
               "  -p, --source-port PORT connect from this port\n"
               "      --key FILE         encrypt\n"
               "  -l                     accepted\n"
               "  -w S                   short with a value\n"
               "  -n, --numeric          HOST must be numeric\n",
               &h);
    cr_assert_eq(h.n, 7, "found %d", h.n);
    const struct help_opt *o = help_find(&h, "--source-port");
    cr_assert_not_null(o);
    cr_expect_str_eq(o->shrt, "-p");
    cr_expect_str_eq(o->metavar, "PORT");
    o = help_find(&h, "--broker");
    cr_assert_not_null(o);
    cr_expect_str_eq(o->shrt, "");
    cr_expect_str_eq(o->metavar, "");
    o = help_find(&h, "--key");
    cr_assert_not_null(o);
    cr_expect_str_eq(o->metavar, "FILE");
    cr_expect_str_eq(h.opt[4].shrt, "-l");
    cr_expect_str_eq(h.opt[4].lng, "");
    cr_expect_str_eq(h.opt[5].metavar, "S");
    o = help_find(&h, "--numeric");
    cr_assert_not_null(o);
    cr_expect_str_eq(o->shrt, "-n");
    cr_expect_str_eq(o->metavar, "");
}
