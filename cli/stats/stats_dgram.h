/* SPDX-License-Identifier: MIT */
/*
 * The datagram part of the stats report: the engine's datagram sockets
 * (listeners, connect -u's socket, each relay -u session) with their
 * counters, in the table, in JSON and in the Prometheus format.  Nothing is
 * added for a process that never opened a datagram socket.  Safe from the
 * stats thread: it uses iocp_engine_dgram_totals() and
 * iocp_engine_foreach_dgram() only.
 */
#ifndef IOCPTOOL_STATS_DGRAM_H
#define IOCPTOOL_STATS_DGRAM_H

#include <stdbool.h>

#include "iocp.h"
#include "json.h"

/* How many sockets the table lists one by one (JSON lists them all). */
#define STATS_DGRAM_TABLE_MAX 32

/*
 * stats_dgram_add(e):
 * Add the datagram section (stats_sections.h) for engine e to the reports;
 * a UDP subcommand calls it before it starts its stats endpoint.  In the
 * table: a summary and the first STATS_DGRAM_TABLE_MAX sockets; in JSON:
 * ,"datagrams":{...} with every socket; in Prometheus: the
 * iocptool_datagram* and iocptool_relay_sessions metrics.
 */
void stats_dgram_add(struct iocp_engine *e);

#endif /* IOCPTOOL_STATS_DGRAM_H */
