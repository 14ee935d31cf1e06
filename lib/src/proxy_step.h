/* SPDX-License-Identifier: MIT */
/*
 * The proxy step of an outgoing connection (proxy.c), as client.c sees it:
 * a connect config that names a proxy is turned into a connect to the
 * proxy whose handler negotiates the tunnel and then hands the connection
 * to the caller's handler.
 */
#ifndef IOCP_PROXY_STEP_H
#define IOCP_PROXY_STEP_H

#include "core.h"

/*
 * iocp__proxy_wrap(cfg, lookup_name, lookup_family):
 * cfg->proxy is set: check it, and point cfg at the proxy (host, port) with
 * the negotiation's handler and state as handler and data.  When the
 * target's name must be resolved here (SOCKS4, SOCKS5 without remote_dns),
 * *lookup_name is that name (owned by the state) and *lookup_family the
 * family to ask for; otherwise NULL.  0, or IOCP_EINVAL (with a detail) /
 * IOCP_ENOMEM, cfg unchanged then.
 */
int iocp__proxy_wrap(struct iocp_connect_config *cfg, const char **lookup_name,
                     int *lookup_family);

/* A wrapped config that will never connect: free its state. */
void iocp__proxy_abandon(const struct iocp_connect_config *cfg);

/*
 * iocp__proxy_resolved(c, error, res):
 * The target's local lookup is done (on c's worker, before the connect to
 * the proxy): keep its first address, or fail c with error.  0 to go on,
 * or the error c now closes with.
 */
int iocp__proxy_resolved(struct iocp_conn *c, int error, const struct addrinfo *res);

#endif /* IOCP_PROXY_STEP_H */
