/* SPDX-License-Identifier: MIT */
/*
 * diag.h: stderr messages with the program's name in front.
 */
#include "diag.h"

#include <stdio.h>
#include <string.h>

#include "iocp.h"

int diag_verbosity;

static void vsay(const char *fmt, va_list ap)
{
    /* One fprintf per line, so lines from several threads never interleave. */
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "iocptool: %s\n", line);
}

void diag_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
}

void diag_info(int level, const char *fmt, ...)
{
    if (diag_verbosity < level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
}

void diag_lib_log(void *arg, int level, const char *message)
{
    (void)arg;
    int need = level <= IOCP_LOG_WARN ? 0 : level == IOCP_LOG_INFO ? 1 : 2;
    diag_info(need, "%s", message);
}

void diag_try_help(const char *cmd)
{
    if (cmd)
        fprintf(stderr, "Try 'iocptool %s --help'.\n", cmd);
    else
        fprintf(stderr, "Try 'iocptool --help'.\n");
}

const char *diag_strerror(int code)
{
    if (strcmp(iocp_err_name(code), "UNKNOWN") != 0 || code >= 0)
        return iocp_strerror(code);
    /* The library mirrors errno values (IOCP_E* == -errno on Linux), so
     * the system can name the ones it does not list. */
    static _Thread_local char words[128];
    snprintf(words, sizeof words, "%s", strerror(-code));
    if (words[0] >= 'A' && words[0] <= 'Z' && (words[1] < 'A' || words[1] > 'Z'))
        words[0] = (char)(words[0] - 'A' + 'a');
    return words;
}

void diag_listen_error(const char *cmd, const char *host, unsigned port, int code)
{
    const char *detail = iocp_error_detail();
    if (*detail) {
        diag_error("%s: %s: %s", cmd, detail, diag_strerror(code));
        return;
    }
    if (!host || !*host)
        diag_error("%s: *:%u: %s", cmd, port, diag_strerror(code));
    else if (strchr(host, ':'))
        diag_error("%s: [%s]:%u: %s", cmd, host, port, diag_strerror(code));
    else
        diag_error("%s: %s:%u: %s", cmd, host, port, diag_strerror(code));
}
