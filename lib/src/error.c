/* SPDX-License-Identifier: MIT */
/*
 * iocp_strerror() and iocp_err_name(), generated from the one list in
 * error.h, and the detail text of the last failed call on this thread.  The
 * conversion of the system's own codes is per platform: error_posix.c
 * (errno) and error_win.c (errno, WSA and Win32 codes).
 */
#include "iocp/error.h"
#include "iocp/engine.h" /* iocp_error_detail() */

#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

const char *iocp_strerror(int err)
{
    if (err > 0)
        err = -err;
    switch (err) {
#define IOCP_ERR_MSG_(name, value, msg)                                                            \
    case (value):                                                                                  \
        return msg;
        IOCP_ERRNO_MAP(IOCP_ERR_MSG_)
#undef IOCP_ERR_MSG_
    case 0:
        return "success";
    default:
        return "unknown error";
    }
}

const char *iocp_err_name(int err)
{
    if (err > 0)
        err = -err;
    switch (err) {
#define IOCP_ERR_NAME_(name, value, msg)                                                           \
    case (value):                                                                                  \
        return #name;
        IOCP_ERRNO_MAP(IOCP_ERR_NAME_)
#undef IOCP_ERR_NAME_
    case 0:
        return "OK";
    default:
        return "UNKNOWN";
    }
}

static IOCP_THREAD_LOCAL char error_detail[160];

void iocp__set_error_detail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_detail, sizeof error_detail, fmt, ap);
    va_end(ap);
}

const char *iocp_error_detail(void)
{
    return error_detail;
}
