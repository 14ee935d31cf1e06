/* SPDX-License-Identifier: MIT */
/*
 * relay_ports.h: port ranges, a pool per port, their servers and stats.
 */
#include "relay_ports.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "diag.h"
#include "stats_sections.h"

/* Where the port part of text starts: after the last colon (the whole
 * text when there is none, for a listening PORT alone). */
static const char *port_part(const char *text)
{
    if (addr_is_unix(text))
        return text + strlen(text); /* unix:PATH has no port, and no range */
    const char *colon = strrchr(text, ':');
    return colon ? colon + 1 : text;
}

/* "FROM-TO" with two decimal numbers: a range (set lo, hi). */
static bool is_range(const char *cmd, const char *port, uint16_t *lo, uint16_t *hi, bool *bad)
{
    *bad = false;
    const char *dash = strchr(port, '-');
    if (!dash || dash == port || !dash[1])
        return false;
    for (const char *p = port; *p; p++)
        if ((*p < '0' || *p > '9') && p != dash)
            return false;
    if (!addr_port_range(cmd, port, lo, hi)) {
        *bad = true;
        return false;
    }
    if (*hi < *lo) {
        diag_error("%s: port range %s: ends before it starts", cmd, port);
        *bad = true;
        return false;
    }
    return true;
}

/* text with its port part replaced by port: "host:8000-8010" -> "host:8000". */
static void with_port(const char *text, uint16_t port, char *buf, size_t len)
{
    const char *p = port_part(text);
    snprintf(buf, len, "%.*s%u", (int)(p - text), text, (unsigned)port);
}

bool relay_ports_parse(const char *cmd, const char *listen, char *const *targets,
                       unsigned ntargets, const struct relay_balance_opts *opts,
                       struct relay_ports *out)
{
    memset(out, 0, sizeof *out);
    if (ntargets > BALANCE_MAX_TARGETS) {
        diag_error("%s: at most %u targets", cmd, BALANCE_MAX_TARGETS);
        return false;
    }
    uint16_t lo, hi, first;
    bool bad;
    char text[ADDR_HOST_MAX + 48];
    if (strlen(listen) >= sizeof text) {
        diag_error("%s: %s: too long", cmd, listen);
        return false;
    }
    bool ranged = is_range(cmd, port_part(listen), &lo, &hi, &bad);
    if (bad)
        return false;
    if (ranged)
        with_port(listen, lo, text, sizeof text);
    else
        snprintf(text, sizeof text, "%s", listen);
    if (!addr_listen(cmd, text, out->host, sizeof out->host, &first))
        return false;
    if (!ranged)
        lo = hi = first;
    out->n = (unsigned)(hi - lo) + 1u;
    if (out->n > RELAY_MAX_PORTS) {
        diag_error("%s: %s: at most %u ports", cmd, listen, RELAY_MAX_PORTS);
        return false;
    }
    out->port = calloc(out->n, sizeof *out->port);
    if (!out->port) {
        diag_error("%s: out of memory", cmd);
        return false;
    }
    for (unsigned k = 0; k < out->n; k++) {
        struct relay_port *rp = &out->port[k];
        rp->tag = RELAY_PORT_TAG;
        rp->port = (uint16_t)(lo + k);
        rp->targets = calloc(ntargets, sizeof *rp->targets);
        if (!rp->targets) {
            diag_error("%s: out of memory", cmd);
            goto fail;
        }
    }
    for (unsigned i = 0; i < ntargets; i++) {
        /* The options stay on the text of each port's target. */
        const char *opt = balance_target_options(targets[i]);
        char base[ADDR_HOST_MAX + 48];
        size_t blen = opt ? (size_t)(opt - targets[i]) : strlen(targets[i]);
        if (blen >= sizeof base) {
            diag_error("%s: target %s: too long", cmd, targets[i]);
            goto fail;
        }
        memcpy(base, targets[i], blen);
        base[blen] = '\0';
        uint16_t tlo, thi;
        bool tranged = is_range(cmd, port_part(base), &tlo, &thi, &bad);
        if (bad)
            goto fail;
        if (tranged && (unsigned)(thi - tlo) + 1u != out->n) {
            diag_error("%s: target %s: %u ports for %u listening ports", cmd, targets[i],
                       (unsigned)(thi - tlo) + 1u, out->n);
            goto fail;
        }
        for (unsigned k = 0; k < out->n; k++) {
            char one[ADDR_HOST_MAX + 64];
            if (tranged)
                with_port(base, (uint16_t)(tlo + k), text, sizeof text);
            else
                snprintf(text, sizeof text, "%s", base);
            snprintf(one, sizeof one, "%s%s", text, opt ? opt : "");
            if (!balance_parse_target(cmd, one, &out->port[k].targets[i]))
                goto fail;
        }
    }
    for (unsigned k = 0; k < out->n; k++) {
        struct relay_port *rp = &out->port[k];
        balance_init(&rp->pool, rp->targets, ntargets, opts->mode);
        rp->pool.max_fails = opts->max_fails;
        rp->pool.fail_window_ms = opts->fail_window_ms;
        rp->pool.fail_timeout_ms = opts->fail_timeout_ms;
    }
    return true;
fail:
    relay_ports_free(out);
    return false;
}

