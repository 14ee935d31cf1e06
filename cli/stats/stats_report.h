/* SPDX-License-Identifier: MIT */
/*
 * What the stats endpoint (stats_server.c, on either platform) and its
 * reports share, so that there is one implementation of the protocol's
 * answers: the limits a client is held to, the request line and the five
 * reports it selects (table, JSON, Prometheus, connection listings), the
 * rate sampling behind them, and the syntax of a TCP endpoint address.
 * Nothing here touches a socket or the file system; stats_endpoint.h
 * describes the protocol.
 */
#ifndef IOCPTOOL_STATS_REPORT_H
#define IOCPTOOL_STATS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iocp.h"
#include "json.h"

#define STATS_MAX_CLIENTS 32    /* clients served at once by an endpoint */
#define STATS_REQ_MAX     128   /* bytes of a request line, newline included */
#define STATS_READ_MS     5000  /* for a client to send its request line */
#define STATS_WRITE_MS    10000 /* for a client to read the whole answer */
#define STATS_DRAIN_MS    1000  /* to close after the answer */
#define STATS_RATE_MIN_MS 1000  /* a new rate sample at most this often */
/* With every slot taken, a client that has sent no whole request after
 * this long gives its slot up to a new one. */
#define STATS_SLOT_HOLD_MS 1000
/* When accepting fails (no descriptors left), the endpoint stops looking
 * at its listening socket this long, as the engine's acceptors do. */
#define STATS_ACCEPT_PAUSE_MS 50

/* One sample of the counters that rates are computed from. */
struct stats_sample {
    uint64_t t_ms; /* engine uptime */
    uint64_t bytes_in, bytes_out, accepted, closed;
};

/* What the reports are about, and the rate baseline.  Used by one thread
 * (the endpoint's) once initialised. */
struct stats_source {
    struct iocp_engine *e;
    struct iocp_server *s;    /* may be NULL */
    long pid;                 /* the process the reports name */
    struct stats_sample base; /* the previous sample; zero (the start) at first */
    /* Each worker's completions at the previous sample (every worker,
     * however many: allocated at the first report). */
    uint64_t *base_completions;
    unsigned base_workers;
};

/* Point src at e and s (s may be NULL); the first rates cover the time
 * since the engine started. */
void stats_source_init(struct stats_source *src, struct iocp_engine *e, struct iocp_server *s,
                       long pid);

/* Free what the reports allocated in src. */
void stats_source_fini(struct stats_source *src);

/*
 * stats_answer(src, line, len, out):
 * Append the answer to one request line (len bytes, its "\n" or "\r\n"
 * included or not) to out: the report it names, or "error: ..." for
 * anything else (a NUL inside, an unknown word).  An allocation failure
 * leaves "error: out of memory" instead of a partial report.
 */
void stats_answer(struct stats_source *src, const char *line, size_t len, struct json_buf *out);

/*
 * stats_parse_tcp(spec, host, hostlen, port, portlen):
 * Split "tcp:[HOST:]PORT" or "tcp:[V6]:PORT" into host (127.0.0.1 when
 * absent) and a decimal port.  false when it does not parse.
 */
bool stats_parse_tcp(const char *spec, char *host, size_t hostlen, char *port, size_t portlen);

/* Whether spec names a TCP endpoint ("tcp:..."). */
bool stats_is_tcp(const char *spec);

#endif /* IOCPTOOL_STATS_REPORT_H */
