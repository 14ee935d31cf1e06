/* SPDX-License-Identifier: MIT */
/*
 * Counters and the live walk behind `iocptool stats`.
 *
 * Counters are kept per worker without locks and summed when read.  The
 * walk visits both of the registry's indexes (the online list and the socket
 * hash), so "walked" and "counted" can be compared: they must agree.
 */
#ifndef IOCP_STATS_H
#define IOCP_STATS_H

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct iocp_engine;

/* Operation kinds counted separately. */
enum iocp_stat_op {
    IOCP_STAT_ACCEPT = 0,
    IOCP_STAT_CONNECT,
    IOCP_STAT_RECV,
    IOCP_STAT_SEND,
    IOCP_STAT_READ,
    IOCP_STAT_WRITE,
    IOCP_STAT_POST,
    IOCP_STAT_OPS
};

/* How many workers struct iocp_stats details in worker[].  An engine may
 * have more (up to IOCP_MAX_WORKERS): iocp_engine_worker_stats() gives them
 * all. */
#define IOCP_STATS_MAX_WORKERS 64

struct iocp_worker_stats {
    uint64_t completions; /* completions dispatched */
    uint64_t conns;       /* connections owned now */
    uint64_t bytes_in, bytes_out;
};

struct iocp_stats {
    char backend[8];
    unsigned workers;
    uint64_t uptime_ms;
    /* Requests submitted (or packets posted) and completed, per kind. */
    uint64_t submitted[IOCP_STAT_OPS];
    uint64_t completed[IOCP_STAT_OPS];
    uint64_t failed_submits; /* submits or posts refused (then retried or undone) */
    /* The connection pool. */
    uint64_t pool_created, pool_lent, pool_returned, pool_free;
    /* Traffic and connections. */
    uint64_t bytes_in, bytes_out;
    uint64_t accepted, connected, closed, refused;
    uint64_t accept_errors, accept_backoffs;
    /* Pending accepts over all servers and workers, and the watermarks. */
    uint64_t pending_accepts;
    unsigned accept_low, accept_high;
    /* The registry: the counter, and what a walk found (when asked for). */
    uint64_t online;
    uint64_t walked, hashed, buckets_used, longest_chain;
    /* The first IOCP_STATS_MAX_WORKERS workers (workers says how many
     * there are). */
    struct iocp_worker_stats worker[IOCP_STATS_MAX_WORKERS];
};

/*
 * iocp_engine_stats(e, out, walk):
 * Sum the counters into *out; with walk, also walk the online list and the
 * hash (O(connections), takes each lock briefly).  Safe from any thread.
 */
IOCP_EXTERN void iocp_engine_stats(struct iocp_engine *e, struct iocp_stats *out, bool walk);

/*
 * iocp_engine_worker_stats(e, out, n):
 * Fill out[0 .. min(n, workers)) with each worker's counters, whatever the
 * number of workers.  Returns the number of workers (call with n 0 to size
 * the array).  Safe from any thread.
 */
IOCP_EXTERN unsigned iocp_engine_worker_stats(struct iocp_engine *e, struct iocp_worker_stats *out,
                                              unsigned n);

/* One connection, as the listing sees it. */
struct iocp_conn_info {
    iocp_conn_id_t id;
    unsigned worker;
    char peer[64];
    uint64_t age_ms, idle_ms;
    uint64_t bytes_in, bytes_out;
};

/*
 * iocp_engine_foreach_conn(e, cb, arg):
 * Call cb for each online connection, from the calling thread, with no lock
 * held; cb returns false to stop.  Returns how many it visited.
 */
IOCP_EXTERN size_t iocp_engine_foreach_conn(struct iocp_engine *e,
                                            bool (*cb)(const struct iocp_conn_info *info,
                                                       void *arg),
                                            void *arg);

/*
 * iocp_engine_audit(e, report, len):
 * After a stop, check that every submitted request completed (per kind),
 * every pooled object came back, no connection is online, and every timer
 * created on the engine was freed ("timers: N not freed") and released by
 * its worker ("timers: N freed but still held by a worker", which after a
 * stop would be a leak in the library).  Returns the number of mismatches
 * (0 when all balance) and describes them in report (may be NULL).
 */
IOCP_EXTERN int iocp_engine_audit(struct iocp_engine *e, char *report, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* IOCP_STATS_H */
