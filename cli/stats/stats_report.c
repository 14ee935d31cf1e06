/* SPDX-License-Identifier: MIT */
/*
 * stats_report.h: the reports are built from one iocp_engine_stats()
 * snapshot each (plus iocp_engine_foreach_conn() for the listings), taken
 * on the endpoint's thread; both calls are safe from any thread, so nothing
 * a client asks reaches the engine's workers.
 */
#include "stats_report.h"
#include "stats_clients.h"
#include "stats_sections.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"

void stats_source_init(struct stats_source *src, struct iocp_engine *e, struct iocp_server *s,
                       long pid)
{
    memset(src, 0, sizeof *src);
    src->e = e;
    src->s = s;
    src->pid = pid;
}

void stats_source_fini(struct stats_source *src)
{
    free(src->base_completions);
    memset(src, 0, sizeof *src);
}

/* ---- addresses ---- */

/* "tcp:[HOST:]PORT", "tcp:[v6]:PORT": host (default 127.0.0.1) and port. */
bool stats_parse_tcp(const char *spec, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *text = spec + 4;
    const char *p = text;
    snprintf(host, hostlen, "127.0.0.1");
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= hostlen)
            return false;
        snprintf(host, hostlen, "%.*s", (int)(close - text - 1), text + 1);
        p = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon) {
            if ((size_t)(colon - text) >= hostlen || colon == text)
                return false;
            snprintf(host, hostlen, "%.*s", (int)(colon - text), text);
            p = colon + 1;
        }
    }
    char *end;
    long v = strtol(p, &end, 10);
    if (!*p || *end || v < 0 || v > 65535)
        return false;
    snprintf(port, portlen, "%ld", v);
    return true;
}

bool stats_is_tcp(const char *spec)
{
    return strncmp(spec, "tcp:", 4) == 0;
}

/* ---- reports ---- */

static const char *const op_names[IOCP_STAT_OPS] = {
    "accept", "connect", "recv", "send", "read", "write", "post",
};

struct report {
    struct iocp_stats st;
    struct stats_sample now;
    uint64_t interval_ms; /* what the rates cover */
    bool since_start;
    double in_rate, out_rate, accept_rate, close_rate;
    /* Every worker (st.worker[] has only the first IOCP_STATS_MAX_WORKERS). */
    unsigned workers;
    struct iocp_worker_stats *worker;
    double *completion_rate;
    uint64_t pool_total;
    char listening[80];
    uint32_t server_conns;
};

static double per_second(uint64_t now, uint64_t then, uint64_t ms)
{
    return ms ? (double)(now - then) * 1000.0 / (double)ms : 0.0;
}

static void report_free(struct report *r)
{
    free(r->worker);
    free(r->completion_rate);
}

/* Each worker's counters and completion rate into r (advance: and into
 * the baseline); false when memory runs out. */
static bool take_workers(struct stats_source *src, struct report *r, bool advance)
{
    unsigned n = iocp_engine_worker_stats(src->e, NULL, 0);
    size_t alloc = n ? n : 1;
    r->worker = calloc(alloc, sizeof *r->worker);
    r->completion_rate = calloc(alloc, sizeof *r->completion_rate);
    if (!src->base_completions || src->base_workers != n) {
        free(src->base_completions);
        src->base_completions = calloc(alloc, sizeof *src->base_completions);
        src->base_workers = src->base_completions ? n : 0;
    }
    if (!r->worker || !r->completion_rate || !src->base_completions)
        return false;
    r->workers = iocp_engine_worker_stats(src->e, r->worker, n);
    if (r->workers > n)
        r->workers = n; /* the count does not change, but never read past */
    for (unsigned i = 0; i < r->workers; i++) {
        r->completion_rate[i] =
            per_second(r->worker[i].completions, src->base_completions[i], r->interval_ms);
        if (advance)
            src->base_completions[i] = r->worker[i].completions;
    }
    return true;
}

/* Take a snapshot and the rates since the previous sample (see the header
 * for the rule); with advance, this snapshot becomes the next baseline when
 * the baseline is old enough.  false when memory runs out; report_free(r)
 * either way. */
