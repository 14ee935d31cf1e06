/* SPDX-License-Identifier: MIT */
/*
 * The TLS section of a subcommand's stats reports: for each side that
 * speaks TLS, the handshakes done (and how many resumed a session) and
 * those that failed, by reason.  The side "clients" is the one that
 * accepts TLS (listen --tls, echo --tls, relay --tls-listen), "targets"
 * the one that makes it (relay --tls-target).
 *
 *   text        tls clients  12 handshakes (0 resumed), 1 failed: ...
 *   JSON        "tls":{"clients":{"handshakes":12,"resumed":0,...}}
 *   Prometheus  iocptool_<metric>_handshakes_total{side="clients"} 12
 *               iocptool_<metric>_failures_total{side=...,reason=...}
 */
#ifndef IOCPTOOL_STATS_TLS_H
#define IOCPTOOL_STATS_TLS_H

#include "tls.h"

enum { STATS_TLS_CLIENTS, STATS_TLS_TARGETS };

struct stats_tls {
    const char *metric;          /* "tls", or "relay_tls" for the relay */
    struct tls_ctx *side[2];     /* [STATS_TLS_CLIENTS], [STATS_TLS_TARGETS]; NULL: none */
};

/* Add the section for st (which must outlive the run) before the stats
 * endpoint starts; nothing when neither side has a context. */
void stats_tls_add(struct stats_tls *st);

#endif /* IOCPTOOL_STATS_TLS_H */
