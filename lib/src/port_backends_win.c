/* SPDX-License-Identifier: MIT */
/*
 * The backend of a Windows build: I/O completion ports.
 */
#include "port.h"

extern const struct iocp_port_ops iocp__port_iocp_ops;

const struct iocp_port_ops *const iocp__port_backends[] = {
    &iocp__port_iocp_ops,
    NULL,
};