static bool take_report(struct stats_source *src, struct report *r, bool advance)
{
    memset(r, 0, sizeof *r);
    iocp_engine_stats(src->e, &r->st, true);
    const struct iocp_stats *st = &r->st;
    r->now.t_ms = st->uptime_ms;
    r->now.bytes_in = st->bytes_in;
    r->now.bytes_out = st->bytes_out;
    r->now.accepted = st->accepted;
    r->now.closed = st->closed;

    const struct stats_sample *b = &src->base;
    r->since_start = b->t_ms == 0;
    r->interval_ms = r->now.t_ms > b->t_ms ? r->now.t_ms - b->t_ms : 0;
    r->in_rate = per_second(r->now.bytes_in, b->bytes_in, r->interval_ms);
    r->out_rate = per_second(r->now.bytes_out, b->bytes_out, r->interval_ms);
    r->accept_rate = per_second(r->now.accepted, b->accepted, r->interval_ms);
    r->close_rate = per_second(r->now.closed, b->closed, r->interval_ms);
    advance = advance && r->interval_ms >= STATS_RATE_MIN_MS;
    if (!take_workers(src, r, advance))
        return false;
    if (advance)
        src->base = r->now;

    r->pool_total = st->pool_free + (st->pool_lent - st->pool_returned);
    if (src->s) {
        iocp_server_address(src->s, r->listening, sizeof r->listening);
        r->server_conns = iocp_server_conns(src->s);
    }
    return true;
}

static bool walk_agrees(const struct iocp_stats *st)
{
    return st->walked == st->online && st->hashed == st->online;
}

