/* SPDX-License-Identifier: MIT */
/*
 * The backends of a Linux build, best first: io_uring when the build has
 * liburing (IOCP_WITH_URING), then epoll, which every Linux kernel has.
 */
#include "port.h"

extern const struct iocp_port_ops iocp__port_uring_ops;
extern const struct iocp_port_ops iocp__port_epoll_ops;

const struct iocp_port_ops *const iocp__port_backends[] = {
#if defined(IOCP_HAVE_URING)
    &iocp__port_uring_ops,
#endif
    &iocp__port_epoll_ops,
    NULL,
};