int relay_ports_create_more(struct relay_ports *ports, struct iocp_engine *e,
                            const struct iocp_server_config *scfg)
{
    for (unsigned k = 1; k < ports->n; k++) {
        struct relay_port *rp = &ports->port[k];
        struct iocp_server_config cfg = *scfg;
        cfg.port = rp->port;
        cfg.data = rp;
        int rc = iocp_server_new(&rp->server, e, &cfg);
        if (rc < 0) {
            diag_listen_error("relay", cfg.host, cfg.port, rc);
            return -1;
        }
    }
    return 0;
}

int relay_ports_start_more(struct relay_ports *ports)
{
    for (unsigned k = 1; k < ports->n; k++) {
        struct relay_port *rp = &ports->port[k];
        int rc = iocp_server_start(rp->server);
        if (rc < 0) {
            diag_listen_error("relay", ports->host[0] ? ports->host : NULL, rp->port, rc);
            return -1;
        }
        cli_print_listening(rp->server);
    }
    return 0;
}

void relay_ports_close(struct relay_ports *ports)
{
    for (unsigned k = 1; k < ports->n; k++) { /* the first is the run's own */
        iocp_server_free(ports->port[k].server);
        ports->port[k].server = NULL;
    }
}

void relay_ports_free(struct relay_ports *ports)
{
    for (unsigned k = 0; k < ports->n; k++) {
        free(ports->port[k].targets);
    }
    free(ports->port);
    ports->port = NULL;
    ports->n = 0;
}

/* ---- stats ---- */

#define LD(x) ((unsigned long long)atomic_load(&(x)))

/* The port as bound (a free port asked for with 0 is known once bound). */
static unsigned port_of(const struct relay_port *rp)
{
    return rp->server ? iocp_server_port(rp->server) : rp->port;
}

static void ports_text(void *arg, struct json_buf *b)
{
    struct relay_ports *ports = arg;
    for (unsigned k = 0; k < ports->n; k++) {
        struct relay_port *rp = &ports->port[k];
        json_printf(b,
                    "port %-8u %u live, %llu accepted, %llu refused (no target), %llu bad "
                    "PROXY headers, in %llu B, out %llu B\n",
                    port_of(rp), (unsigned)atomic_load(&rp->live), LD(rp->accepted),
                    LD(rp->refused), LD(rp->proxy_errors), LD(rp->bytes_in), LD(rp->bytes_out));
        for (unsigned i = 0; i < rp->pool.n; i++) {
            struct balance_target *t = &rp->targets[i];
            json_printf(b,
                        "  target %-28s %-7s weight %u, %u live, %llu connected, %llu failed, "
                        "up %llu B, down %llu B\n",
                        t->name, balance_state_name(atomic_load(&t->state)), t->weight,
                        (unsigned)atomic_load(&t->live), LD(t->connects), LD(t->failures),
                        LD(t->bytes_up), LD(t->bytes_down));
        }
    }
}

static void ports_json(void *arg, struct json_buf *b)
{
    struct relay_ports *ports = arg;
    json_printf(b, ",\"balance\":");
    json_str(b, ports->n ? balance_mode_name(ports->port[0].pool.mode) : "rr");
    json_printf(b, ",\"ports\":[");
    for (unsigned k = 0; k < ports->n; k++) {
        struct relay_port *rp = &ports->port[k];
        json_printf(b,
                    "%s{\"port\":%u,\"live\":%u,\"accepted\":%llu,\"refused\":%llu,"
                    "\"proxy_errors\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,\"targets\":[",
                    k ? "," : "", port_of(rp), (unsigned)atomic_load(&rp->live),
                    LD(rp->accepted), LD(rp->refused), LD(rp->proxy_errors), LD(rp->bytes_in),
                    LD(rp->bytes_out));
        for (unsigned i = 0; i < rp->pool.n; i++) {
            struct balance_target *t = &rp->targets[i];
            json_printf(b, "%s{\"target\":", i ? "," : "");
            json_str(b, t->name);
            json_printf(b, ",\"state\":");
            json_str(b, balance_state_name(atomic_load(&t->state)));
            json_printf(b,
                        ",\"weight\":%u,\"live\":%u,\"connects\":%llu,\"failures\":%llu,"
                        "\"bytes_up\":%llu,\"bytes_down\":%llu}",
                        t->weight, (unsigned)atomic_load(&t->live), LD(t->connects),
                        LD(t->failures), LD(t->bytes_up), LD(t->bytes_down));
        }
        json_printf(b, "]}");
    }
    json_printf(b, "]");
}