/* "1.5 GiB": binary units, three significant digits or so. */
static const char *human_bytes(double v, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    unsigned u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%.0f B", v);
    else
        snprintf(buf, len, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
    return buf;
}

/* The engine's internals, for the verbose table. */
static void report_internals(const struct report *rp, struct json_buf *b)
{
    const struct iocp_stats *st = &rp->st;
    char z[32], w[32];
    json_printf(b, "hash          %llu buckets in use, longest chain %llu\n",
                (unsigned long long)st->buckets_used, (unsigned long long)st->longest_chain);
    json_printf(b, "accepts       %llu pending (low %u, high %u)\n",
                (unsigned long long)st->pending_accepts, st->accept_low, st->accept_high);
    json_printf(b, "pool          %llu free of %llu contexts\n", (unsigned long long)st->pool_free,
                (unsigned long long)rp->pool_total);
    json_printf(b, "\n%-7s %10s %14s %12s %12s %12s\n", "worker", "conns", "completions",
                "per second", "in", "out");
    for (unsigned i = 0; i < rp->workers; i++)
        json_printf(b, "%-7u %10llu %14llu %12.1f %12s %12s\n", i,
                    (unsigned long long)rp->worker[i].conns,
                    (unsigned long long)rp->worker[i].completions, rp->completion_rate[i],
                    human_bytes((double)rp->worker[i].bytes_in, z, sizeof z),
                    human_bytes((double)rp->worker[i].bytes_out, w, sizeof w));
}

/*
 * The table: first what an operator watches (connections, rates, errors),
 * then with verbose the engine's internals (the registry's three counts and
 * its hash, pending accepts, the context pool, each worker's load).  A
 * registry whose counts disagree is said either way: it is a bug.
 */
static void report_text(struct stats_source *src, struct json_buf *b, bool verbose)
{
    struct report r;
    if (!take_report(src, &r, true)) {
        report_free(&r);
        b->failed = true;
        return;
    }
    const struct iocp_stats *st = &r.st;
    uint64_t up = st->uptime_ms / 1000;
    char x[32], y[32];

    json_printf(b, "iocptool %s   pid %ld   backend %s   %u worker%s   up %llu:%02u:%02u\n",
                cli_command ? cli_command : "?", src->pid, st->backend, st->workers,
                st->workers == 1 ? "" : "s", (unsigned long long)(up / 3600),
                (unsigned)(up / 60 % 60), (unsigned)(up % 60));
    if (src->s)
        json_printf(b, "listening     %s, %u connection%s\n", r.listening, r.server_conns,
                    r.server_conns == 1 ? "" : "s");
    json_printf(
        b, "connections   %llu open, %llu accepted, %llu connected, %llu closed, %llu refused\n",
        (unsigned long long)st->online, (unsigned long long)st->accepted,
        (unsigned long long)st->connected, (unsigned long long)st->closed,
        (unsigned long long)st->refused);
    json_printf(b, "rates         in %s/s, out %s/s, %.1f accepts/s, %.1f closes/s (%s %.1f s)\n",
                human_bytes(r.in_rate, x, sizeof x), human_bytes(r.out_rate, y, sizeof y),
                r.accept_rate, r.close_rate, r.since_start ? "since start," : "over the last",
                (double)r.interval_ms / 1000.0);
    json_printf(b, "traffic       in %s, out %s\n", human_bytes((double)st->bytes_in, x, sizeof x),
                human_bytes((double)st->bytes_out, y, sizeof y));
    json_printf(b,
                "errors        %llu failed accepts, %llu accept pauses (out of descriptors or "
                "memory), %llu failed posts\n",
                (unsigned long long)st->accept_errors, (unsigned long long)st->accept_backoffs,
                (unsigned long long)st->failed_submits);
    if (verbose || !walk_agrees(st))
        json_printf(b, "registry      %llu counted, %llu walked, %llu hashed: %s\n",
                    (unsigned long long)st->online, (unsigned long long)st->walked,
                    (unsigned long long)st->hashed, walk_agrees(st) ? "agree" : "DISAGREE");
    stats_sections_text(b);
    if (verbose)
        report_internals(&r, b);
    report_free(&r);
}

#define JU(b, key, v) json_printf(b, ",\"%s\":%llu", key, (unsigned long long)(v))

static void report_json(struct stats_source *src, struct json_buf *b)
{
    struct report r;
    if (!take_report(src, &r, true)) {
        report_free(&r);
        b->failed = true;
        return;
    }
    const struct iocp_stats *st = &r.st;
    json_printf(b, "{\"pid\":%ld", src->pid);
    json_key(b, "command", false);
    json_str(b, cli_command ? cli_command : "");
    json_key(b, "version", false);
    json_str(b, IOCP_VERSION_STRING);
    json_key(b, "backend", false);
    json_str(b, st->backend);
    JU(b, "workers", st->workers);
    JU(b, "uptime_ms", st->uptime_ms);
    if (src->s) {
        json_key(b, "listening", false);
        json_str(b, r.listening);
        JU(b, "server_connections", r.server_conns);
    }
    json_printf(b, ",\"online\":{\"counted\":%llu,\"walked\":%llu,\"hashed\":%llu,\"agree\":%s}",
                (unsigned long long)st->online, (unsigned long long)st->walked,
                (unsigned long long)st->hashed, walk_agrees(st) ? "true" : "false");
    json_printf(b, ",\"hash\":{\"buckets_used\":%llu,\"longest_chain\":%llu}",
                (unsigned long long)st->buckets_used, (unsigned long long)st->longest_chain);
    json_printf(b,
                ",\"accepts\":{\"pending\":%llu,\"low\":%u,\"high\":%u,\"errors\":%llu,"
                "\"backoffs\":%llu}",
                (unsigned long long)st->pending_accepts, st->accept_low, st->accept_high,
                (unsigned long long)st->accept_errors, (unsigned long long)st->accept_backoffs);
    json_printf(b, ",\"pool\":{\"free\":%llu,\"total\":%llu,\"created\":%llu}",
                (unsigned long long)st->pool_free, (unsigned long long)r.pool_total,
                (unsigned long long)st->pool_created);
    JU(b, "bytes_in", st->bytes_in);
    JU(b, "bytes_out", st->bytes_out);
    JU(b, "accepted", st->accepted);
    JU(b, "connected", st->connected);
    JU(b, "closed", st->closed);
    JU(b, "refused", st->refused);
    JU(b, "failed_posts", st->failed_submits);
    stats_sections_json(b);
    json_printf(b,
                ",\"rates\":{\"interval_ms\":%llu,\"since_start\":%s,\"bytes_in_per_s\":%.1f,"
                "\"bytes_out_per_s\":%.1f,\"accepted_per_s\":%.1f,\"closed_per_s\":%.1f}",
                (unsigned long long)r.interval_ms, r.since_start ? "true" : "false", r.in_rate,
                r.out_rate, r.accept_rate, r.close_rate);
    json_printf(b, ",\"ops\":{");
    for (int op = 0; op < IOCP_STAT_OPS; op++)
        json_printf(b, "%s\"%s\":{\"submitted\":%llu,\"completed\":%llu}", op ? "," : "",
                    op_names[op], (unsigned long long)st->submitted[op],
                    (unsigned long long)st->completed[op]);
    json_printf(b, "},\"per_worker\":[");
    for (unsigned i = 0; i < r.workers; i++)
        json_printf(b,
                    "%s{\"worker\":%u,\"connections\":%llu,\"completions\":%llu,"
                    "\"completions_per_s\":%.1f,\"bytes_in\":%llu,\"bytes_out\":%llu}",
                    i ? "," : "", i, (unsigned long long)r.worker[i].conns,
                    (unsigned long long)r.worker[i].completions, r.completion_rate[i],
                    (unsigned long long)r.worker[i].bytes_in,
                    (unsigned long long)r.worker[i].bytes_out);
    json_printf(b, "]");
    json_printf(b, "}\n");
    report_free(&r);
}

/* A label value in the exposition format: backslash, quote and newline
 * escaped. */
static void prom_label(struct json_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            json_printf(b, "\\%c", *v);
        else if (*v == '\n')
            json_printf(b, "\\n");
        else
            json_append(b, v, 1);
    }
}

