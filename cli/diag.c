/* SPDX-License-Identifier: MIT */
/*
 * diag.h: stderr messages with the program's name in front.
 */
#include "diag.h"

#include <stdio.h>

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