/* A label value: backslash, quote and newline escaped. */
static void label(struct json_buf *b, const char *v)
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

static void prom_port_metric(struct relay_ports *ports, struct json_buf *b, const char *name,
                             const char *type, const char *help, int which)
{
    json_printf(b, "# HELP iocptool_%s %s\n# TYPE iocptool_%s %s\n", name, help, name, type);
    for (unsigned k = 0; k < ports->n; k++) {
        struct relay_port *rp = &ports->port[k];
        unsigned long long v = which == 0   ? (unsigned long long)atomic_load(&rp->live)
                               : which == 1 ? LD(rp->accepted)
                               : which == 2 ? LD(rp->refused)
                               : which == 3 ? LD(rp->bytes_in)
                               : which == 4 ? LD(rp->bytes_out)
                                            : LD(rp->proxy_errors);
        json_printf(b, "iocptool_%s{port=\"%u\"} %llu\n", name, port_of(rp), v);
    }
}

static void prom_target_metric(struct relay_ports *ports, struct json_buf *b, const char *name,
                               const char *type, const char *help, int which)
{
    json_printf(b, "# HELP iocptool_%s %s\n# TYPE iocptool_%s %s\n", name, help, name, type);
    for (unsigned k = 0; k < ports->n; k++) {
        struct relay_port *rp = &ports->port[k];
        for (unsigned i = 0; i < rp->pool.n; i++) {
            struct balance_target *t = &rp->targets[i];
            int state = atomic_load(&t->state);
            unsigned long long v = which == 0   ? (unsigned long long)(state != TARGET_DOWN)
                                   : which == 1 ? (unsigned long long)atomic_load(&t->live)
                                   : which == 2 ? LD(t->connects)
                                   : which == 3 ? LD(t->failures)
                                   : which == 4 ? LD(t->bytes_up)
                                                : LD(t->bytes_down);
            json_printf(b, "iocptool_%s{port=\"%u\",target=\"", name, port_of(rp));
            label(b, t->name);
            if (which == 0) {
                json_printf(b, "\",state=\"");
                label(b, balance_state_name(state));
            }
            json_printf(b, "\"} %llu\n", v);
        }
    }
}

static void ports_prometheus(void *arg, struct json_buf *b)
{
    struct relay_ports *ports = arg;
    prom_port_metric(ports, b, "relay_port_clients", "gauge", "Clients relayed now, per port.", 0);
    prom_port_metric(ports, b, "relay_port_accepted_total", "counter",
                     "Clients accepted, per port.", 1);
    prom_port_metric(ports, b, "relay_port_refused_total", "counter",
                     "Clients reset for want of a target, per port.", 2);
    prom_port_metric(ports, b, "relay_port_received_bytes_total", "counter",
                     "Bytes from the clients of closed connections, per port.", 3);
    prom_port_metric(ports, b, "relay_port_sent_bytes_total", "counter",
                     "Bytes to the clients of closed connections, per port.", 4);
    prom_port_metric(ports, b, "relay_port_proxy_errors_total", "counter",
                     "Clients closed for a malformed, too long, cut or late PROXY header.", 5);
    prom_target_metric(ports, b, "relay_target_up", "gauge",
                       "1 while the target takes clients (up or probing), 0 while it is out.", 0);
    prom_target_metric(ports, b, "relay_target_connections", "gauge",
                       "Clients connected or connecting to the target.", 1);
    prom_target_metric(ports, b, "relay_target_connects_total", "counter",
                       "Connections made to the target.", 2);
    prom_target_metric(ports, b, "relay_target_failures_total", "counter",
                       "Connects to the target that failed.", 3);
    prom_target_metric(ports, b, "relay_target_sent_bytes_total", "counter",
                       "Bytes sent to the target (closed connections).", 4);
    prom_target_metric(ports, b, "relay_target_received_bytes_total", "counter",
                       "Bytes received from the target (closed connections).", 5);
}

void relay_ports_stats(struct relay_ports *ports)
{
    struct stats_section s = {
        .text = ports_text,
        .json = ports_json,
        .prometheus = ports_prometheus,
        .arg = ports,
    };
    stats_section_add(&s);
}
