/* SPDX-License-Identifier: MIT */
/*
 * Who a connection's client is when it is not the connection's peer: a
 * load balancer's PROXY header (--accept-proxy) named the client.  stats
 * --clients lists that client instead of the balancer's address, and the
 * JSON form gives the balancer as "via".
 *
 * A connection's worker sets and clears its entry; the stats endpoint's
 * thread reads while the connections are walked.  The table holds only
 * proxied connections, under a lock held for a lookup or an insertion.
 */
#ifndef IOCPTOOL_STATS_CLIENTS_H
#define IOCPTOOL_STATS_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "iocp.h"

/* The client of connection id is client ("host:port").  false without
 * memory (the connection is then listed by its peer, as before). */
bool stats_client_name_set(iocp_conn_id_t id, const char *client);

/* Connection id is gone (nothing when it had no name). */
void stats_client_name_clear(iocp_conn_id_t id);

/* The client named for connection id, into buf; false when none. */
bool stats_client_name_get(iocp_conn_id_t id, char *buf, size_t len);

#endif /* IOCPTOOL_STATS_CLIENTS_H */
