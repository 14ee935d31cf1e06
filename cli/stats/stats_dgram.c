/* SPDX-License-Identifier: MIT */
/*
 * stats_dgram.h: datagram sockets in the stats report.
 *
 * A socket with a peer is a connected one: in relay -u each is a session
 * (its peer is the session's target), in connect -u the one socket.  The
 * report calls them sessions when the relay runs.
 */
#include "stats_dgram.h"

#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "stats_sections.h"

static bool is_relay(void)
{
    return cli_command && !strcmp(cli_command, "relay");
}

struct walk {
    struct json_buf *b;
    size_t n, shown, limit;
    size_t connected;
    bool json;
};

static bool count_one(const struct iocp_dgram_info *info, void *arg)
{
    struct walk *w = arg;
    w->n++;
    if (info->peer[0])
        w->connected++;
    return true;
}

static bool text_one(const struct iocp_dgram_info *info, void *arg)
{
    struct walk *w = arg;
    if (w->shown >= w->limit)
        return false;
    const struct iocp_dgram_stats *s = &info->stats;
    json_printf(w->b,
                "  %-8llu %-24s %-24s in %llu (%llu B)  out %llu (%llu B)  %llu truncated  "
                "%llu dropped  idle %.1f s\n",
                (unsigned long long)info->id, info->local, info->peer[0] ? info->peer : "-",
                (unsigned long long)s->dgrams_in, (unsigned long long)s->bytes_in,
                (unsigned long long)s->dgrams_out, (unsigned long long)s->bytes_out,
                (unsigned long long)s->truncated, (unsigned long long)s->dropped,
                (double)info->idle_ms / 1000.0);
    w->shown++;
    return !w->b->failed;
}

static void dgram_text(void *arg, struct json_buf *b)
{
    struct iocp_engine *e = arg;
    struct iocp_dgram_totals t;
    iocp_engine_dgram_totals(e, &t);
    if (t.opened == 0)
        return;
    struct walk w = {.b = b};
    iocp_engine_foreach_dgram(e, count_one, &w);
    if (is_relay())
        json_printf(b, "datagrams     %llu sockets open, %llu relay sessions, %llu opened\n",
                    (unsigned long long)t.open, (unsigned long long)w.connected,
                    (unsigned long long)t.opened);
    else
        json_printf(b, "datagrams     %llu sockets open, %llu opened\n", (unsigned long long)t.open,
                    (unsigned long long)t.opened);
    json_printf(b,
                "              in %llu (%llu B), out %llu (%llu B), %llu truncated, %llu "
                "dropped, %llu errors\n",
                (unsigned long long)t.dgrams_in, (unsigned long long)t.bytes_in,
                (unsigned long long)t.dgrams_out, (unsigned long long)t.bytes_out,
                (unsigned long long)t.truncated, (unsigned long long)t.dropped,
                (unsigned long long)t.errors);
    w.limit = STATS_DGRAM_TABLE_MAX;
    iocp_engine_foreach_dgram(e, text_one, &w);
    if (w.n > w.shown)
        json_printf(b, "  ... and %llu more (stats -v or --json lists them all)\n",
                    (unsigned long long)(w.n - w.shown));
}

static bool json_one(const struct iocp_dgram_info *info, void *arg)
{
    struct walk *w = arg;
    const struct iocp_dgram_stats *s = &info->stats;
    json_printf(w->b, "%s{\"id\":%llu,\"worker\":%u", w->n ? "," : "", (unsigned long long)info->id,
                info->worker);
    json_key(w->b, "local", false);
    json_str(w->b, info->local);
    json_key(w->b, "peer", false);
    json_str(w->b, info->peer);
    json_printf(w->b,
                ",\"age_ms\":%llu,\"idle_ms\":%llu,\"datagrams_in\":%llu,\"bytes_in\":%llu,"
                "\"datagrams_out\":%llu,\"bytes_out\":%llu,\"truncated\":%llu,\"dropped\":%llu,"
                "\"errors\":%llu,\"queued\":%llu}",
                (unsigned long long)info->age_ms, (unsigned long long)info->idle_ms,
                (unsigned long long)s->dgrams_in, (unsigned long long)s->bytes_in,
                (unsigned long long)s->dgrams_out, (unsigned long long)s->bytes_out,
                (unsigned long long)s->truncated, (unsigned long long)s->dropped,
                (unsigned long long)s->errors, (unsigned long long)info->queued);
    w->n++;
    if (info->peer[0])
        w->connected++;
    return !w->b->failed;
}