static void prom_head(struct json_buf *b, const char *name, const char *type, const char *help)
{
    json_printf(b, "# HELP iocptool_%s %s\n# TYPE iocptool_%s %s\n", name, help, name, type);
}

static void prom_one(struct json_buf *b, const char *name, const char *type, const char *help,
                     uint64_t v)
{
    prom_head(b, name, type, help);
    json_printf(b, "iocptool_%s %llu\n", name, (unsigned long long)v);
}

static void report_prometheus(struct stats_source *src, struct json_buf *b)
{
    struct report r;
    if (!take_report(src, &r, false)) {
        report_free(&r);
        b->failed = true;
        return;
    }
    const struct iocp_stats *st = &r.st;
    prom_head(b, "info", "gauge", "Constant 1, labelled with what runs.");
    json_printf(b, "iocptool_info{command=\"");
    prom_label(b, cli_command ? cli_command : "");
    json_printf(b, "\",backend=\"");
    prom_label(b, st->backend);
    json_printf(b, "\",version=\"%s\"} 1\n", IOCP_VERSION_STRING);
    prom_head(b, "uptime_seconds", "gauge", "Seconds since the engine started.");
    json_printf(b, "iocptool_uptime_seconds %.3f\n", (double)st->uptime_ms / 1000.0);
    prom_one(b, "workers", "gauge", "Worker threads.", st->workers);
    prom_one(b, "connections_online", "gauge", "Connections online (the registry's counter).",
             st->online);
    prom_one(b, "connections_walked", "gauge", "Connections found walking the online list.",
             st->walked);
    prom_one(b, "connections_hashed", "gauge", "Connections found walking the socket hash.",
             st->hashed);
    prom_one(b, "hash_buckets_used", "gauge", "Socket hash buckets in use.", st->buckets_used);
    prom_one(b, "hash_longest_chain", "gauge", "Longest socket hash chain.", st->longest_chain);
    prom_one(b, "accepts_pending", "gauge", "Accepts posted and not yet completed.",
             st->pending_accepts);
    prom_one(b, "accepts_low_watermark", "gauge", "Pending accepts are refilled below this.",
             st->accept_low);
    prom_one(b, "accepts_high_watermark", "gauge", "Pending accepts are refilled up to this.",
             st->accept_high);
    prom_one(b, "pool_contexts_free", "gauge", "Pooled connection contexts free.", st->pool_free);
    prom_one(b, "pool_contexts", "gauge", "Pooled connection contexts, free and lent.",
             r.pool_total);
    prom_one(b, "received_bytes_total", "counter", "Bytes received.", st->bytes_in);
    prom_one(b, "sent_bytes_total", "counter", "Bytes sent.", st->bytes_out);
    prom_one(b, "accepted_total", "counter", "Connections accepted.", st->accepted);
    prom_one(b, "connected_total", "counter", "Outgoing connections established.", st->connected);
    prom_one(b, "closed_total", "counter", "Connections closed.", st->closed);
    prom_one(b, "refused_total", "counter", "Connections refused (filter or limit).", st->refused);
    prom_one(b, "accept_errors_total", "counter", "Failed accept completions.", st->accept_errors);
    prom_one(b, "accept_backoffs_total", "counter",
             "Pauses in accepting after EMFILE and the like.", st->accept_backoffs);
    prom_one(b, "failed_posts_total", "counter", "Submits or posts refused by the port.",
             st->failed_submits);
    stats_sections_prometheus(b);
    prom_head(b, "ops_submitted_total", "counter", "Requests submitted, per operation.");
    for (int op = 0; op < IOCP_STAT_OPS; op++)
        json_printf(b, "iocptool_ops_submitted_total{op=\"%s\"} %llu\n", op_names[op],
                    (unsigned long long)st->submitted[op]);
    prom_head(b, "ops_completed_total", "counter", "Requests completed, per operation.");
    for (int op = 0; op < IOCP_STAT_OPS; op++)
        json_printf(b, "iocptool_ops_completed_total{op=\"%s\"} %llu\n", op_names[op],
                    (unsigned long long)st->completed[op]);
    unsigned nw = r.workers;
    prom_head(b, "worker_connections", "gauge", "Connections owned by each worker.");
    for (unsigned i = 0; i < nw; i++)
        json_printf(b, "iocptool_worker_connections{worker=\"%u\"} %llu\n", i,
                    (unsigned long long)r.worker[i].conns);
    prom_head(b, "worker_completions_total", "counter", "Completions dispatched by each worker.");
    for (unsigned i = 0; i < nw; i++)
        json_printf(b, "iocptool_worker_completions_total{worker=\"%u\"} %llu\n", i,
                    (unsigned long long)r.worker[i].completions);
    prom_head(b, "worker_received_bytes_total", "counter", "Bytes received by each worker.");
    for (unsigned i = 0; i < nw; i++)
        json_printf(b, "iocptool_worker_received_bytes_total{worker=\"%u\"} %llu\n", i,
                    (unsigned long long)r.worker[i].bytes_in);
    prom_head(b, "worker_sent_bytes_total", "counter", "Bytes sent by each worker.");
    for (unsigned i = 0; i < nw; i++)
        json_printf(b, "iocptool_worker_sent_bytes_total{worker=\"%u\"} %llu\n", i,
                    (unsigned long long)r.worker[i].bytes_out);
    report_free(&r);
}

