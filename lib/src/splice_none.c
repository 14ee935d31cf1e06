/* SPDX-License-Identifier: MIT */
/*
 * iocp_conn_splice() where the system has no splice(2) (Windows): the
 * caller is told to copy instead, and no connection ever splices, so the
 * hooks conn.c calls have nothing to do.
 */
#include "core.h"

bool iocp__splice_source(const struct iocp_conn *c)
{
    IOCP_UNUSED(c);
    return false;
}

bool iocp__splice_target(const struct iocp_conn *c)
{
    IOCP_UNUSED(c);
    return false;
}

void iocp__splice_kick(struct iocp_conn *c)
{
    IOCP_UNUSED(c);
}

void iocp__splice_teardown(struct iocp_conn *c)
{
    IOCP_UNUSED(c);
}

void iocp__splice_detach(struct iocp_conn *c)
{
    IOCP_UNUSED(c);
}

int iocp_conn_splice(struct iocp_conn *from, struct iocp_conn *to)
{
    IOCP_UNUSED(from);
    IOCP_UNUSED(to);
    return IOCP_ENOTSUP;
}
