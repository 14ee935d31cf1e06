/* SPDX-License-Identifier: MIT */
/*
 * iocp_strerror() and iocp_err_name(), generated from the one list in
 * error.h, and the conversion of errno values (the Windows conversion lives
 * in error_win.c).  On Linux the IOCP_E* numbers are the negated errno values,
 * which the static assertions below keep true.
 */
#include "iocp/error.h"

#include <errno.h>

#include "internal.h"

#if defined(__linux__)
#define IOCP_ERR_CHECK_(name, value, msg)                                                          \
    _Static_assert((value) == -(name), "IOCP_" #name " must equal -" #name);
IOCP_ERRNO_MAP_SYS(IOCP_ERR_CHECK_)
#undef IOCP_ERR_CHECK_
#endif

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

int iocp__err_from_errno(int e)
{
    if (e <= 0)
        return IOCP_EIO;
#if defined(__linux__)
    /* The numbers agree on Linux; EWOULDBLOCK is EAGAIN there. */
    return -e;
#else
    switch (e) {
#define IOCP_ERR_FROM_(name, value, msg)                                                           \
    case name:                                                                                     \
        return value;
    IOCP_ERR_FROM_(EPERM, IOCP_EPERM, 0)
    IOCP_ERR_FROM_(ENOENT, IOCP_ENOENT, 0)
    IOCP_ERR_FROM_(EINTR, IOCP_EINTR, 0)
    IOCP_ERR_FROM_(EBADF, IOCP_EBADF, 0)
    IOCP_ERR_FROM_(EAGAIN, IOCP_EAGAIN, 0)
    IOCP_ERR_FROM_(ENOMEM, IOCP_ENOMEM, 0)
    IOCP_ERR_FROM_(EACCES, IOCP_EACCES, 0)
    IOCP_ERR_FROM_(EBUSY, IOCP_EBUSY, 0)
    IOCP_ERR_FROM_(EEXIST, IOCP_EEXIST, 0)
    IOCP_ERR_FROM_(EINVAL, IOCP_EINVAL, 0)
    IOCP_ERR_FROM_(ENFILE, IOCP_ENFILE, 0)
    IOCP_ERR_FROM_(EMFILE, IOCP_EMFILE, 0)
    IOCP_ERR_FROM_(ENOSPC, IOCP_ENOSPC, 0)
    IOCP_ERR_FROM_(EPIPE, IOCP_EPIPE, 0)
    IOCP_ERR_FROM_(ERANGE, IOCP_ERANGE, 0)
    IOCP_ERR_FROM_(ENAMETOOLONG, IOCP_ENAMETOOLONG, 0)
    IOCP_ERR_FROM_(ENOSYS, IOCP_ENOSYS, 0)
#undef IOCP_ERR_FROM_
    default:
        return IOCP_EIO;
    }
#endif
}
