/* SPDX-License-Identifier: MIT */
/* relay_ops.h: the options, and each pair's record from accept to log line. */
#include "relay_ops.h"

#include <stdio.h>
#include <string.h>

#include "capture.h"
#include "diag.h"
#include "handover.h"
#include "opts.h"
#include "relay_drain.h"
#include "stats_sections.h"
#include "tls.h"

static struct {
    unsigned drain_ms;
    bool reuse_port;
    const char *log_path;
    bool log_text;
    unsigned log_kib;
    stats_counter_t refused;
} ops = {.drain_ms = RELAY_DRAIN_DEFAULT_MS};

bool relay_ops_option(int opt, const char *arg)
{
    switch (opt) {
    case OPT_RELAY_DRAIN_TIMEOUT:
        return opt_seconds("relay", "--drain-timeout", arg, &ops.drain_ms);
    case OPT_RELAY_REUSEPORT:
        if (!handover_supported()) {
            diag_error("relay: --reuseport: not available on this system");
            return false;
        }
        ops.reuse_port = true;
        return true;
    case OPT_RELAY_LOG:
        ops.log_path = arg;
        return true;
    case OPT_RELAY_LOG_BUFFER: {
        long long n;
        if (!opt_number("relay", "--log-buffer", arg, 4, 1 << 20, &n))
            return false;
        ops.log_kib = (unsigned)n;
        return true;
    }
    case 'x':
    case CAPTURE_OPT_PCAP:
        return capture_option("relay", opt, arg);
    case OPT_RELAY_LOG_FORMAT:
        if (strcmp(arg, "json") && strcmp(arg, "text")) {
            diag_error("relay: --log-format %s: json or text", arg);
            return false;
        }
        ops.log_text = strcmp(arg, "text") == 0;
        return true;
    default:
        return false;
    }
}

int relay_ops_setup(struct iocp_server_config *scfg)
{
    scfg->reuse_port = ops.reuse_port;
    relay_drain_setup(ops.drain_ms, ops.reuse_port);
    stats_counter_register("relay_refused", "Clients reset: no target could be reached.",
                           &ops.refused);
    if (ops.log_path && !access_log_open(ops.log_path, ops.log_text, ops.log_kib))
        return EXIT_RUNTIME;
    if (capture_start("relay") < 0) {
        access_log_close();
        return EXIT_RUNTIME;
    }
    return 0;
}

void relay_ops_spec(struct run_spec *spec)
{
    /* 0 s: a stop signal closes at once, as it did before drains. */
    if (ops.drain_ms) {
        spec->interrupt = relay_drain_interrupt;
        spec->drain_ms = ops.drain_ms;
    }
}

int relay_ops_ready(struct iocp_server *s)
{
    return relay_drain_ready(s);
}

void relay_ops_finish(void)
{
    capture_finish();
    access_log_close();
}

void relay_rec_open(struct relay_rec *r, struct iocp_conn *client)
{
    relay_drain_opened();
    r->id = iocp_conn_id(client);
    r->start_ms = access_log_mono_ms();
    iocp_conn_peer(client, r->client, sizeof r->client);
    iocp_conn_local(client, r->listen, sizeof r->listen);
}

void relay_rec_target(struct relay_rec *r, const char *target)
{
    r->target = target;
}

void relay_rec_client(struct relay_rec *r, const char *client)
{
    snprintf(r->client, sizeof r->client, "%s", client);
}

void relay_rec_tls(struct relay_rec *r, bool target, const struct channel *ch)
{
    channel_tls_agreed(ch, &r->tls[target].protocol, &r->tls[target].cipher,
                       &r->tls[target].resumed);
}

void relay_rec_tls_failed(struct relay_rec *r, bool target, const char *why)
{
    /* The messages start "TLS" already; a time-out's does not. */
    snprintf(r->tls[target].error, sizeof r->tls[target].error, "%s%s",
             strncmp(why, "TLS", 3) ? "TLS: " : "", why);
}

static struct access_tls rec_tls(const struct relay_rec *r, bool target)
{
    return (struct access_tls){
        .protocol = r->tls[target].protocol,
        .cipher = r->tls[target].cipher,
        .resumed = r->tls[target].resumed,
        .error = r->tls[target].error[0] ? r->tls[target].error : NULL,
    };
}

void relay_rec_end(struct relay_rec *r, enum conn_end end)
{
    if (r->end_known)
        return;
    r->end = end;
    r->end_known = true;
    if (end == CONN_END_REFUSED)
        stats_counter_add(&ops.refused, 1);
}

void relay_rec_leg_closed(struct relay_rec *r, int status)
{
    if (!status)
        return;
    if (status == IOCP_ETIMEDOUT)
        relay_rec_end(r, CONN_END_TIMEOUT);
    else if (status == IOCP_ECANCELED && relay_draining())
        relay_rec_end(r, CONN_END_DRAINED);
    else
        relay_rec_end(r, CONN_END_RESET);
}

void relay_rec_client_closed(struct relay_rec *r, struct iocp_conn *client)
{
    r->from_client = iocp_conn_bytes_in(client);
    r->to_client = iocp_conn_bytes_out(client);
}

void relay_rec_close(struct relay_rec *r)
{
    if (!r->end_known)
        relay_rec_end(r, CONN_END_EOF);
    if (r->end == CONN_END_DRAINED)
        relay_drain_count_drained();
    if (access_log_enabled()) {
        struct access_entry e = {
            .id = r->id,
            .client = r->client,
            .listen = r->listen,
            .target = r->target,
            .from_client = r->from_client,
            .to_client = r->to_client,
            .duration_ms = access_log_mono_ms() - r->start_ms,
            .end = r->end,
            .client_tls = rec_tls(r, false),
            .target_tls = rec_tls(r, true),
        };
        access_log_write(&e);
    }
    relay_drain_closed();
}
