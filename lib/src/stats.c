/* SPDX-License-Identifier: MIT */
/*
 * Stats: summing the per-worker counters, walking the registry, listing
 * connections, and the audit at stop.
 *
 * Counters are written by their worker alone and read here with relaxed
 * loads: a reading may be a few completions stale, never torn.  The walk
 * goes through the registry (online list and socket hash) the way the seed
 * asks, so a report shows both the counter and what was actually found.
 */
#include "core.h"

#include <stdio.h>
#include <string.h>

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void iocp_engine_stats(struct iocp_engine *e, struct iocp_stats *out, bool walk)
{
    memset(out, 0, sizeof *out);
    snprintf(out->backend, sizeof out->backend, "%s", iocp_engine_backend(e));
    out->workers = e->nworkers;
    if (iocp_engine_running(e))
        out->uptime_ms = iocp__now_ms() - e->started_ms;
    for (unsigned i = 0; i < e->nworkers; i++) {
        struct iocp_counters *k = &e->workers[i].cnt;
        for (int op = 0; op < IOCP_STAT_OPS; op++) {
            out->submitted[op] += LOAD(k->submitted[op]);
            out->completed[op] += LOAD(k->completed[op]);
        }
        out->failed_submits += LOAD(k->failed_submits);
        out->pool_created += LOAD(k->pool_created);
        out->pool_lent += LOAD(k->pool_lent);
        out->pool_returned += LOAD(k->pool_returned);
        out->pool_free += LOAD(k->pool_created) - LOAD(k->pool_destroyed);
        out->bytes_in += LOAD(k->bytes_in);
        out->bytes_out += LOAD(k->bytes_out);
        out->accepted += LOAD(k->accepted);
        out->connected += LOAD(k->connected);
        out->closed += LOAD(k->closed);
        out->refused += LOAD(k->refused);
        out->accept_errors += LOAD(k->accept_errors);
        out->accept_backoffs += LOAD(k->accept_backoffs);
    }
    iocp_engine_worker_stats(e, out->worker, IOCP_STATS_MAX_WORKERS);
    /* pool_free so far counts objects alive; those lent out are not free. */
    uint64_t lent_now = out->pool_lent - out->pool_returned;
    out->pool_free = out->pool_free > lent_now ? out->pool_free - lent_now : 0;
    out->pending_accepts = iocp__servers_pending_accepts(e, &out->accept_low, &out->accept_high);
    out->online = iocp__registry_online(&e->registry);
    if (walk) {
        struct iocp_registry_counts rc;
        iocp__registry_count(&e->registry, &rc);
        out->walked = rc.walked;
        out->hashed = rc.hashed;
        out->buckets_used = rc.buckets_used;
        out->longest_chain = rc.longest_chain;
    }
}

unsigned iocp_engine_worker_stats(struct iocp_engine *e, struct iocp_worker_stats *out, unsigned n)
{
    for (unsigned i = 0; i < n && i < e->nworkers; i++) {
        struct iocp_counters *k = &e->workers[i].cnt;
        out[i].completions = LOAD(k->completions);
        out[i].conns = LOAD(k->conns);
        out[i].bytes_in = LOAD(k->bytes_in);
        out[i].bytes_out = LOAD(k->bytes_out);
    }
    return e->nworkers;
}

struct foreach_ctx {
    bool (*cb)(const struct iocp_conn_info *info, void *arg);
    void *arg;
    size_t visited;
};

static bool visit(struct iocp_reg_entry *entry, void *arg)
{
    struct foreach_ctx *ctx = arg;
    if (entry->kind != IOCP_REG_CONN) /* datagram sockets: iocp_engine_foreach_dgram() */
        return true;
    ctx->visited++;
    struct iocp_conn *c = iocp_container_of(entry, struct iocp_conn, reg);
    struct iocp_conn_info info;
    memset(&info, 0, sizeof info);
    /* The walker holds a pin, so the object stays; its fields read here are
     * either fixed for the connection's life or atomics. */
    info.id = entry->id;
    info.worker = c->w->index;
    iocp_conn_peer(c, info.peer, sizeof info.peer);
    info.age_ms = iocp_conn_age_ms(c);
    info.idle_ms = iocp_conn_idle_ms(c);
    info.bytes_in = iocp_conn_bytes_in(c);
    info.bytes_out = iocp_conn_bytes_out(c);
    return ctx->cb(&info, ctx->arg);
}

size_t iocp_engine_foreach_conn(struct iocp_engine *e,
                                bool (*cb)(const struct iocp_conn_info *info, void *arg),
                                void *arg)
{
    if (!cb)
        return 0;
    struct foreach_ctx ctx = {cb, arg, 0};
    iocp__registry_foreach(&e->registry, visit, &ctx);
    return ctx.visited;
}

static const char *const op_names[IOCP_STAT_OPS] = {
    "accept", "connect", "recv", "send", "read", "write", "post",
};

int iocp_engine_audit(struct iocp_engine *e, char *report, size_t len)
{
    struct iocp_stats st;
    iocp_engine_stats(e, &st, false);
    int mismatches = 0;
    size_t used = 0;
    if (report && len)
        report[0] = '\0';
#define NOTE(...)                                                                                  \
    do {                                                                                           \
        mismatches++;                                                                              \
        if (report && used < len) {                                                                \
            int n_ = snprintf(report + used, len - used, __VA_ARGS__);                             \
            used += n_ > 0 ? (size_t)n_ : 0;                                                       \
        }                                                                                          \
    } while (0)
    for (int op = 0; op < IOCP_STAT_OPS; op++)
        if (st.submitted[op] != st.completed[op])
            NOTE("%s: %llu submitted, %llu completed; ", op_names[op],
                 (unsigned long long)st.submitted[op], (unsigned long long)st.completed[op]);
    if (st.pool_lent != st.pool_returned)
        NOTE("connections: %llu lent, %llu returned; ", (unsigned long long)st.pool_lent,
             (unsigned long long)st.pool_returned);
    struct iocp_dgram_totals dt;
    iocp_engine_dgram_totals(e, &dt);
    if (dt.open != 0)
        NOTE("%llu datagram sockets still open; ", (unsigned long long)dt.open);
    if (st.online > dt.open)
        NOTE("%llu connections still online; ", (unsigned long long)(st.online - dt.open));
    uint64_t unfreed = atomic_load(&e->timers_unfreed), held = atomic_load(&e->timers_held);
    if (unfreed != 0)
        NOTE("timers: %llu not freed; ", (unsigned long long)unfreed);
    if (held != 0)
        NOTE("timers: %llu freed but still held by a worker; ", (unsigned long long)held);
#undef NOTE
    return mismatches;
}
