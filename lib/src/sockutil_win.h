/* SPDX-License-Identifier: MIT */
/*
 * Winsock helpers that only the Windows files need: start-up, the extension
 * functions (AcceptEx, GetAcceptExSockaddrs, ConnectEx, DisconnectEx), and
 * whether the process runs under Wine.
 */
#ifndef IOCP_SOCKUTIL_WIN_H
#define IOCP_SOCKUTIL_WIN_H

#include <stdbool.h>

#include <winsock2.h>
#include <mswsock.h>
#include <windows.h>

#include "internal.h"

/* The Microsoft extensions to Winsock, as one provider hands them out. */
struct iocp_wsx {
    LPFN_ACCEPTEX accept_ex;
    LPFN_GETACCEPTEXSOCKADDRS get_accept_ex_sockaddrs;
    LPFN_CONNECTEX connect_ex;
    LPFN_DISCONNECTEX disconnect_ex;
};

/* WSAStartup once per process; 0 or the error. */
int iocp__winsock_init(void);

/*
 * iocp__wsx_get(sock, family, out):
 * The extension functions for family, loaded through sock itself (the
 * listening or connecting socket: no temporary socket exists, so none can
 * leak, seed 3) the first time and cached per family after that.  0, or the
 * error of WSAIoctl (nothing is cached then).
 */
int iocp__wsx_get(iocp_socket_t sock, int family, const struct iocp_wsx **out);

/* Forget the cached functions (tests). */
void iocp__wsx_reset(void);

/* True under Wine (ntdll exports wine_get_version there). */
bool iocp__running_on_wine(void);

struct iocp_port;
/* Whether an IOCP port reuses sockets (DisconnectEx with TF_REUSE_SOCKET):
 * on by default, off under Wine or with IOCP_SOCKET_REUSE=0 (port_iocp.c). */
bool iocp__port_iocp_reuses(const struct iocp_port *port);

#endif /* IOCP_SOCKUTIL_WIN_H */
