/* SPDX-License-Identifier: MIT */
/*
 * connect -z: which of these ports accept a connection?
 *
 * The name is looked up once, on the main thread, before anything starts;
 * every probe then connects to that numeric address, so a thousand ports do
 * not mean a thousand lookups.  Up to PROBE_WINDOW connects are in flight
 * at once on the engine's one worker, each bounded by -w; results are
 * printed in the order the ports were given, as soon as every port before
 * them is decided, so a long scan streams.
 *
 * A probe of a port in the ephemeral range may be given that very port as
 * its source, and then connects to itself (a TCP simultaneous open): the
 * connection succeeds with nobody listening.  Such a port is closed, and
 * -v says why.
 */
#include "probe.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iocp.h"

#include "addr.h"
#include "diag.h"
#include "probe_ports.h"
#include "netcompat.h"
#include "run.h"
#include "stop.h"

#define PROBE_WINDOW 256

enum { SLOT_WAITING = 0, SLOT_RUNNING, SLOT_OPEN, SLOT_CLOSED, SLOT_SELF };

struct slot {
    uint16_t port;
    uint8_t state;
    int error;
};

struct probe {
    const struct probe_config *cfg;
    struct iocp_engine *e;
    char addr[INET6_ADDRSTRLEN];
    struct slot *slots;
    size_t n, next, cursor, running;
    unsigned open;
    struct iocp_task start;
};

/* One probe runs per process; its callbacks find it here. */
static struct probe probe;

static void launch(void);

static void report(void)
{
    bool printed = false;
    while (probe.cursor < probe.n && probe.slots[probe.cursor].state >= SLOT_OPEN) {
        struct slot *s = &probe.slots[probe.cursor++];
        if (s->state == SLOT_OPEN) {
            printf("%s %u open\n", probe.cfg->host, s->port);
            printed = true;
        } else if (s->state == SLOT_SELF) {
            diag_info(1, "connect: %s port %u: closed (the probe connected to itself)",
                      probe.cfg->host, s->port);
        } else {
            diag_info(1, "connect: %s port %u: %s", probe.cfg->host, s->port,
                      iocp_strerror(s->error));
        }
    }
    if (printed)
        fflush(stdout);
    if (probe.cursor == probe.n)
        stop_wake();
}

static void probe_open(struct iocp_conn *c)
{
    struct slot *s = iocp_conn_data(c);
    bool self = addr_is_self_connected(iocp_conn_socket(c));
    s->state = self ? SLOT_SELF : SLOT_OPEN;
    /* A self-connection is reset: nothing else holds it, and a graceful
     * close would keep the port in TIME_WAIT for nothing. */
    iocp_conn_close(c, self ? IOCP_CLOSE_ABORT : IOCP_CLOSE_GRACEFUL);
}

static void probe_data(struct iocp_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    (void)len;
}

static void probe_close(struct iocp_conn *c, int status)
{
    struct slot *s = iocp_conn_data(c);
    if (s->state == SLOT_OPEN) {
        probe.open++;
    } else if (s->state != SLOT_SELF) {
        s->state = SLOT_CLOSED;
        s->error = status < 0 ? status : IOCP_ECONNABORTED;
    }
    probe.running--;
    launch();
    report();
}

static const struct iocp_conn_handler probe_handler = {
    .on_open = probe_open,
    .on_data = probe_data,
    .on_close = probe_close,
};

/* Keep the window full.  On worker 0. */
static void launch(void)
{
    while (probe.next < probe.n && probe.running < PROBE_WINDOW) {
        struct slot *s = &probe.slots[probe.next++];
        struct iocp_connect_config cc = {
            .host = probe.addr,
            .port = s->port,
            .source_host = probe.cfg->source_host,
            .timeout_ms = probe.cfg->timeout_ms,
            .worker = 0,
            .handler = &probe_handler,
            .data = s,
        };
        int rc = iocp_connect(probe.e, &cc);
        if (rc < 0) {
            s->state = SLOT_CLOSED;
            s->error = rc;
            continue;
        }
        s->state = SLOT_RUNNING;
        probe.running++;
    }
}

static void start_task(struct iocp_task *task)
{
    (void)task;
    launch();
    report();
}

/* The port arguments into probe.slots, each port once. */
static bool parse_ports(const struct probe_config *cfg)
{
    probe.slots = probe_ports_slots(cfg->ports, cfg->nports, sizeof *probe.slots,
                                 offsetof(struct slot, port), &probe.n);
    return probe.slots != NULL;
}

/* Look the host up once; the numeric address goes to every probe. */
static int resolve(const struct probe_config *cfg)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = cfg->family == IOCP_FAMILY_IPV4   ? AF_INET
                      : cfg->family == IOCP_FAMILY_IPV6 ? AF_INET6
                                                        : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* No AI_ADDRCONFIG, as in the library's connects: it hides 127.0.0.1
     * and ::1 on a host whose only interface is loopback. */
    hints.ai_flags = cfg->numeric ? AI_NUMERICHOST : 0;
    int gai = getaddrinfo(cfg->host, NULL, &hints, &res);
    if (gai != 0) {
        int err = gai == EAI_AGAIN    ? IOCP_EAITEMP
                  : gai == EAI_NODATA ? IOCP_EAINOADDR
                                      : IOCP_ENONAME;
        diag_error("connect: %s: %s", cfg->host, iocp_strerror(err));
        return -1;
    }
    int rc = getnameinfo(res->ai_addr, res->ai_addrlen, probe.addr, sizeof probe.addr, NULL, 0,
                         NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0) {
        diag_error("connect: %s: %s", cfg->host, gai_strerror(rc));
        return -1;
    }
    return 0;
}

static int probe_begin(void *arg, struct iocp_engine *e, struct iocp_server *s)
{
    (void)arg;
    (void)s;
    probe.e = e;
    probe.start.fn = start_task;
    int rc = iocp_engine_post(e, 0, &probe.start);
    if (rc < 0)
        diag_error("connect: %s", iocp_strerror(rc));
    return rc < 0 ? -1 : 0;
}

static int probe_end(void *arg)
{
    (void)arg;
    diag_info(1, "connect: %u of %zu ports open", probe.open, probe.n);
    return probe.open ? EXIT_OK : EXIT_RUNTIME;
}

int probe_run(const struct probe_config *cfg)
{
    memset(&probe, 0, sizeof probe);
    probe.cfg = cfg;
    if (!parse_ports(cfg)) {
        free(probe.slots);
        return EXIT_USAGE;
    }
    if (resolve(cfg) < 0) {
        free(probe.slots);
        return EXIT_RUNTIME;
    }
    struct iocp_engine_config ecfg = {.workers = 1, .backend = cfg->backend, .log = diag_lib_log};
    struct run_spec spec = {
        .cmd = "connect",
        .engine = &ecfg,
        .begin = probe_begin,
        .end = probe_end,
    };
    int status = run_engine(&spec);
    free(probe.slots);
    return status;
}
