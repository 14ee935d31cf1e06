/* SPDX-License-Identifier: MIT */
/*
 * Outgoing TCP connections.  Name resolution runs off the workers (it can
 * block for seconds), every address of the name is tried in turn, and the
 * whole attempt is bounded by a time-out.
 */
#ifndef IOCP_CLIENT_H
#define IOCP_CLIENT_H

#include "conn.h"
#include "proxy.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct iocp_engine;

struct iocp_connect_config {
    /* Name or numeric address; or "unix:PATH" (a Unix-domain stream
     * socket; port, family and source are then ignored), or "unix:@NAME"
     * (a Linux abstract name).  Where the system has no AF_UNIX the
     * connection ends with IOCP_EAFNOSUPPORT. */
    const char *host;
    uint16_t port;      /* 1-65535; unused for "unix:" */
    int family;        /* enum iocp_family (server.h): 0 for any */
    const char *source_host; /* bind to this address first; NULL: any */
    uint16_t source_port;    /* and this port; 0: any */
    unsigned timeout_ms;     /* for the whole attempt; 0: none */
    /* Worker to run the connection on; -1: the engine picks (round robin).
     * A relay puts the outgoing leg on the worker of the incoming one. */
    int worker;
    const struct iocp_conn_handler *handler;
    void *data;
    size_t send_low, send_high; /* 0: 64 KiB / 256 KiB */
    /* Reach host:port through this proxy (proxy.h), NULL for directly.
     * Read during the call only: it and its strings may go once
     * iocp_connect() returns.  family, source and timeout_ms apply to the
     * connection to the proxy; timeout_ms covers the negotiation too. */
    const struct iocp_proxy *proxy;
};

/*
 * iocp_connect(e, cfg):
 * Start connecting.  On success handler->on_open runs on the chosen worker
 * (iocp_conn_id() is valid from then on); on failure handler->on_close runs
 * with the error (IOCP_ECONNREFUSED, IOCP_ETIMEDOUT, IOCP_ENONAME...), and
 * nothing else; iocp_error_detail() read in that on_close may say more
 * (through a proxy, it always does: "SOCKS5: connection refused by the
 * proxy's target").  Returns 0, or an immediate error (IOCP_EINVAL with
 * iocp_error_detail(), IOCP_ESTATE when the engine is not running), in which
 * case no callback runs.  Safe from any thread.
 */
#define iocp_connect(e, cfg) iocp_connect_sized((e), (cfg), sizeof(struct iocp_connect_config))
IOCP_EXTERN int iocp_connect_sized(struct iocp_engine *e, const struct iocp_connect_config *cfg,
                                   size_t cfg_size);

#ifdef __cplusplus
}
#endif

#endif /* IOCP_CLIENT_H */