static void dgram_json(void *arg, struct json_buf *b)
{
    struct iocp_engine *e = arg;
    struct iocp_dgram_totals t;
    iocp_engine_dgram_totals(e, &t);
    if (t.opened == 0)
        return;
    json_printf(b,
                ",\"datagrams\":{\"open\":%llu,\"opened\":%llu,\"closed\":%llu,"
                "\"datagrams_in\":%llu,\"bytes_in\":%llu,\"datagrams_out\":%llu,"
                "\"bytes_out\":%llu,\"truncated\":%llu,\"dropped\":%llu,\"errors\":%llu,"
                "\"sockets\":[",
                (unsigned long long)t.open, (unsigned long long)t.opened,
                (unsigned long long)t.closed, (unsigned long long)t.dgrams_in,
                (unsigned long long)t.bytes_in, (unsigned long long)t.dgrams_out,
                (unsigned long long)t.bytes_out, (unsigned long long)t.truncated,
                (unsigned long long)t.dropped, (unsigned long long)t.errors);
    struct walk w = {.b = b, .json = true};
    iocp_engine_foreach_dgram(e, json_one, &w);
    json_printf(b, "]");
    if (is_relay())
        json_printf(b, ",\"relay_sessions\":%llu", (unsigned long long)w.connected);
    json_printf(b, "}");
}

static void prom(struct json_buf *b, const char *name, const char *type, const char *help,
                 unsigned long long v)
{
    json_printf(b, "# HELP iocptool_%s %s\n# TYPE iocptool_%s %s\niocptool_%s %llu\n", name, help,
                name, type, name, v);
}

static void dgram_prometheus(void *arg, struct json_buf *b)
{
    struct iocp_engine *e = arg;
    struct iocp_dgram_totals t;
    iocp_engine_dgram_totals(e, &t);
    if (t.opened == 0)
        return;
    prom(b, "datagram_sockets_open", "gauge", "Datagram sockets open.", t.open);
    prom(b, "datagram_sockets_opened_total", "counter", "Datagram sockets opened.", t.opened);
    prom(b, "datagrams_received_total", "counter", "Datagrams received.", t.dgrams_in);
    prom(b, "datagram_received_bytes_total", "counter", "Bytes received in datagrams.", t.bytes_in);
    prom(b, "datagrams_sent_total", "counter", "Datagrams sent.", t.dgrams_out);
    prom(b, "datagram_sent_bytes_total", "counter", "Bytes sent in datagrams.", t.bytes_out);
    prom(b, "datagrams_truncated_total", "counter", "Datagrams received cut to the largest size.",
         t.truncated);
    prom(b, "datagrams_dropped_total", "counter", "Datagrams dropped: a send queue at its cap.",
         t.dropped);
    prom(b, "datagram_errors_total", "counter", "Errors the network reported (port unreachable).",
         t.errors);
    if (is_relay()) {
        struct walk w = {.b = b};
        iocp_engine_foreach_dgram(e, count_one, &w);
        prom(b, "relay_sessions", "gauge", "relay -u sessions open.", w.connected);
    }
}

void stats_dgram_add(struct iocp_engine *e)
{
    const struct stats_section s = {
        .text = dgram_text,
        .json = dgram_json,
        .prometheus = dgram_prometheus,
        .arg = e,
    };
    stats_section_add(&s);
}
