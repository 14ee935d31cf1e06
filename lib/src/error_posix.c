/* SPDX-License-Identifier: MIT */
/*
 * errno values as IOCP_E* codes.  The codes are Linux's errno values,
 * negated (error.h), which the static assertions below keep true: the
 * conversion is a negation, and a system whose numbers differ fails here,
 * at build time, rather than reporting the wrong error.
 */
#include "iocp/error.h"

#include <errno.h>

#include "internal.h"

#define IOCP_ERR_CHECK_(name, value, msg)                                                          \
    _Static_assert((value) == -(name), "IOCP_" #name " must equal -" #name);
IOCP_ERRNO_MAP_SYS(IOCP_ERR_CHECK_)
#undef IOCP_ERR_CHECK_

int iocp__err_from_errno(int e)
{
    if (e <= 0)
        return IOCP_EIO;
    /* EWOULDBLOCK is EAGAIN here. */
    return -e;
}