struct clients_ctx {
    struct json_buf *b;
    bool json;
    size_t n;
};

static bool list_one(const struct iocp_conn_info *info, void *arg)
{
    struct clients_ctx *ctx = arg;
    /* A client a load balancer's PROXY header named is listed as itself. */
    char client[sizeof info->peer];
    bool proxied = stats_client_name_get(info->id, client, sizeof client);
    const char *peer = proxied ? client : info->peer;
    if (ctx->json) {
        json_printf(ctx->b, "%s{\"id\":%llu", ctx->n ? "," : "", (unsigned long long)info->id);
        json_key(ctx->b, "peer", false);
        json_str(ctx->b, peer);
        if (proxied) {
            json_key(ctx->b, "via", false);
            json_str(ctx->b, info->peer);
        }
        json_printf(ctx->b,
                    ",\"worker\":%u,\"age_ms\":%llu,\"idle_ms\":%llu,\"bytes_in\":%llu,"
                    "\"bytes_out\":%llu}",
                    info->worker, (unsigned long long)info->age_ms,
                    (unsigned long long)info->idle_ms, (unsigned long long)info->bytes_in,
                    (unsigned long long)info->bytes_out);
    } else {
        json_printf(ctx->b, "%-20llu %-47s %10.3f %10.3f %12llu %12llu\n",
                    (unsigned long long)info->id, peer, (double)info->age_ms / 1000.0,
                    (double)info->idle_ms / 1000.0, (unsigned long long)info->bytes_in,
                    (unsigned long long)info->bytes_out);
    }
    ctx->n++;
    return !ctx->b->failed;
}

static void report_clients(struct stats_source *src, struct json_buf *b, bool json)
{
    struct clients_ctx ctx = {b, json, 0};
    if (json)
        json_printf(b, "[");
    iocp_engine_foreach_conn(src->e, list_one, &ctx);
    if (json)
        json_printf(b, "]\n");
}

/* ---- requests ---- */

void stats_answer(struct stats_source *src, const char *line, size_t len, struct json_buf *out)
{
    /* The line without its end: "\n" or "\r\n". */
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    char req[STATS_REQ_MAX + 1];
    bool ok = len < sizeof req;
    if (ok) {
        memcpy(req, line, len);
        req[len] = '\0';
        ok = strlen(req) == len; /* no NUL inside */
    }
    if (ok && !strcmp(req, "stats"))
        report_text(src, out, false);
    else if (ok && !strcmp(req, "stats-verbose"))
        report_text(src, out, true);
    else if (ok && !strcmp(req, "json"))
        report_json(src, out);
    else if (ok && !strcmp(req, "prometheus"))
        report_prometheus(src, out);
    else if (ok && !strcmp(req, "clients"))
        report_clients(src, out, false);
    else if (ok && !strcmp(req, "clients-json"))
        report_clients(src, out, true);
    else
        json_printf(out, "error: unknown request (expected stats, stats-verbose, json, "
                         "prometheus, clients or clients-json)\n");
    if (out->failed) {
        json_buf_free(out);
        json_printf(out, "error: out of memory\n");
    }
}
