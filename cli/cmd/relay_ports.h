/* SPDX-License-Identifier: MIT */
/*
 * The listening ports of a relay and the targets behind each.
 *
 * `relay 8000 a:9000 b:9000` is one port with a pool of two targets.
 * `relay 8000-8010 a:9000-9010 b:9100-9110` is eleven ports, each with its
 * own pool: port 8000+k goes to a:9000+k and b:9100+k.  A target with a
 * single port takes every listening port's clients on that port.  Every
 * port is a server of the same engine, in the same process; each pool
 * has its own health (a:9003 may be out while a:9004 is in).
 *
 * Stats (stats_sections.h): per listening port the clients accepted, live,
 * refused for want of a target, and their bytes; per target its state,
 * live connections, connections made, failed connects and bytes; as a
 * table, in JSON ("ports") and in Prometheus.
 */
#ifndef IOCPTOOL_RELAY_PORTS_H
#define IOCPTOOL_RELAY_PORTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "iocp.h"

#include "relay_balance.h"

/* The most ports of one relay. */
#define RELAY_MAX_PORTS 1024

#define RELAY_PORT_TAG 0x706f7274u /* "port": what a listening port's data starts with */

struct relay_port {
    uint32_t tag;
    uint16_t port; /* as asked (0: a free one, then known once bound) */
    struct iocp_server *server; /* the first port's is the run's own (not freed here) */
    struct balance pool;
    struct balance_target *targets;
    /* Read by stats from another thread. */
    atomic_ullong accepted, refused;
    atomic_ullong proxy_errors; /* clients closed for a bad, cut or late PROXY header */
    atomic_uint live;
    atomic_ullong bytes_in, bytes_out; /* from and to the clients (closed ones) */
};

struct relay_ports {
    char host[ADDR_HOST_MAX]; /* the listening address; "" for every one */
    struct relay_port *port;
    unsigned n;
};

/* How the pools balance; the same for every port. */
struct relay_balance_opts {
    enum balance_mode mode;
    unsigned max_fails, fail_window_ms, fail_timeout_ms;
};

/*
 * relay_ports_parse(cmd, listen, targets, ntargets, opts, out):
 * "[ADDR:]PORT" or "[ADDR:]FROM-TO", and each target "HOST:PORT[,weight=N]"
 * or "HOST:FROM-TO[,weight=N]" (a range as long as the listening one).
 * false after saying why (out holds nothing then).
 */
bool relay_ports_parse(const char *cmd, const char *listen, char *const *targets,
                       unsigned ntargets, const struct relay_balance_opts *opts,
                       struct relay_ports *out);

/*
 * relay_ports_create_more(ports, e, scfg), relay_ports_start_more(ports):
 * Make the servers of ports 1..n-1 like scfg (port 0 is the run's own
 * server), then start them, each saying its listening line.  0, or -1
 * after saying why.
 */
int relay_ports_create_more(struct relay_ports *ports, struct iocp_engine *e,
                            const struct iocp_server_config *scfg);
int relay_ports_start_more(struct relay_ports *ports);

/* Register the per-port and per-target stats (stats_sections.h). */
void relay_ports_stats(struct relay_ports *ports);

/* After the engine stopped, before it is freed: the extra servers go. */
void relay_ports_close(struct relay_ports *ports);

/* The tables go (after relay_ports_close). */
void relay_ports_free(struct relay_ports *ports);

#endif /* IOCPTOOL_RELAY_PORTS_H */
